"""Paddle tensors.  Paddle has no Array API namespace (``Framework.array_namespace`` is False): the spec's
reference runs on NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import paddle


def devices() -> list[str]:
    return ["cpu", "gpu"] if paddle.device.cuda.device_count() > 0 else ["cpu"]


def dtype(name: str) -> Any:
    return getattr(paddle, name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    place = paddle.CUDAPlace(0) if device == "gpu" else paddle.CPUPlace()
    return paddle.to_tensor(np.asarray(x, dtype=np.float64), place=place).astype(dtype)
