"""``optspec`` and ``python -m optspec``: the CLI, with Ctrl-C handled from the first import on."""

import ctypes
import sys

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


def run() -> int:
    """Imports the CLI and runs it; a Ctrl-C while the frameworks import is exit 130, not a traceback."""
    try:
        from optspec.conformance.cli import main
    except KeyboardInterrupt:
        forget_interrupt()
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":  # a spawned worker imports this module as __mp_main__
    sys.exit(run())
