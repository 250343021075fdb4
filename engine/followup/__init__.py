"""What happens after a booking: reminders through the outbox worker, what each outbox row
sends, e-mails and calendar invites, video rooms, cancel and reschedule, housekeeping.
"""
