"""Checks on hyperparameters and inputs, shared by every rule.

Each raises ``ValueError`` naming the parameter and its accepted range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def nonnegative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}={value!r} is invalid: it must be a finite number >= 0")


def known_zero(value: Any) -> bool:
    r"""Whether ``value`` is a Python number equal to 0.

    An array counts as nonzero: it may be traced by a compiler or hold one
    value per element.  Skipping a term only when it is known to vanish is
    exact either way, since :math:`(1 - 0)\,\theta = \theta` and :math:`g + 0\,\theta = g`.
    """
    return isinstance(value, (int, float)) and value == 0


def unit_interval(name: str, value: float) -> None:
    """Accepts ``0 <= value < 1``."""
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{name}={value!r} is invalid: it must lie in [0, 1)")


def betas(value: Sequence[float]) -> None:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"betas={value!r} is invalid: it must be a pair (beta1, beta2)")
    for index, beta in enumerate(value):
        unit_interval(f"betas[{index}]", beta)


def known_names(rule: str, given: Sequence[str], accepted: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter {', '.join(unknown)} for rule {rule!r}: "
            f"it accepts {', '.join(accepted)}"
        )


def same_shape_and_dtype(param: Any, grad: Any, step: int) -> None:
    if tuple(grad.shape) != tuple(param.shape):
        raise ValueError(
            f"gradient at step {step} has shape {tuple(grad.shape)} but the "
            f"parameter has shape {tuple(param.shape)}: they must match"
        )
    if grad.dtype != param.dtype:
        raise ValueError(
            f"gradient at step {step} has dtype {grad.dtype} but the parameter "
            f"has dtype {param.dtype}: cast the gradients to the parameter's dtype"
        )
