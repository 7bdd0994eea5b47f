"""Adapters: the spec's array namespace on each framework, and drivers for real optimizers.

Two jobs, one module per framework (``numpy``, ``torch``, ``jax``,
``tensorflow``) over shared code: :mod:`adapters.namespaces` gives the spec a
namespace on a device; :mod:`adapters.driver` drives subjects.
"""

from __future__ import annotations

import importlib
from typing import Any

from adapters.driver import Session, SubjectInfo, Trajectory, drive, drive_batch
from adapters.errors import SetupError, SubjectError, one_line
from adapters.frameworks import FRAMEWORKS, check_framework, import_framework, is_available
from adapters.namespaces import DTYPES, asarray, devices, namespace, to_numpy

__all__ = [
    "DTYPES",
    "FRAMEWORKS",
    "Session",
    "SetupError",
    "SubjectError",
    "SubjectInfo",
    "Trajectory",
    "asarray",
    "devices",
    "drive",
    "drive_batch",
    "framework_module",
    "is_available",
    "load_plugin",
    "namespace",
    "resolve_subject",
    "subjects",
    "to_numpy",
]


def framework_module(framework: str) -> Any:
    """``adapters.<framework>``, after the framework itself imported cleanly."""
    import_framework(framework)
    return importlib.import_module(f"adapters.{framework}")


def subjects(framework: str) -> tuple[SubjectInfo, ...]:
    """The framework's built-in subjects."""
    return framework_module(framework).SUBJECTS


def load_plugin(framework: str, target: str) -> SubjectInfo:
    """Imports ``MODULE:ATTR`` and checks it against the framework's plugin contract."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise SetupError(f"--impl {target!r} is not of the form MODULE:ATTR (e.g. mypkg.optim:AdamW)")
    adapter = framework_module(framework)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SetupError(
            f"--impl {target!r}: module {module_name!r} does not import ({one_line(exc)}); "
            "check it is installed and on PYTHONPATH"
        ) from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise SetupError(f"--impl {target!r}: module {module_name!r} has no attribute {attr!r}") from None
    try:
        return adapter.plugin(target, obj)
    except Exception as exc:
        raise SetupError(f"--impl {target!r} is not a {framework} AdamW drop-in: {one_line(exc)}") from None


def resolve_subject(framework: str, impl: str | None) -> list[SubjectInfo]:
    """Subjects for ``--impl``: a plugin ``MODULE:ATTR``, a built-in name, or all built-ins."""
    check_framework(framework)
    if impl and ":" in impl:
        return [load_plugin(framework, impl)]
    found = subjects(framework)
    if impl is None:
        return list(found)
    chosen = [s for s in found if s.name == impl or s.name.split("[")[0] == impl]
    if not chosen and "." in impl:
        raise SetupError(
            f"--impl {impl!r} is not of the form MODULE:ATTR (e.g. mypkg.optim:AdamW) nor a built-in "
            f"{framework} subject ({', '.join(s.name for s in found)})"
        )
    if not chosen:
        raise SetupError(
            f"unknown subject {impl!r} for {framework}: use MODULE:ATTR or one of "
            f"{', '.join(s.name for s in found)}"
        )
    return chosen
