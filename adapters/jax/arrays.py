"""jax arrays; ``jax.numpy`` is itself an Array API namespace.  ``gpu`` when jax sees one."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def namespace() -> Any:
    import jax.numpy as xp

    return xp


def devices() -> list[str]:
    return ["cpu", "gpu"] if any(d.platform == "gpu" for d in jax.devices()) else ["cpu"]


def dtype(name: str) -> Any:
    return getattr(jax.numpy, name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    target = next(d for d in jax.devices() if device == "cpu" or d.platform == device)
    return jax.device_put(jax.numpy.asarray(x, dtype=dtype), target)
