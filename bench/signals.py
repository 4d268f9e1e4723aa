"""Stopping on SIGTERM/SIGINT without deadlocking the thread the signal interrupts.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread
holds the very lock `threading.Event.set` takes (inside `Event.wait`, or inside an earlier
handler's `set` when a second signal arrives). So the handler takes no lock: it ignores further
stop signals and sets the event from a new thread, which waits for the interrupted code to let go.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
