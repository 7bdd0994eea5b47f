"""What the fork server of the certifier's workers imports once, before it forks any worker.

:func:`optspec.conformance.isolation.start_workers` names the frameworks in
:data:`PRELOAD_VARIABLE` (only fork-safe ones: their import starts no
thread); each worker is then forked with the certifier and those frameworks
already imported (with their :attr:`~optspec.adapters.frameworks.Framework.lazy_modules`),
instead of importing them again.  A framework that fails
to import here is simply imported (and its error reported) by the worker.
"""

from __future__ import annotations

import contextlib
import importlib
import os

from optspec.adapters import frameworks
from optspec.conformance import certify, isolation  # noqa: F401  (imported for the workers)

#: The environment variable naming the frameworks to import, comma-separated.
PRELOAD_VARIABLE = "OPTSPEC_WORKER_PRELOAD"

for _name in filter(None, os.environ.get(PRELOAD_VARIABLE, "").split(",")):
    with contextlib.suppress(Exception):
        frameworks.import_framework(_name)
        importlib.import_module(f"optspec.adapters.{_name}.subjects")
        for _lazy in frameworks.describe(_name).lazy_modules:
            importlib.import_module(_lazy)
