"""Every word the booking chat says, in one place (the spec's strings are verbatim)."""

from __future__ import annotations

from typing import Final

# Spec: header and states
PAGE_TITLE: Final = "Book a Session"
COURSE_CONTEXT: Final = "for {course}"
NO_STS: Final = "No Student-Teachers available. Try later."
SUCCESS_TITLE: Final = "Session Booked!"

# Spec: error handling
NOT_ENROLLED: Final = "You must be enrolled to book."
ENROLL_NOW: Final = "Enroll now"
SLOT_TAKEN: Final = "This time is no longer available. Select another."
STUDENT_CONFLICT: Final = "You have another session at this time."
BOOKING_FAILED: Final = "Unable to book. Please try again."
BOOKING_INTERRUPTED: Final = (
    "Your booking was interrupted before it went through. Please try again."
)

# Spec: buttons
BOOK_WITH: Final = "Book with {name}"
SCHEDULE_LATER: Final = "Schedule Later"
BOOK_SESSION: Final = "Book Session"
BACK_TO_DASHBOARD: Final = "Back to Dashboard"
BOOK_ANOTHER: Final = "Book Another Session"
TODAY: Final = "Today"
TOMORROW: Final = "Tomorrow"
THIS_WEEK: Final = "This week"
NEXT_AVAILABLE: Final = "Next available"
BACK: Final = "‹ Back"
CANCEL: Final = "Cancel"
REMINDERS_ON: Final = "☑ Reminders"
REMINDERS_OFF: Final = "☐ Reminders"
ADD_NOTE: Final = "Add a note"
EDIT_NOTE: Final = "Edit note"
REMOVE_NOTE: Final = "Remove note"
KEEP_NOTE: Final = "‹ Back without changes"
SCHEDULE_NOW: Final = "Schedule now"

# Steps
STEP_CHOOSE_COURSE: Final = "Which course would you like to book a session for?"
STEP_CHOOSE_ST: Final = "Step 1 of 4 · Choose a Student-Teacher"
STEP_CHOOSE_DATE: Final = "Step 2 of 4 · Pick a date"
STEP_CHOOSE_TIME: Final = "Step 3 of 4 · Pick a time on {day}"
STEP_CONFIRM: Final = "Step 4 of 4 · Confirm your booking"
CALENDAR_HINT: Final = (
    'Days with free times can be tapped. You can also type a date, like "next friday".'
)
BOOKING_LOADING: Final = "⏳ Booking your session…"
NEXT_FREE: Final = "Next free: {when}"
NO_FREE_SOON: Final = "No free times in the next {days} days"
TIMEZONE_LINE: Final = "Time zone: {zone}"

# Confirmation summary
SUMMARY_COURSE: Final = "Course: {course}"
SUMMARY_ST: Final = "Student-Teacher: {name}"
SUMMARY_WHEN: Final = "When: {when}"
SUMMARY_LENGTH: Final = "Length: {minutes} minutes"
SUMMARY_REMINDERS: Final = "Reminders: {state}"
SUMMARY_NOTE: Final = "Note to {name}: {note}"
ON: Final = "on"
OFF: Final = "off"
NOTE_PROMPT: Final = "Type your note for {name} (up to {limit} characters)."
NOTE_TOO_LONG: Final = (
    "Notes are limited to {limit} characters; yours has {length}. Please send a shorter note."
)
NOTE_SAVED: Final = "Note saved."
NOTE_REMOVED: Final = "Note removed."
ADD_TO_GOOGLE: Final = "📅 Google Calendar"
ADD_TO_OUTLOOK: Final = "📅 Outlook"
ADD_TO_OFFICE365: Final = "📅 Office 365"  # work and school accounts (outlook.office.com)
ADD_TO_CALENDAR: Final = (
    "Add to Calendar: tap Google, Office 365 or Outlook, or open the .ics file (Apple and others)."
)
CALENDAR_SUMMARY: Final = "{course} tutoring with {name}"
CALENDAR_JOIN: Final = "The video room opens at session time; the reminder brings the link."
SUCCESS_BODY: Final = "Your session with {name} is booked. Session #{session_id}."

