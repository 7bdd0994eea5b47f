"""``namespace(framework, device)``: the array namespace the spec runs on, and array transfer."""

from __future__ import annotations

from typing import Any

import numpy as np
from optspec.adapters.errors import SetupError
from optspec.adapters.frameworks import import_framework

DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")


def devices(framework: str) -> list[str]:
    """The devices this framework sees here, by the names ``--device`` takes."""
    fw = import_framework(framework)
    found = ["cpu"]
    if framework == "torch" and fw.cuda.is_available():
        found.append("cuda")
    elif framework == "jax" and any(d.platform == "gpu" for d in fw.devices()):
        found.append("gpu")
    elif framework == "tensorflow" and fw.config.list_physical_devices("GPU"):
        found.append("gpu")
    return found


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

    numpy, torch and jax come from array-api-compat (jax.numpy is itself
    compliant); tensorflow is :mod:`optspec.adapters.tensorflow_namespace`.
    """
    import_framework(framework)
    check_device(framework, device)
    if framework == "numpy":
        import array_api_compat.numpy as xp
    elif framework == "torch":
        import array_api_compat.torch as xp
    elif framework == "jax":
        import jax.numpy as xp
    else:
        import optspec.adapters.tensorflow_namespace as xp
    return xp


def framework_dtype(framework: str, dtype: str) -> Any:
    if dtype not in DTYPES:
        raise SetupError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if framework == "numpy":
        if dtype == "bfloat16":
            raise SetupError("numpy has no bfloat16: use --dtype float16, float32 or float64")
        return np.dtype(dtype)
    fw = import_framework(framework)
    if framework == "jax":
        return getattr(fw.numpy, dtype)
    return getattr(fw, dtype)


def asarray(framework: str, x: np.ndarray, dtype: str, device: str | None = None) -> Any:
    """``x`` as an array of ``framework`` on ``device``, in ``dtype``."""
    target = framework_dtype(framework, dtype)
    device = check_device(framework, device)
    if framework == "numpy":
        return np.asarray(x, dtype=target).copy()
    fw = import_framework(framework)
    if framework == "torch":
        return fw.as_tensor(np.asarray(x), device=device).to(target).clone()
    if framework == "jax":
        jdev = next(d for d in fw.devices() if device == "cpu" or d.platform == device)
        return fw.device_put(fw.numpy.asarray(x, dtype=target), jdev)
    with fw.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        return fw.cast(fw.constant(np.asarray(x)), target)


def to_numpy(x: Any) -> np.ndarray:
    """Any framework's array as a NumPy array; reduced types become float32."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy().copy()
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    out = np.asarray(x)
    if out.dtype.kind == "V" or str(out.dtype) == "bfloat16":
        out = out.astype(np.float32)
    return out.copy()
