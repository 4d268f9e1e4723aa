"""Scheduling of the threads that pace a link: the hub's link readers and a meter's event loop.

A paced link sleeps for each frame's wire time before writing it, and answers the moment a frame
arrives; whatever the thread loses to timer slack or to waiting for a core, the line stands idle.
Both calls are best effort: elsewhere than Linux, or without permission, nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

PR_SET_TIMERSLACK = 29
TIMER_SLACK_NS = 1000
REALTIME_PRIORITY = 10


def precise_timers() -> None:
    """Ask Linux for 1 us timer slack on this thread (default 50 us): every sleep of a paced
    write would otherwise overshoot by tens of microseconds with the line idle."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0)


def realtime_thread(priority: int = REALTIME_PRIORITY) -> bool:
    """Put this thread in the SCHED_FIFO class; False when the host does not allow it.

    A link thread spends its life blocked in `recv` or in the pacer's sleep, so it never holds a
    core for long; what it needs is to run the moment its frame arrives or its sleep ends, even
    when other work keeps every core busy.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True
