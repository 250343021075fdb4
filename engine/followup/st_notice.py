"""What an ST is told about a new booking, in the ST's own zone and locale."""

from __future__ import annotations

from engine.chat import messages as m
from engine.chat.formatting import format_datetime_long, normalize_locale
from storage.records import CourseRecord, SessionRecord, UserRecord


def booking_text(
    booked: SessionRecord, course: CourseRecord, student: UserRecord, teacher: UserRecord
) -> str:
    """Sent through the outbox (`teacher:booked`) on every chat platform the ST linked."""
    assert booked.scheduled_start is not None
    when = format_datetime_long(
        booked.scheduled_start, teacher.timezone, normalize_locale(teacher.locale)
    )
    lines = [m.ST_NEW_BOOKING.format(student=student.name, course=course.title, when=when)]
    if booked.note:
        lines.append(m.ST_NOTE.format(student=student.name, note=booked.note))
    return "\n".join(lines)
