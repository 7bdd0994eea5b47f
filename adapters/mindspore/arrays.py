"""MindSpore tensors.  MindSpore has no Array API namespace (``Framework.array_namespace`` is False): the spec's
reference runs on NumPy."""

from __future__ import annotations

from typing import Any

import mindspore
import numpy as np


def devices() -> list[str]:
    return ["cpu"]


def dtype(name: str) -> Any:
    return getattr(mindspore, name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    return mindspore.Tensor(np.asarray(x, dtype=np.float64)).astype(dtype)