# Schedule Later (CD-033)
SCHEDULED_LATER_TITLE: Final = "Saved for later"
ALREADY_SAVED: Final = (
    "You already had a saved session of {course}, so no new one was added: it still counts once."
)
SCHEDULED_LATER_BODY: Final = (
    "We saved a session of {course} for you to schedule later. It counts as one of your "
    "{count} sessions and is listed in /mysessions. Tap “Schedule now” or send /book when "
    "you are ready to pick a time."
)

# Limits and bad input
NO_SESSIONS_LEFT: Final = (
    "You have used all {count} sessions included in {course}, so you cannot book another one."
)
UNKNOWN_COURSE: Final = "I can't find a course called “{slug}”. Pick one of your courses below."
NOT_ENROLLED_ANYWHERE: Final = "You are not enrolled in any course yet."
ST_NO_LONGER_AVAILABLE: Final = (
    "{name} is not taking bookings for this course right now. Choose another Student-Teacher."
)
EXPIRED: Final = "This option has expired."
USE_BUTTONS_ONLY: Final = "Please choose one of the options below."
DATE_UNPARSEABLE: Final = (
    "Sorry, I couldn't read “{text}” as a date. Try “tomorrow”, “next friday” or “{example}”."
)
DATE_PAST: Final = "“{day}” is in the past. Pick today or a later day."
DATE_NO_SLOTS: Final = "No free times on {day}. Pick another day."
DATE_TOO_FAR: Final = "{day} is too far ahead: you can book up to {days} days in advance."
NO_SLOTS_THIS_WEEK: Final = "No free times left this week."
NO_SLOTS_AT_ALL: Final = "{name} has no free times in the next {days} days. Try later."
CANCELLED: Final = "Booking cancelled. Send /book to start again."
NOTHING_TO_CANCEL: Final = (
    "There is no booking in progress to cancel. To cancel a booked session, send /mysessions."
)
AFTER_FINAL: Final = "Send /book to book another session, or /mysessions to see your sessions."
YOU_TEACH: Final = "You teach {course}; links to book it are for students."
THEY_TEACH: Final = "This person teaches {course}, so they cannot book it as a student."
COORDINATORS_ONLY: Final = "Only coordinators can book a session for another student."
BOOKING_FOR: Final = "Booking for {name}"
A_STUDENT: Final = "a student"
A_COORDINATOR: Final = "A coordinator"
REMINDERS_CHECKBOX: Final = "Send reminders before the session"
# A coordinator's first step (course and student), and time off from a staff home
BOOK_FOR_INTRO: Final = "Book a session for a student: choose the course and the student."
BOOK_FOR_COURSE: Final = "Course"
BOOK_FOR_STUDENT: Final = "Student"
BOOK_FOR_STUDENT_HINT: Final = "Type a name or an e-mail address"
BOOK_FOR_NEXT: Final = "Next"
BOOK_FOR_PICK_BOTH: Final = "Choose a course and a student."
AWAY_DAYS_BUTTON: Final = "Days off…"
AWAY_HOURS_BUTTON: Final = "Special hours…"
AWAY_FORM_TITLE: Final = "Days off"
AWAY_FORM_HOURS_TITLE: Final = "Special hours"
AWAY_FORM_FIRST: Final = "First day off"
AWAY_FORM_LAST: Final = "Last day off (leave empty for one day)"
AWAY_FORM_DAY: Final = "Day"
AWAY_FORM_START: Final = "From"
AWAY_FORM_END: Final = "Until"
AWAY_FORM_SAVE: Final = "Save"
OPENING: Final = "⏳ One moment…"
INVITE_ATTACHED: Final = "📅 The calendar invite (.ics) for the session just booked."
BOOKED_FOR_YOU: Final = "{by} booked a session of {course} for you with {name} on {when}."

# The staff home (Slack App Home): the ST's day and week, hours and days off
HOME_TODAY: Final = "Today"
HOME_WEEK: Final = "This week"
HOME_HOURS: Final = "Your weekly hours"
HOME_DAYS_OFF: Final = "Upcoming days off"
HOME_NOTHING: Final = "No sessions."
HOME_NO_HOURS: Final = "No weekly hours set."
HOME_NO_DAYS_OFF: Final = "None."
HOME_SESSION: Final = "{time}: {course} with {name}"
HOME_HOURS_LINE: Final = "{day}: {start}–{end} ({zone})"

