"""Moments and spans in words, always in UTC (a login node, a compute node and a laptop may each have their own
time zone): "18:05 UTC" today, "2026-12-02 04:00 UTC" on another day, "in 3 h 12 min"; pure, `now` passed in."""

from __future__ import annotations

import time


def moment(when: float, now: float) -> str:
    """The time of day when `when` falls on the same UTC day as `now`, else the date as well."""
    day = time.strftime("%Y-%m-%d", time.gmtime(when))
    clock = time.strftime("%H:%M UTC", time.gmtime(when))
    return clock if day == time.strftime("%Y-%m-%d", time.gmtime(now)) else f"{day} {clock}"


def span(seconds: float) -> str:
    """A duration rounded down to the minute (what is left is never overstated): 12 min, 3 h 12 min, 2 d 4 h."""
    minutes = int(max(seconds, 0.0) // 60)
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def until(when: float, now: float) -> str:
    """How far off `when` is: "in 3 h 12 min", or "now" once it has come (a start estimate can be overdue)."""
    return f"in {span(when - now)}" if when > now else "now"


def expected_start(when: float, now: float) -> str:
    """Slurm's estimate for a pending job, which moves as other jobs end early or new ones outrank it."""
    return f"expected start {moment(when, now)} ({until(when, now)})"
