"""MLX arrays.  ``mlx.core`` has every function the spec calls (``sqrt``, ``maximum``, ``where``, ``stack``,
``zeros``, ``zeros_like``), with Python scalars weak as in the Array API; ``tests/test_namespaces.py``
holds it to NumPy like the other namespaces."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np


def namespace() -> Any:
    return mx


def devices() -> list[str]:
    return ["cpu", "gpu"] if mx.metal.is_available() else ["cpu"]


def dtype(name: str) -> Any:
    return getattr(mx, name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    x = np.asarray(x)
    stream = mx.gpu if device == "gpu" else mx.cpu
    exact = mx.array(x, dtype=mx.float64 if x.dtype == np.float64 else None)
    out = mx.astype(exact, dtype, stream=stream)
    mx.eval(out)
    return out