# Today across campus (a coordinator's App Home): every session today, possible no-shows, and
# Cancel with a reason (both people are told)
CAMPUS_TODAY: Final = "Today across campus"
CAMPUS_DAY: Final = "{day} (times in {zone})"
CAMPUS_NOTHING: Final = "No sessions today."
CAMPUS_LINE: Final = "• {time}: {student} with {teacher}"
CAMPUS_NO_SHOWS: Final = "Possible no-shows to follow up"
CAMPUS_NO_SHOWS_WHY: Final = (
    "Started more than {minutes} minutes ago and the video room was never opened."
)
CAMPUS_NO_SHOW_LINE: Final = "• {time}: {course}, {student} with {teacher}"
CAMPUS_NO_NO_SHOWS: Final = "None."
CAMPUS_CANCEL: Final = "Cancel {time} {student}"
CAMPUS_WHY: Final = (
    "Why cancel the {course} session of {student} with {teacher} on {when}? Both are told."
)
CAMPUS_CONFIRM: Final = (
    "Cancel the {course} session of {student} with {teacher} on {when}? Both are told."
)
CAMPUS_NO_REASON: Final = "No reason is given."
CAMPUS_CANCELLED: Final = (
    "The {course} session of {student} with {teacher} on {when} is cancelled; both have been told."
)
CAMPUS_KEPT: Final = "The session stays booked."
# A reason's button (what the coordinator reads) and what the student and the ST read
REASON_NO_SHOW: Final = "Possible no-show"
REASON_NO_SHOW_TEXT: Final = "Possible no-show."
REASON_ST_UNAVAILABLE: Final = "ST unavailable"
REASON_ST_UNAVAILABLE_TEXT: Final = "The Student-Teacher is unavailable."
REASON_STUDENT_ASKED: Final = "Student asked"
REASON_STUDENT_ASKED_TEXT: Final = "The student asked to cancel."
REASON_OTHER: Final = "Other"

# Time off (/away)
AWAY_USAGE: Final = (
    "Send /away with a day (“/away 4 Dec”), a range (“/away 4 Dec to 8 Dec”) or special hours "
    "for one day (“/away 4 Dec 10:00-12:00”)."
)
AWAY_NOT_ST: Final = "Only Student-Teachers set time off here."
AWAY_TOO_LONG: Final = "Time off can be set for at most {days} days at once."
AWAY_DONE: Final = "Marked off: {days}. No sessions were booked then."
AWAY_HOURS_DONE: Final = "Special hours on {day}: {start}–{end}."
AWAY_BOOKED: Final = (
    "Marked off: {days}. These sessions are booked then; cancel them (the students are told, "
    "with a button to book another time) or keep them?"
)
AWAY_CANCEL: Final = "Cancel these sessions"
AWAY_KEEP: Final = "Keep them"
AWAY_KEPT: Final = "The sessions stay booked."
AWAY_CANCELLED: Final = "Cancelled {count} session(s); the students have been told."
AWAY_TOO_LATE: Final = (
    " {count} start too soon to cancel here; please tell those students yourself."
)
AWAY_REASON: Final = "The Student-Teacher is away that day."
BOOK_ANOTHER_TIME: Final = "Book another time"

# /mysessions
MY_SESSIONS_TITLE: Final = "Your upcoming sessions"
NO_UPCOMING: Final = "You have no upcoming sessions. Send /book to book one."
UPCOMING_LINE: Final = "• {when}: {course} with {name}"
TEACHING_LINE: Final = "• {when}: you teach {course} to {name}"
UNSCHEDULED_LINE: Final = "• {course}: not scheduled yet (send /book {slug} to pick a time)"

