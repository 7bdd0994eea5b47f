r"""Whether a case can be represented in a subject's dtype, and fitting named cases to it.

A comparison in a reduced dtype measures the rule only while every value the
rule computes is a normal number of that dtype.  Past the largest finite value
:math:`g^2` overflows to inf; below the smallest normal value rounding is
absolute, not relative, and a moment that underflows to 0 turns
:math:`\hat m/(\sqrt{\hat v}+\epsilon)` into :math:`0/\epsilon` or NaN.  Neither is
a property of the update rule, so a case whose intermediate values leave
:math:`[\mathrm{tiny}\cdot 2^{4},\ \mathrm{max}\cdot 2^{-4}]` (a margin of four
binades for the operations between the values checked) is not applicable in
that dtype, unless the dtype's range is what the case tests.

The values checked, along the float64 reference: the parameters, the
gradients and every array of the rule's state after every step (the moments
:math:`m, v`, the AMSGrad maximum, Adagrad's sum, RMSprop's averages and
momentum buffers), which contain :math:`g^2` scaled by :math:`1-\beta_2`; and
the scalars a subject may hold in its dtype: :math:`\epsilon`,
:math:`\mathrm{lr}_t`, :math:`\mathrm{lr}_t\lambda`, :math:`1-\beta_1`, :math:`1-\beta_2`
and the bias corrections :math:`1-\beta^t`.  Exact zeros are representable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from optspec import spec
from optspec.conformance import tolerance
from optspec.conformance.reference import reference, round_to_dtype

#: Four binades between a checked value and the edge of the dtype's normal range.
MARGIN = 2.0**4


@dataclasses.dataclass(frozen=True)
class NormalRange:
    """The normal numbers of a floating dtype: :math:`[\\mathrm{tiny}, \\mathrm{max}]` in magnitude."""

    dtype: str
    tiny: float
    max: float

    @property
    def low(self) -> float:
        """The smallest magnitude a case may hold: ``tiny`` times :data:`MARGIN`."""
        return self.tiny * MARGIN

    @property
    def high(self) -> float:
        """The largest magnitude a case may hold: ``max`` over :data:`MARGIN`."""
        return self.max / MARGIN

    def violation(self, name: str, values: Any, *, underflow: bool = True) -> str | None:
        """A one-line reason if a nonzero magnitude of ``values`` leaves ``[low, high]``, else None.

        With ``underflow=False`` only the upper edge is checked.
        """
        magnitudes = np.abs(np.asarray(values, np.float64))
        nonzero = magnitudes[(magnitudes != 0) & np.isfinite(magnitudes)]
        if nonzero.size == 0:
            return None
        smallest, largest = float(nonzero.min()), float(nonzero.max())
        if largest > self.high:
            return (f"{name} reaches {largest:.3g}, beyond {self.dtype}'s largest value "
                    f"{self.max:.3g} (with {MARGIN:g}x margin)")
        if underflow and smallest < self.low:
            return (f"{name} falls to {smallest:.3g}, below {self.dtype}'s smallest normal value "
                    f"{self.tiny:.3g} (with {MARGIN:g}x margin)")
        return None


_RANGES = {
    "float64": NormalRange("float64", float(np.finfo(np.float64).tiny), float(np.finfo(np.float64).max)),
    "float32": NormalRange("float32", float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)),
    "float16": NormalRange("float16", float(np.finfo(np.float16).tiny), float(np.finfo(np.float16).max)),
    "bfloat16": NormalRange("bfloat16", 2.0**-126, float((2 - 2.0**-7) * 2.0**127)),
}


def normal_range(dtype: str) -> NormalRange:
    return _RANGES[dtype]


def beta_near_one(beta: float, dtype: str) -> bool:
    r"""Whether :math:`1-\beta < 2u`: held in ``dtype``, :math:`\beta^t` may round to 1.

    Measured: Keras' AdamW in bfloat16 with :math:`\beta_1 = 1-2^{-9}` computes
    :math:`1-\beta_1^t = 0` and steps to -inf.
    """
    return 0 < beta < 1 and 1 - _rounded_scalar(beta, dtype) < 2 * tolerance.unit_roundoff(dtype)


def _scalar_violation(case: Any, dtype: str, holds_betas: bool) -> str | None:
    r"""Why a scalar held in ``dtype`` would move the update by more than the model allows, or None.

    The learning rate multiplies the whole step, so its relative rounding error
    must stay within :math:`4u` (the model's safety factor); :math:`\mathrm{lr}\,\lambda`
    scales :math:`\theta`, so its absolute rounding error must stay within :math:`u`.
    :math:`\beta` held in the dtype is part of the model (its condition number
    :math:`\kappa_t`), unless it rounds to 1 (``holds_betas``: Keras casts
    :math:`\beta` to the variable's dtype), where the bias correction
    :math:`1-\beta^t` is 0, and a momentum it holds may not round to 0 (1e-257
    is 0 in float32, where SGD skips its momentum branch and with it the
    dampening; any other hyperparameter that tiny changes the step by as
    little); :math:`\epsilon` is checked against the second moment.
    """
    u = tolerance.unit_roundoff(dtype)
    if holds_betas:
        momentum = case.hyper.get("momentum")
        if isinstance(momentum, float) and momentum and _rounded_scalar(momentum, dtype) == 0:
            return (f"momentum={momentum:g} is 0 in {dtype}, where a subject that holds it steps without the "
                    "momentum branch, and so without dampening (MindSpore's SGD)")
        for index, beta in enumerate(case.hyper.get("betas", ()), start=1):
            if beta_near_one(beta, dtype):
                return (f"beta{index}={beta:g} is within 2 units of roundoff of 1 in {dtype}, where a subject "
                        f"that holds it computes beta{index}^t as 1 and its bias correction as 0")
    for lr in case.lrs:
        held = _rounded_scalar(lr, dtype)
        if lr and abs(held - lr) > 4 * u * abs(lr):
            return (f"the learning rate {lr:.3g} is {held:.3g} in {dtype} (off by "
                    f"{abs(held - lr) / lr:.2g}, more than 4 units of roundoff)")
        decay = lr * case.hyper.get("weight_decay", 0.0)
        if abs(_rounded_scalar(decay, dtype) - decay) > u:
            return f"lr*weight_decay {decay:.3g} is {_rounded_scalar(decay, dtype):.3g} in {dtype}"
    return None


def _state_arrays(states: Sequence[Any]) -> Iterator[tuple[str, np.ndarray]]:
    if not states:
        return
    for field in states[0]._fields:
        values = [getattr(s, field) for s in states]
        # a NumPy scalar too: arithmetic on a 0-d array (a scalar parameter's state) gives one
        if isinstance(values[0], np.floating) or (isinstance(values[0], np.ndarray) and values[0].dtype.kind == "f"):
            yield field, np.stack([np.asarray(v) for v in values])


def _eps_effect(eps: float, dtype: str, second_moments: list[np.ndarray]) -> float:
    r"""The relative change of the update if ``eps`` is held in ``dtype``: :math:`|\epsilon - \tilde\epsilon|/(\sqrt{v}+\epsilon)`."""
    held = _rounded_scalar(eps, dtype)
    if held == eps:
        return 0.0
    smallest = min((float(np.min(v)) for v in second_moments), default=0.0)
    return abs(eps - held) / (np.sqrt(max(smallest, 0.0)) + eps)


def _rounded_scalar(value: float, dtype: str) -> float:
    """``value`` held in ``dtype``; in bfloat16 only its subnormals round away.

    bfloat16 shares float32's exponent range, and these checks are about range:
    a normal bfloat16 value is left as it is.
    """
    if dtype == "bfloat16" and abs(value) >= normal_range(dtype).tiny:
        return value
    return float(round_to_dtype(value, dtype))


def unrepresentable(rule: str, convention: spec.Knobs | None, case: Any, dtype: str, *, holds_betas: bool = False) -> str | None:
    """Why ``case`` cannot be run in ``dtype`` without measuring the dtype's range, or None.

    ``case`` is a :class:`conformance.cases.Case` with explicit hyperparameters;
    the check follows the float64 reference (:func:`conformance.reference.reference`).
    ``holds_betas``: the subject holds :math:`\\beta` in its dtype.
    """
    if dtype == "float64":
        return None
    bounds = normal_range(dtype)
    if (why := _scalar_violation(case, dtype, holds_betas)) is not None:
        return why
    second_moments = []
    for index, (theta0, grads) in enumerate(zip(case.params0, case.grads)):
        grads = np.asarray(grads, np.float64)
        arrays = [("the initial parameter", theta0), ("the gradient", grads)]
        second_moment = spec.get_rule(rule).second_moment
        if second_moment is not None:
            arrays.append(("the squared gradient", grads * grads))
        for name, values in arrays:
            if (why := bounds.violation(f"{name} of tensor {index}", values, underflow=False)) is not None:
                return why
        states: list[Any] = []
        free, _ = reference(rule, convention, case, np.asarray(theta0, np.float64), grads, states=states)
        if (why := bounds.violation(f"the parameter of tensor {index}", free, underflow=False)) is not None:
            return why
        for field, values in _state_arrays(states):
            second = field in (second_moment, "max_exp_avg_sq")
            why = bounds.violation(f"the state {field} of tensor {index}", values, underflow=second)
            if why is not None:
                return why
            if field == second_moment:
                second_moments.append(values)
    eps = case.hyper.get("eps")
    if eps and _eps_effect(eps, dtype, second_moments) > tolerance.unit_roundoff(dtype):
        smallest = min((float(np.min(v)) for v in second_moments), default=0.0)
        return (f"eps={eps:g} is {_rounded_scalar(eps, dtype):g} in {dtype}, and it matters: "
                f"the second moment falls to {smallest:.3g}")
    return None


def fit_to_dtype(rule: str, convention: spec.Knobs | None, case: Any, dtype: str, *,
                 holds_betas: bool = False) -> tuple[Any, str | None]:
    r"""``case`` made representable in ``dtype``, and a note of what changed (None if nothing).

    An Adam-family step is invariant under :math:`g \to cg,\ \epsilon \to c\epsilon`
    (both moments scale with :math:`g`), so scaling the gradients and
    :math:`\epsilon` by a power of two keeps what the case discriminates.  If
    no scaling fits, an :math:`\epsilon` that the dtype cannot hold (1e-8 is 0
    in float16) is also raised to the dtype's smallest normal value, which
    matters only where :math:`v` is 0.  Raises ``ValueError`` when nothing fits.
    """
    if unrepresentable(rule, convention, case, dtype, holds_betas=holds_betas) is None:
        return case, None
    tiny = normal_range(dtype).tiny
    attempts = [(case, [])]
    eps = case.hyper.get("eps")
    if eps and eps < tiny:
        raised = float(2.0 ** np.ceil(np.log2(tiny)))
        attempts.append((dataclasses.replace(case, hyper={**case.hyper, "eps": raised}),
                         [f"eps={eps:g} is {_rounded_scalar(eps, dtype):g} in {dtype}, so the case uses "
                          f"eps={raised:g}"]))
    for base, notes in attempts:
        for power in sorted(range(-40, 41), key=abs):
            scale = 2.0**power
            hyper = dict(base.hyper)
            if hyper.get("eps"):
                hyper["eps"] = hyper["eps"] * scale
            candidate = dataclasses.replace(base, grads=[g * scale for g in base.grads], hyper=hyper)
            if unrepresentable(rule, convention, candidate, dtype, holds_betas=holds_betas) is None:
                scaled = [f"gradients and eps scaled by 2^{power} to fit {dtype}'s range"] if power else []
                return candidate, "; ".join([*notes, *scaled])
    raise ValueError(f"{case.label} cannot be represented in {dtype}: "
                     f"{unrepresentable(rule, convention, case, dtype, holds_betas=holds_betas)}")


def held_hyperparameters(hyper: Mapping[str, Any], dtype: str) -> list[str]:
    """Hyperparameters that a subject holding them in ``dtype`` would hold as another value.

    For example ``eps=1e-08 is 0 in float16``, ``beta2=0.99999 is 1 in float16``.
    """
    if dtype == "float64":
        return []
    notes = []
    values = [("eps", hyper.get("eps"))]
    if "betas" in hyper:
        values += [(f"beta{i}", b) for i, b in enumerate(hyper["betas"], start=1)]
    for name, value in values:
        if isinstance(value, float) and value:
            held = _rounded_scalar(value, dtype)
            if held == 0 or held == 1 or abs(held - value) > 0.01 * abs(value):
                notes.append(f"{name}={value:g} is {held:g} in {dtype}")
    return notes
