"""Importing a framework, with the one-line error that says how to install it."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from optspec.adapters.errors import SetupError

FRAMEWORKS: tuple[str, ...] = ("numpy", "torch", "jax", "tensorflow")

#: The modules each framework needs, and the extra of ``pyproject.toml`` that installs them.
_MODULES = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "jax": ("jax", "optax"),
    "tensorflow": ("tensorflow", "keras"),
}


def check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise SetupError(
            f"unknown framework {framework!r}: use one of {', '.join(FRAMEWORKS)}"
        )
    return framework


def import_framework(framework: str) -> ModuleType:
    """Imports the framework's main module, configured as optspec needs it.

    JAX gets x64 enabled so that float64 is real; Keras gets the TensorFlow
    backend.
    """
    check_framework(framework)
    if framework == "tensorflow":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    modules = []
    for name in _MODULES[framework]:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as exc:
            raise SetupError(
                f"framework {framework!r} is not installed ({exc.name or name} is missing): "
                f"run `pip install -e '.[{framework}]'` or use a nox session, which installs it"
            ) from None
    if framework == "jax":
        modules[0].config.update("jax_enable_x64", True)
    return modules[0]


def is_available(framework: str) -> bool:
    try:
        import_framework(framework)
    except SetupError:
        return False
    return True


def version(framework: str) -> str:
    return str(import_framework(framework).__version__)
