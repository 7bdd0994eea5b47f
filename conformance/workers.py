"""The fork server the certifier's workers start from: started once per process, as early as the command allows.

:func:`start_workers` starts it with the framework to preload (the server
imports it only where its import is fork-safe, :mod:`optspec.conformance.preload`);
:func:`start_early` starts it for a ``certify`` command line before the
CLI is imported, so that the server's imports overlap the CLI's.  This
module imports nothing of the certifier or of the frameworks.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Sequence

#: The environment variable naming the frameworks the fork server imports, comma-separated.
PRELOAD_VARIABLE = "OPTSPEC_WORKER_PRELOAD"

#: Not empty once this process started its fork server.
_SERVER_STARTED: list[str | None] = []


def start_workers(framework: str | None) -> multiprocessing.context.BaseContext:
    """The context workers start from: a fork server, started now if it is not running, or ``spawn``.

    The first call in a process starts the server with ``framework``
    preloaded (if fork-safe); it imports in the background while the caller
    goes on.
    """
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    if not _SERVER_STARTED:
        os.environ[PRELOAD_VARIABLE] = framework or ""
        context.set_forkserver_preload(["optspec.conformance.preload"])
        forkserver.ensure_running()
        _SERVER_STARTED.append(framework)
    return context


def start_early(argv: Sequence[str]) -> None:
    """Starts the fork server for ``optspec certify --framework NAME ...`` (``argv`` without the program).

    Any other command line, or one that asks for help, starts nothing: the
    certifier starts the server where it needs one.
    """
    if not argv or argv[0] != "certify" or {"-h", "--help"} & set(argv):
        return
    framework = None
    for index, item in enumerate(argv):
        if item == "--framework" and index + 1 < len(argv):
            framework = argv[index + 1]
        elif item.startswith("--framework="):
            framework = item.partition("=")[2]
    if framework:
        start_workers(framework)


def stop_server() -> None:
    """Kills the fork server this process started, if any: as the command ends (one that ends early, a usage
    error before any case, leaves no import running behind it, holding the terminal's output open), or as a
    rank of a launcher finds it needs none.  A later :func:`start_workers` starts a fresh one."""
    if not _SERVER_STARTED:
        return
    from multiprocessing import forkserver

    _SERVER_STARTED.clear()
    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
