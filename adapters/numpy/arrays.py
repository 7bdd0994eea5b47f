"""NumPy arrays through array-api-compat; NumPy has no bfloat16."""

from __future__ import annotations

from typing import Any

import numpy as np

from optspec.adapters.errors import SetupError


def namespace() -> Any:
    import array_api_compat.numpy as xp

    return xp


def devices() -> list[str]:
    return ["cpu"]


def dtype(name: str) -> Any:
    if name == "bfloat16":
        raise SetupError("numpy has no bfloat16: use --dtype float16, float32 or float64")
    return np.dtype(name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    return np.asarray(x, dtype=dtype).copy()
