"""The small Array API namespace the spec needs, over TensorFlow ops.

array-api-compat does not cover TensorFlow (data-apis/array-api-compat#18),
so this module provides the functions that ``spec/`` calls, with Array API
names and semantics.  It is checked against NumPy by the same tests as the
other namespaces (``tests/test_namespaces.py``).  Python scalars combine with a
tensor in the tensor's dtype, as the Array API's weak scalars do.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

__array_api_version__ = "2023.12"

float16 = tf.float16
bfloat16 = tf.bfloat16
float32 = tf.float32
float64 = tf.float64
int32 = tf.int32
int64 = tf.int64
bool = tf.bool

Array = tf.Tensor


def asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: Any = None) -> Array:
    with _on(device):
        return tf.identity(tf.convert_to_tensor(obj, dtype=dtype))


def zeros(shape: Any, *, dtype: Any = None, device: Any = None) -> Array:
    with _on(device):
        return tf.zeros(shape, dtype=dtype or tf.float64)


def zeros_like(x: Array, /, *, dtype: Any = None, device: Any = None) -> Array:
    return tf.zeros_like(x, dtype=dtype)


def full_like(x: Array, /, fill_value: float, *, dtype: Any = None, device: Any = None) -> Array:
    # tf.constant, not tf.cast: a Python float cast to float64 goes through float32 first
    return tf.fill(tf.shape(x), tf.constant(fill_value, dtype=dtype or x.dtype))


def astype(x: Array, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Array:
    return tf.cast(x, dtype)


def sqrt(x: Array, /) -> Array:
    return tf.sqrt(x)


def abs(x: Array, /) -> Array:
    return tf.abs(x)


def maximum(x1: Array, x2: Array, /) -> Array:
    return tf.maximum(x1, x2)


def minimum(x1: Array, x2: Array, /) -> Array:
    return tf.minimum(x1, x2)


def where(condition: Array, x1: Array, x2: Array, /) -> Array:
    return tf.where(condition, x1, x2)


def stack(arrays: Any, /, *, axis: int = 0) -> Array:
    return tf.stack(list(arrays), axis=axis)


def isfinite(x: Array, /) -> Array:
    return tf.math.is_finite(x)


def isnan(x: Array, /) -> Array:
    return tf.math.is_nan(x)


def sign(x: Array, /) -> Array:
    return tf.math.sign(x)


def _on(device: Any) -> Any:
    return tf.device(device) if device else _nullcontext()


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
