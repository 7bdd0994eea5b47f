"""What the fork server of the certifier's workers imports once, before it forks any worker.

:func:`optspec.conformance.workers.start_workers` names the frameworks in
:data:`PRELOAD_VARIABLE`; the fork-safe ones among them (their import
starts no thread) are imported here; each worker is then forked with the
certifier and those frameworks already imported (with their
:attr:`~optspec.adapters.frameworks.Framework.lazy_modules`), instead of
importing them again.  A name that is not a framework, or a framework that
fails to import here, is simply left to the worker (which reports its
error).  A Ctrl-C while it imports ends the server without a traceback: the
command it serves reports the interrupt.
"""

from __future__ import annotations

import contextlib
import importlib
import os

try:
    from optspec.adapters import frameworks
    from optspec.conformance import certify, isolation  # noqa: F401  (imported for the workers)
    from optspec.conformance.workers import PRELOAD_VARIABLE
except KeyboardInterrupt:
    os._exit(130)


def _preload(name: str) -> None:
    if name not in frameworks.FRAMEWORKS or not frameworks.describe(name).fork_safe:
        return
    frameworks.import_framework(name)
    importlib.import_module(f"optspec.adapters.{name}.subjects")
    for lazy in frameworks.describe(name).lazy_modules:
        importlib.import_module(lazy)


try:
    for _name in filter(None, os.environ.get(PRELOAD_VARIABLE, "").split(",")):
        with contextlib.suppress(Exception):
            _preload(_name)
except KeyboardInterrupt:
    os._exit(130)
