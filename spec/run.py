"""``spec.run``: a whole trajectory of one rule, on the namespace of its input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optspec.spec import _validate
from optspec.spec.rules import get_rule

Array = Any


def learning_rates(lr: float | Sequence[float], steps: int) -> list[float]:
    """Expands a float or a per-step sequence into ``steps`` Python floats, validated."""
    if isinstance(lr, (int, float)):
        rates = [float(lr)] * steps
    else:
        rates = [float(x) for x in lr]
        if len(rates) != steps:
            raise ValueError(
                f"lr has {len(rates)} values but there are {steps} gradient steps: "
                "give one learning rate per step, or a single float"
            )
    for index, rate in enumerate(rates):
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"lr={rate!r} at step {index + 1} is invalid: it must be a finite number >= 0")
    return rates


def run(
    rule: str,
    param0: Array,
    grads: Array | Sequence[Array],
    *,
    convention: Any = None,
    lr: float | Sequence[float] | None = None,
    xp: Any = None,
    **hyper: Any,
) -> Array:
    """Runs ``rule`` from ``param0`` over ``grads`` and returns the trajectory.

    Args:
      rule: a name from :data:`spec.RULES`.
      param0: the initial parameter; its namespace runs the computation.
      grads: ``T`` gradients of ``param0``'s shape and dtype (an array with a
        leading axis of length ``T``, or a sequence).
      convention: a preset name or a value of the rule's convention type
        (:class:`spec.Convention` for adam and adamw, :class:`spec.sgd.SGDConvention`,
        ... for the others; ``"torch"`` by default).
      lr: a float, or one learning rate per step; the rule's default if omitted.
      xp: an array namespace overriding the one of ``param0``.
      **hyper: the rule's other hyperparameters, in torch's names.

    Returns:
      An array of shape ``(T, *param0.shape)``: the parameter after each step.
    """
    spec_rule = get_rule(rule)
    if xp is None:
        import array_api_compat

        xp = array_api_compat.array_namespace(param0)
    steps = len(grads) if isinstance(grads, Sequence) else grads.shape[0]
    rates = learning_rates(spec_rule.defaults["lr"] if lr is None else lr, steps)
    full = spec_rule.hyperparameters(convention, **hyper)
    if spec_rule.takes_initial_lr and steps:
        full["initial_lr"] = rates[0]
    state = spec_rule.init_state(xp, param0, full)
    param = param0
    trajectory = []
    for index in range(steps):
        grad = grads[index] if isinstance(grads, Sequence) else grads[index, ...]
        _validate.same_shape_and_dtype(param0, grad, index + 1)
        param, state = spec_rule.step(xp, param, grad, state, lr=rates[index], **full)
        trajectory.append(param)
    if not trajectory:
        return xp.zeros((0, *param0.shape), dtype=param0.dtype)
    return xp.stack(trajectory)
