"""Keras 3 on the backend it runs on (``KERAS_BACKEND``: tensorflow, jax or torch): ``keras.optimizers`` and plugins.

One Keras optimizer class runs different code on each backend (on torch,
``keras.optimizers.AdamW`` is a foreach kernel,
``keras/src/backend/torch/optimizers/torch_adamw.py``), so the certificate
names the backend and its version beside Keras'.  Arrays are the backend's
own, through that backend's adapter.  On jax, x64 is enabled, so that a
float64 ``keras.Variable`` is float64 and not silently float32.  Subjects
run in float32 by default: Keras keeps its learning rate in a float32
variable, whatever the parameters' dtype (``docs/DEVIATIONS.md``).
"""

import importlib
import json
import os

from optspec.adapters.errors import SetupError
from optspec.adapters.frameworks import Framework

#: The backends Keras optimizers step on that optspec has an adapter for.
BACKENDS = ("tensorflow", "jax", "torch")


def _configure(keras) -> None:
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise SetupError(f"--framework keras certifies Keras on {', '.join(BACKENDS)}, but Keras runs on {backend} "
                         f"here (KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')!r}): set KERAS_BACKEND to one "
                         "of those")
    if backend == "jax":
        importlib.import_module("jax").config.update("jax_enable_x64", True)


def configured_backend() -> str:
    """The backend Keras will run on, read as Keras reads it, without importing it: ``KERAS_BACKEND`` where set,
    else the ``backend`` of ``keras.json`` in ``KERAS_HOME`` (``~/.keras`` by default), else tensorflow."""
    if backend := os.environ.get("KERAS_BACKEND"):
        return backend
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as handle:
            configured = json.load(handle).get("backend")
    except (OSError, ValueError, AttributeError):
        configured = None
    return configured if isinstance(configured, str) and configured else "tensorflow"


def _same_as() -> str | None:
    """tensorflow where Keras runs on it: its built-in subjects are then tensorflow's Keras subjects."""
    return "tensorflow" if configured_backend() == "tensorflow" else None


def _version(keras) -> str:
    backend = keras.backend.backend()
    return f"{keras.__version__} on {backend} {importlib.import_module(backend).__version__}"


FRAMEWORK = Framework(name="keras", modules=("keras",), extra="keras", default_dtype="float32",
                      native_convention="keras", configure=_configure, describe_version=_version, same_as=_same_as,
                      environment={"JAX_ENABLE_X64": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
                      import_noise=(r"WARNING: All log messages before absl::InitializeLog\(\) is called",
                                    r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] "))
