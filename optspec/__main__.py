"""``optspec`` and ``python -m optspec``: the CLI, with Ctrl-C handled from the first import on."""

import contextlib
import os
import sys

from optspec.conformance.interrupt import interrupted


def run(*, end_process: bool = False) -> int:
    """Imports the CLI and runs it; a Ctrl-C while the frameworks import is exit 130, not a traceback.

    With ``end_process``, a command that ran ends the process with its exit code as soon as its output is
    flushed, without tearing the interpreter down (with torch imported that takes about a second, and every
    file it writes is already in place, written atomically); a rank of a framework's launcher returns as
    usual, so that its launcher's own teardown runs."""
    try:
        os.getcwd()  # hypothesis reads it on import, and the workers start from it
    except FileNotFoundError:
        print("error: the current directory no longer exists: cd to one that does and run it again",
              file=sys.stderr)
        return 2
    try:
        from optspec.conformance.workers import start_early, stop_server

        start_early(sys.argv[1:])  # the workers' fork server imports while the CLI does
        from optspec.adapters import launched

        found = launched()  # by torchrun: this process is one of the ranks it started, and starts no worker
        if found is not None:
            stop_server()
        from optspec.conformance.cli import main
    except KeyboardInterrupt:
        from optspec.conformance.workers import stop_server

        stop_server()
        return interrupted()
    try:
        code = found.module.run(main) if found is not None else main()
    finally:
        from optspec.conformance.workers import stop_server

        stop_server()
    if end_process and found is None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: the exit code still goes out
                stream.flush()
        os._exit(code)
    return code


def script() -> None:
    """The ``optspec`` command: :func:`run`, ending the process as soon as the command's output is out."""
    sys.exit(run(end_process=True))


if __name__ == "__main__":  # a spawned worker imports this module as __mp_main__
    script()
