"""The arrays of Keras' backend, through that backend's own adapter (``optspec.adapters.<backend>.arrays``)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import keras
import numpy as np


def _backend() -> ModuleType:
    return importlib.import_module(f"optspec.adapters.{keras.backend.backend()}.arrays")


def namespace() -> Any:
    return _backend().namespace()


def devices() -> list[str]:
    return _backend().devices()


def dtype(name: str) -> Any:
    return _backend().dtype(name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    return _backend().asarray(x, dtype, device)
