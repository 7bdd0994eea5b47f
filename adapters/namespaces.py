"""``namespace(framework, device)``: the array namespace the spec runs on, and array transfer.

Each function checks its arguments once and hands over to the framework's
``arrays`` module (:mod:`optspec.adapters.frameworks` describes that face).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np

from optspec.adapters.errors import SetupError
from optspec.adapters.frameworks import describe, part

DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")


def quantized(name: str) -> bool:
    """Whether a dtype name is one of 8 bits that optimizers quantize their state to (``int8``, ``uint8``,
    ``float8_*``): values that no tolerance model of :data:`DTYPES` describes."""
    return name in ("int8", "uint8") or name.startswith("float8")


def devices(framework: str) -> list[str]:
    """The devices this framework sees here, by the names ``--device`` takes."""
    return part(framework, "arrays").devices()


def check_device(framework: str, device: str | None) -> str:
    present = devices(framework)
    chosen = device or "cpu"
    if chosen not in present:
        raise SetupError(
            f"device {chosen!r} is not available to {framework}: the devices present are "
            f"{', '.join(present)}"
        )
    return chosen


def namespace(framework: str, device: str | None = None) -> Any:
    """The Array API namespace of ``framework``, after checking ``device`` is present.

    numpy and torch come from array-api-compat, jax.numpy is itself
    compliant, and tensorflow is :mod:`optspec.adapters.tensorflow.namespace`.
    """
    check_device(framework, device)
    if not describe(framework).array_namespace:
        raise SetupError(f"{framework} has no Array API namespace: the spec runs on NumPy's "
                         "(adapters.namespace('numpy'))")
    return part(framework, "arrays").namespace()


def framework_dtype(framework: str, dtype: str) -> Any:
    """The framework's own dtype object for one of :data:`DTYPES`."""
    if dtype not in DTYPES:
        raise SetupError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return part(framework, "arrays").dtype(dtype)


def asarray(framework: str, x: np.ndarray, dtype: str, device: str | None = None) -> Any:
    """``x`` as an array of ``framework`` on ``device``, in ``dtype``: a fresh copy."""
    target = framework_dtype(framework, dtype)
    # every framework has a CPU: the drivers feed each step's gradients without asking again
    chosen = "cpu" if device is None or device == "cpu" else check_device(framework, device)
    return part(framework, "arrays").asarray(x, target, chosen)


#: dtype -> its name, for the dtypes met so far (the drivers ask at every step).
_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(x: Any) -> str:
    """The name of ``x``'s dtype in any framework (``float32``, ``bfloat16``, ``int64``, ...)."""
    dtype = getattr(x, "dtype", None)
    try:
        return _DTYPE_NAMES[dtype]
    except (KeyError, TypeError):  # TypeError: a dtype that cannot be hashed
        pass
    name = getattr(dtype, "name", None)
    name = str(name if isinstance(name, str) else dtype).rpartition(".")[2].lower()  # torch.float32, Paddle FLOAT32
    with contextlib.suppress(TypeError):
        _DTYPE_NAMES[dtype] = name
    return name


def to_numpy(x: Any) -> np.ndarray:
    """Any framework's array as a NumPy array; reduced types become float32.  A torch DTensor gives this
    rank's local part."""
    if type(x) is np.ndarray and x.dtype.kind != "V":
        return x.copy()
    if hasattr(x, "to_local"):
        x = x.to_local()
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if dtype_name(x) == "bfloat16":  # torch refuses it; Paddle would hand over the raw uint16 bits
            x = x.float() if hasattr(x, "float") else x.astype("float32")
        return np.array(x.numpy(), copy=True)
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    try:
        out = np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        # The buffer protocol has no bfloat16 (MLX exports through it): float32, of the array's own module.
        out = np.asarray(x.astype(sys.modules[type(x).__module__].float32))
    if out.dtype.kind == "V":  # ml_dtypes' bfloat16 and float8 types
        out = out.astype(np.float32)
    return out.copy()
