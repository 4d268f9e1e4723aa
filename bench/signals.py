"""Stopping on SIGTERM/SIGINT without deadlocking the thread the signal interrupts.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread
holds the very lock `threading.Event.set` takes (inside `Event.wait`, or inside an earlier
handler's `set` when a second signal arrives). So the handler takes no lock: it ignores further
stop signals and sets the event from a new thread, which waits for the interrupted code to let go.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PARENT_ENV = "BENCH_DIE_WITH_PARENT"  # the pid whose death must stop this process
_PR_SET_PDEATHSIG = 1


def die_with_parent_from_env() -> None:
    """SIGTERM this process when the process that started it dies (Linux PR_SET_PDEATHSIG).

    The child sets it on itself after exec rather than in a `preexec_fn`: a `preexec_fn` makes
    Python fork instead of vfork, and a fork runs every library's fork handlers (gRPC's, when a
    labgrid session is open) in a child that only meant to exec. Checking the parent's pid after
    setting it closes the gap where the parent died before the signal was armed.
    """
    parent = os.environ.pop(PARENT_ENV, None)
    if not parent or not parent.isdigit():
        return
    with contextlib.suppress(OSError, AttributeError):  # not Linux: SIGTERM still stops it
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)


def stop_on_signals(event: threading.Event) -> Callable[[], None]:
    """Set `event` on the first SIGTERM or SIGINT; returns a function restoring the old handlers."""

    def on_signal(_signum: int, _frame: object) -> None:
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        threading.Thread(target=event.set, name="stop-signal", daemon=True).start()

    previous = {number: signal.signal(number, on_signal) for number in STOP_SIGNALS}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore
