"""What the CLI does when Ctrl-C stops it, wherever it lands: one line, exit 130."""

from __future__ import annotations

import ctypes
import signal
import sys

#: The line printed on Ctrl-C.
INTERRUPTED = "interrupted: no verdict; nothing was half-written"


def forget_interrupt() -> None:
    """Clears CPython's record of an unhandled KeyboardInterrupt, so that a caught one exits 130.

    CPython sets that record when an interrupt leaves code it runs through
    ``run_eval_code_obj`` (``Python/pythonrun.c``) and, at exit, ends the
    process by SIGINT if it is set, whatever the exit status.  Measured: a
    Ctrl-C about 1 s after ``optspec certify`` starts (while it imports)
    ended 5 of 12 runs with -SIGINT after the CLI had printed its message;
    with this reset, none of 16.  Running one statement through
    ``PyRun_SimpleString`` resets the record.
    """
    if hasattr(ctypes, "pythonapi"):  # CPython
        ctypes.pythonapi.PyRun_SimpleString(b"pass")


def interrupted() -> int:
    """Prints :data:`INTERRUPTED` and returns the exit status 130, after a caught KeyboardInterrupt.

    A second Ctrl-C while the interpreter shuts down is ignored: it would end the process by SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    forget_interrupt()
    print(INTERRUPTED, file=sys.stderr)
    return 130
