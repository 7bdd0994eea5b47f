"""torch tensors through array-api-compat; ``cuda`` when torch sees a GPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def namespace() -> Any:
    import array_api_compat.torch as xp

    return xp


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def dtype(name: str) -> Any:
    return getattr(torch, name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    return torch.as_tensor(np.asarray(x), device=device).to(dtype).clone()