# Accounts and deep links
LINK_INVALID: Final = (
    "This link is not valid. Open “Book a Session” on the tutoring website to get a new one."
)
LINK_EXPIRED: Final = (
    "This link has expired. Open “Book a Session” on the tutoring website to get a new one."
)
LINK_USED: Final = (
    "This link was already opened from another chat account. Open “Book a Session” on the "
    "tutoring website yourself to get your own link."
)
ALREADY_LINKED: Final = (
    "This chat account is already linked to {name}. To link it to another account, send "
    "/unlink first, then open the link again."
)
UNLINK_CONFIRM: Final = (
    "Unlink this chat account from {name}? You will not get reminders here until you open "
    "a link from the tutoring website again."
)
YES_UNLINK: Final = "Yes, unlink"
KEEP_LINKED: Final = "Keep it linked"
UNLINKED: Final = (
    "This chat account is no longer linked to {name}. Open “Book a Session” on the tutoring "
    "website to link it again."
)
STAYS_LINKED: Final = "Nothing changed: this chat account stays linked to {name}."
# /notify: where reminders and notices go (one linked chat, never all of them)
NOTICES_GO_TO: Final = "Notices go to {platform}."
NOTICES_GO_LAST_USED: Final = (
    "Notices go to the platform you last used. Choose one to keep them there."
)
SEND_NOTICES_HERE: Final = "Send notices here"
SEND_NOTICES_TO: Final = "Send notices to {platform}"
NOTICES_NOW_GO_TO: Final = "Done: notices now go to {platform}."
NOTIFY_NOT_LINKED: Final = (
    "That chat account is not linked to you any more. Send /notify to see your choices."
)
NOTIFY_NOTHING_LINKED: Final = (
    "No chat account is linked to you yet, so notices have nowhere to go. Open “Book a "
    "Session” on the tutoring website and choose a chat app there."
)
NOT_LINKED: Final = (
    "This chat account is not linked yet. Open “Book a Session” on the tutoring website and "
    "choose this chat app there: that links this chat to your account."
)
NOT_MATCHED: Final = (
    "I couldn't match your chat account to the tutoring platform: its verified e-mail address is "
    "not one the platform knows. Ask the tutoring office to add the address you use here."
)
HELP: Final = (
    "I book tutoring sessions with Student-Teachers.\n"
    "/book: pick a course and book a session\n"
    "/mysessions: your upcoming sessions\n"
    "/cancel: leave the booking wizard\n"
    "/unlink: unlink this chat account from your tutoring account\n"
    "/notify: choose where reminders and notices reach you\n"
    "/help: this message\n"
    "You can also type a date (“next friday”) on the calendar step."
)
DATABASE_BUSY: Final = (
    "The booking database is busy (another program is using it). Nothing was changed; please "
    "try again in a moment."
)
SOMETHING_WENT_WRONG: Final = "Something went wrong on our side. Please try again."
NOT_AVAILABLE: Final = "Not available"

# The ST's notice about a new booking
ST_NEW_BOOKING: Final = "📚 New booking: {student} booked {course} with you on {when}."
ST_NOTE: Final = "Note from {student}: {note}"

# Managing a booked session: join, cancel, reschedule
SESSION_CHANGED: Final = "This session was already cancelled or changed; nothing was booked."
RESCHEDULED: Final = "Your previous time is released."
JOIN: Final = "Join"
RESCHEDULE: Final = "Reschedule"
CANCEL_SESSION: Final = "Cancel session"
SCHEDULE_NOW_COURSE: Final = "Schedule {course}"
CANCEL_CONFIRM: Final = "Cancel your {course} session with {name} on {when}?"
YES_CANCEL: Final = "Yes, cancel it"
KEEP_IT: Final = "Keep it"
SESSION_CANCELLED: Final = "Your {course} session on {when} is cancelled. {name} has been told."
KEPT: Final = "Your session stays booked."
OTHER_CANCELLED: Final = "❌ {who} cancelled the {course} session on {when}."
CANCEL_REASON: Final = "Reason: {reason}"  # under OTHER_CANCELLED, when the canceller gave one
OTHER_MOVED: Final = (
    "🔁 {who} moved the {course} session on {when} to another time; that time is free again."
)
TOO_LATE: Final = (
    "It is too late to change this session online: changes close {hours} hours before the start. "
    "Please contact {name} directly."
)
ROOM_TOO_EARLY: Final = "The video room opens {minutes} minutes before the session ({when})."
ROOM_READY: Final = "Your video room for {course} is ready."
OPEN_ROOM: Final = "Open video room"
SESSION_OVER: Final = "This session has ended."

# Reminders (the outbox worker)
REMINDER: Final = "⏰ Reminder: your {course} session with {name} starts {left} ({when})."
STARTING: Final = "🎥 Your {course} session with {name} starts now ({when}). Join here:"
NUDGE: Final = (
    "You saved a session of {course} to schedule later. Pick a time whenever you are ready."
)
