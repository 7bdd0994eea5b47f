"""A line of progress on stderr at least every :data:`INTERVAL_S` seconds of work, whatever the work is.

The CLI names the stage it is in (importing a framework, certifying a
subject in its worker, writing the report); a daemon thread prints the stage
and its elapsed time whenever nothing was printed for :data:`INTERVAL_S`
seconds.  Every line goes to stderr, so stdout stays the verdict.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator

#: The longest silence, in seconds, before a line of progress.
INTERVAL_S = 10.0


class Progress:
    """The current stage, and when the last line was printed."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._stage = "starting"
        self._stage_since = self._last_line = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def stage(self, text: str) -> None:
        """Enters a stage: named in every line of progress until the next one."""
        with self._lock:
            self._stage, self._stage_since = text, time.monotonic()

    def say(self, text: str) -> None:
        """Prints ``text`` now (it counts as progress)."""
        with self._lock:
            self._last_line = time.monotonic()
        print(text, file=sys.stderr, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.interval_s / 4)):
            with self._lock:
                now = time.monotonic()
                due = now - self._last_line >= self.interval_s
                line = f"... {self._stage} ({now - self._stage_since:.0f} s)"
            if due:
                self.say(line)

    @contextlib.contextmanager
    def running(self) -> Iterator[Progress]:
        """Prints the stage while the block runs, at least every ``interval_s`` seconds."""
        self._stop = threading.Event()
        self._stage_since = self._last_line = time.monotonic()
        thread = threading.Thread(target=self._tick, name="optspec-progress", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
