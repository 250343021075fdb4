"""The booking conversation: the wizard as a state machine, its screens and words, slot math,
dates and formats, the catalog it reads, and the session dialogues (/mysessions and its buttons).
"""
