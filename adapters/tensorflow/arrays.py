"""TensorFlow tensors, through the spec's own namespace (:mod:`optspec.adapters.tensorflow.namespace`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def namespace() -> Any:
    from optspec.adapters.tensorflow import namespace as xp

    return xp


def devices() -> list[str]:
    return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]


def dtype(name: str) -> Any:
    return getattr(tf, name)


def asarray(x: np.ndarray, dtype: Any, device: str) -> Any:
    with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        return tf.cast(tf.constant(np.asarray(x)), dtype)
