"""One entry of optspec's cache as one ``.npz`` file: read back whole without pickle, or not at all.

The drawn cases (:mod:`optspec.conformance.drawn_cache`) and the golden
scenarios' free runs (:mod:`optspec.conformance.free_run`) are kept this
way, in their kind's folder of :func:`~optspec.adapters.caches.cache_folder`:
the arrays, and a JSON ``meta`` entry naming the key they were stored under.
A file that is absent, unreadable, truncated or another key's reads as
nothing (and is replaced by the next write); a write is atomic; where the
folder is ``off`` or cannot be written, nothing is kept.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from optspec.adapters.caches import cache_folder
from optspec.conformance.atomic import write_bytes

T = TypeVar("T")


def read(kind: str, name: str, decode: Callable[[np.lib.npyio.NpzFile, dict[str, Any]], T]) -> T | None:
    """``decode(arrays, meta)`` of the entry stored under ``name``, or None where there is none that reads back
    whole (``decode`` raising counts as not reading back)."""
    where = cache_folder(kind)
    if where is None:
        return None
    with contextlib.suppress(Exception):
        with np.load(where / f"{name}.npz", allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"][()]))
            if meta["key"] != name:
                return None
            return decode(stored, meta)
    return None


def write(kind: str, name: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Stores ``arrays`` and ``meta`` (JSON) under ``name``, atomically; where the folder cannot be written,
    nothing."""
    where = cache_folder(kind)
    if where is None:
        return
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, meta=np.array(json.dumps({**meta, "key": name})))
    with contextlib.suppress(OSError):
        write_bytes(where / f"{name}.npz", buffer.getvalue())
