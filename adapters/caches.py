"""Where optspec keeps what a machine computes once and every later run reads: drawn cases, compiled steps.

The folder is ``$OPTSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/optspec``, else
``~/.cache/optspec``, with one subfolder per kind of content;
``OPTSPEC_CACHE_DIR=off`` keeps nothing.  What is kept there is keyed by
everything it depends on, so a run reads only what it would have computed.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable naming the cache's folder, or ``off``.
CACHE_VARIABLE = "OPTSPEC_CACHE_DIR"


def cache_folder(kind: str) -> Path | None:
    """The folder that keeps ``kind`` (``drawn``, ``jax``), or None where ``OPTSPEC_CACHE_DIR=off``."""
    named = os.environ.get(CACHE_VARIABLE)
    if named is not None:
        return None if named.strip().lower() in ("off", "") else Path(named).expanduser() / kind
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optspec" / kind
