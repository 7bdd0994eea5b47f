r"""The bias test: a systematic error below the per-element floor, seen across the elements of a step.

In bfloat16 or float16 the per-element bounds of the tolerance model are
tens of units of roundoff wide, so a hyperparameter off by a few per cent
passes them.  But such a defect moves every element's exact new value
:math:`x_i` the same way, by :math:`\delta\,s_i` (:math:`s_i = \partial
x_i/\partial\ln h`, the step's sensitivity to a relative change of the
hyperparameter :math:`h`), while a correct kernel's rounding moves it either
way.  Where the parameters are rounded to nearest, the subject's new value
is :math:`\mathrm{rn}(x_i + \eta_i)`, with :math:`\eta_i` what the kernel's
own arithmetic (in float32, or in the parameters' dtype) and its state's
rounding move the value it rounds.  Its *flips*, the elements where the
subject's value differs from the model's :math:`p_i`, are where
:math:`x_i + \eta_i` and :math:`x_i` lie on either side of a rounding
boundary; the sign of the flip is the sign of :math:`\eta_i`.  For each
direction :math:`h` (lr, and each nonzero hyperparameter or component of
one) and each sign :math:`\sigma = \pm 1`, over the flips of a step,

.. math::

   S = \sum_{i \in \text{flips}} \sigma\,\mathrm{sign}(\theta_{t,i} - p_i)\,\mathrm{sign}(s_i),
   \qquad \text{rejected where } S > Z\sqrt{n},

with :math:`n` the flips counted (:math:`s_i \ne 0`).

**Where a kernel may round.**  The model is not unique: a kernel may round
the step once (torch's fused AdamW), round the decoupled decay first and the
update after it (torch's for-loop kernel: ``param.mul_(1 - lr * wd)``, then
``addcdiv_``), do so with the factor :math:`1-\mathrm{lr}\lambda` itself
rounded to the parameters' dtype (torch's foreach kernel: ``_foreach_mul_``
casts its scalar), or round the update first and the decay after it.  Each
is a model: with :math:`D_i` the decay's part of the step, where the decay
bypasses the state, and :math:`f_i = 1 + D_i/\theta_i`,

.. math::

   p_i = \mathrm{rn}(x_i),\quad
   \mathrm{rn}(\mathrm{rn}(\theta_i + D_i) + x_i - \theta_i - D_i),\quad
   \mathrm{rn}(\mathrm{rn}(\theta_i\,\mathrm{rn}(f_i)) + x_i - \theta_i - D_i),\quad
   \mathrm{rn}(\mathrm{rn}(x_i - D_i) + D_i);

a step is rejected in a direction only where every model rejects it.  A
rule whose kernels add their update in several rounded parts
(:attr:`~optspec.spec.Rule.rounded_parts`, torch's NAdam) is not tested.

**What a correct kernel may do systematically** is allowed for by shifting
the model's value by :math:`\sigma A_i\,\mathrm{sign}(s_i)` before rounding,
with

.. math::

   A_i = \sum_k r_k |s_{k,i}| + 4u_{32}|\theta_i| + 3(t-1)\,u_s\,|U_i|,

:math:`U_i = x_i - \theta_i - D_i` the update.  :math:`r_k` is the relative
error hyperparameter :math:`k` actually has held in float32 or in the
parameters' dtype (:func:`held_roundoff`: 0 for a value the dtype holds
exactly); lr's is that of the step's scalar factors, :math:`\mathrm{lr}_t`,
β, :math:`1-\beta`, :math:`1-\beta^t`, plus one unit :math:`u` of the
parameters' dtype for a rounding of the update itself
(:func:`scalar_roundoff`).  :math:`4u_{32}|\theta_i|` is a decay factor
rounded to float32.  From the second step on, the state: a kernel that
holds it in a dtype of unit roundoff :math:`u_s` may round it twice in a
step where the spec rounds once (torch's
``exp_avg_sq.mul_(beta2).addcmul_(...)`` in bfloat16 keeps
:math:`\mathrm{rn}(\beta_2 v) = v` where :math:`(1-\beta_2)v` is below half
a unit), at most :math:`u_s` of each of its terms per rounding, accumulated
over the steps.  :math:`u_s = 0` where each step starts from the subject's
own state (read from it, :mod:`optspec.conformance.quantized_state`).  In
bfloat16 the state term makes the first steps the ones that see a defect of
1 %.

**The false-alarm rate.**  Where :math:`|\eta_i|` is symmetric about 0 and
independent across elements (rounding to nearest, of values whose position
between two representable ones does not depend on the sign of
:math:`s_i`), each term of :math:`S` is :math:`\pm 1` with mean at most 0
once shifted by the allowance, and Hoeffding's inequality gives
:math:`P(S > Z\sqrt{n}) \le e^{-Z^2/2}`, for any :math:`n`.  With
:data:`Z` = 6 that is :math:`1.5\times10^{-8}` per step, direction and sign;
a certification tests a few thousand, so a correct kernel fails one with
probability below :math:`10^{-4}`.  A tensor of fewer than :math:`Z^2`
elements can never reach the threshold and is not tested.

Parameters rounded stochastically or kept with a Kahan compensation have
checks of their own (:mod:`optspec.conformance.rounding`,
:mod:`optspec.conformance.kahan`).  Float32 parameters are not tested: there
:math:`4u_{32}|\theta_i|` is half a unit of the rounding itself, so that a
decay factor rounded to float32 would have to be a model of its own, and the
test's false alarms would have to be measured on every framework's float32
kernels (the certifications most runs make); neither is done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from optspec.conformance import tolerance
from optspec.conformance.reference import round_to_dtype

#: The threshold on :math:`S/\sqrt{n}`: a correct kernel passes a test with probability at least
#: :math:`1 - e^{-Z^2/2}` (Hoeffding).
Z = 6.0
#: Fewer elements than :math:`Z^2` cannot reach the threshold.
MIN_ELEMENTS = int(Z * Z)
#: The dtypes whose parameters are tested (see the module docstring for float32).
TESTED_DTYPES = ("bfloat16", "float16")
#: The relative change of a hyperparameter by which its direction is differenced, in float64.
DELTA = 2.0**-20


@dataclasses.dataclass(frozen=True)
class Direction:
    r"""A hyperparameter's direction: ``sensitivity[t]`` is :math:`\partial x/\partial\ln h` at step ``t + 1``,
    and ``roundoff`` the relative change of :math:`h` that a correct kernel may make by holding it rounded (an
    array broadcast against ``sensitivity`` where it changes with the step)."""

    name: str
    sensitivity: np.ndarray
    roundoff: float | np.ndarray


@dataclasses.dataclass(frozen=True)
class ExactStep:
    """What the test compares a tensor's steps with.

    ``exact[t]`` is the float64 value of step ``t + 1`` from the subject's own
    parameters before it, ``previous[t]``; ``decay[t]`` is the decoupled decay's part
    of it, where the decay bypasses the state (None otherwise); ``allowance[t]``
    is :math:`A` of the module docstring.
    """

    previous: np.ndarray
    exact: np.ndarray
    decay: np.ndarray | None
    allowance: np.ndarray


def applies_to(dtype: str, size: int, param_rounding: str) -> bool:
    """Whether a tensor of ``size`` elements in ``dtype``, rounded ``param_rounding``, is tested."""
    return dtype in TESTED_DTYPES and size >= MIN_ELEMENTS and param_rounding == "nearest"


def held_roundoff(value: float, dtype: str) -> float:
    """The relative error of ``value`` held in float32 or in ``dtype``, whichever is larger."""
    return max(abs(float(round_to_dtype(value, d)) - value) / abs(value) for d in ("float32", dtype))


def scalar_roundoff(hyper: Mapping[str, object], lrs: Sequence[float], dtype: str,
                    bias_corrected: bool) -> np.ndarray:
    r"""Per step, the relative error in the step's size that a correct kernel may make systematically:
    one rounding of the update in ``dtype`` (:math:`u`: a sum such as :math:`\sqrt{\hat v}+\epsilon` whose
    smaller term is below half a unit of the other rounds the same way in every element; torch's ``add_(eps)``
    in bfloat16 loses :math:`\sqrt{\hat v}`), and the scalar factors it forms from its hyperparameters, held
    in float32 or in ``dtype``: :math:`\mathrm{lr}_t`, and for each hyperparameter :math:`h \in (0, 1)` (each
    β, a momentum) :math:`h`, :math:`1-h` and, for a bias-corrected rule, :math:`1-h^t`, each computed from
    :math:`h` held there (Keras casts β to the variable's dtype before :math:`1-\beta_1^t`: at β1 = 0.9,
    :math:`1-\mathrm{rn}(\beta_1)` is 1.6 % off :math:`1-\beta_1` in bfloat16) or rounded there itself.  The
    step is a product of such factors, so its relative error is at most their sum.  Each factor's error is the
    one its value actually has, not a bound: a case whose values are exact in ``dtype`` is allowed nothing
    for them."""
    def off(exact: float, held: float) -> float:
        return abs(held - exact) / abs(exact) if exact else 0.0

    def rounded(value: float) -> list[float]:
        return [float(round_to_dtype(value, d)) for d in ("float32", dtype)]

    fractions = [float(c) for value in hyper.values()
                 for c in (value if isinstance(value, tuple) else (value,))
                 if not isinstance(c, bool) and isinstance(c, (int, float)) and 0 < c < 1]
    total = []
    for t, lr in enumerate(lrs, start=1):
        factors = [[off(lr, held) for held in rounded(lr)]] if lr else []
        for h in fractions:
            held = rounded(h)
            factors += [[held_roundoff(h, dtype)],
                        [off(1 - h, 1 - c) for c in held] + [off(1 - h, c) for c in rounded(1 - h)]]
            if bias_corrected:
                factors.append([off(1 - h**t, 1 - c**t) for c in held]
                               + [off(1 - h**t, c) for c in rounded(1 - h**t)])
        total.append(tolerance.unit_roundoff(dtype) + sum(max(ways) for ways in factors))
    return np.asarray(total)


def directions(run: Callable[[Mapping[str, object], float], np.ndarray], hyper: Mapping[str, object],
               exact: np.ndarray, dtype: str, lr_roundoff: np.ndarray) -> list[Direction]:
    r"""Each direction of a case: ``lr``, and each nonzero number of ``hyper`` (each component of a tuple),
    differenced by :data:`DELTA`.  ``run(hyper, lr_scale)`` is the re-synced reference with those
    hyperparameters and every learning rate scaled; one it refuses (``ValueError``) is left out.  A
    hyperparameter's roundoff is its own in float32 or ``dtype`` (:func:`held_roundoff`); lr's,
    ``lr_roundoff[t]`` at step ``t + 1``, that of the step's scalar factors (:func:`scalar_roundoff`)."""
    lr_roundoff = np.asarray(lr_roundoff).reshape((-1,) + (1,) * (exact.ndim - 1))
    found = [Direction("lr", (run(hyper, 1 + DELTA) - exact) / DELTA, lr_roundoff)]
    for key, value in hyper.items():
        components = value if isinstance(value, tuple) else (value,)
        for k, component in enumerate(components):
            if isinstance(component, bool) or not isinstance(component, (int, float)) or component == 0:
                continue
            moved = component * (1 + DELTA)
            changed = (*components[:k], moved, *components[k + 1:]) if isinstance(value, tuple) else moved
            try:
                sensitivity = (run({**hyper, key: changed}, 1.0) - exact) / DELTA
            except ValueError:
                continue
            name = key if not isinstance(value, tuple) else f"{key}[{k}]"
            found.append(Direction(name, sensitivity, held_roundoff(float(component), dtype)))
    return found


def allowance(previous: np.ndarray, exact: np.ndarray, decay: np.ndarray | None, found: Sequence[Direction],
              steps: np.ndarray, state_roundoff: float) -> np.ndarray:
    """:math:`A` of the module docstring, per step and element (``steps`` the 1-based step, broadcast)."""
    update = np.abs(exact - previous - (0.0 if decay is None else decay))
    held = sum((d.roundoff * np.abs(d.sensitivity) for d in found), np.zeros_like(exact))
    return (held + 4 * tolerance.unit_roundoff("float32") * np.abs(previous)
            + 3 * (steps - 1) * state_roundoff * update)


def _models(step: ExactStep, shift: np.ndarray, dtype: str) -> list[np.ndarray]:
    """What the parameters round to in each model of where a kernel rounds, with the value moved by ``shift``."""
    x = step.exact + shift
    rounded = [round_to_dtype(x, dtype)]
    if step.decay is not None and step.decay.any():
        rest = x - step.previous - step.decay
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(step.previous != 0, 1 + step.decay / step.previous, 1.0)
        for decayed in (step.previous + step.decay, step.previous * round_to_dtype(factor, dtype)):
            rounded.append(round_to_dtype(round_to_dtype(decayed, dtype) + rest, dtype))
        rounded.append(round_to_dtype(round_to_dtype(step.previous + rest, dtype) + step.decay, dtype))
    return rounded


def first_bias(step: ExactStep, got: np.ndarray, found: Sequence[Direction], dtype: str,
               name: str) -> tuple[int, str] | None:
    r"""The first step at which ``got`` (``(T, ...)``) is biased in some direction of ``found`` beyond what
    every model of where a kernel rounds allows, and why; None where it is not.  The failure names the
    direction with the largest :math:`S/\sqrt{n}`, then every direction (rejected or not) with the smallest
    relative change of it that balances the step's flips in some model (:func:`balancing_change`): those
    that no change of up to :data:`LARGEST_CHANGE` balances are left out, so that no hyperparameter is named
    that cannot explain the failure alone."""
    rejected: dict[int, list[tuple[Direction, float]]] = {}
    for direction in found:
        for sigma in (1.0, -1.0):
            z, _, _ = _scores(step, got, direction, sigma, 0.0, dtype)
            for t in np.flatnonzero(z > Z):
                rejected.setdefault(int(t), []).append((direction, sigma))
    if not rejected:
        return None
    t = min(rejected)
    at, got_at = _at_step(step, t), got[t:t + 1]
    leaning = []
    for direction, sigma in rejected[t]:
        one = dataclasses.replace(direction, sensitivity=direction.sensitivity[t:t + 1])
        z, n, along = (float(a[0]) for a in _scores(at, got_at, one, sigma, 0.0, dtype))
        leaning.append((z, direction.name, sigma, int(n), int(along)))
    z, label, sigma, n, along = max(leaning)
    balancing = []
    for direction in found:
        one = dataclasses.replace(direction, sensitivity=direction.sensitivity[t:t + 1])
        for way in (1.0, -1.0):
            changes = [balancing_change(at, got_at, one, way, dtype, model)
                       for model in range(len(_models(at, np.zeros_like(at.exact), dtype)))]
            change = min((c for c in changes if c is not None), default=None)
            if change is not None and change > 0:
                balancing.append((change, f"{direction.name} {'larger' if way > 0 else 'smaller'} by about "
                                          f"{change:.2%}"))
    balancing.sort()
    cause = (f"the step's flips balance with {' or with '.join(text for _, text in balancing)}" if balancing else
             f"no change of one hyperparameter by up to {LARGEST_CHANGE:.0%} balances the step's flips")
    return t + 1, (f"{name} at step {t + 1}: its rounding is biased: of the {n} elements rounded otherwise than "
                   f"the exact step is (wherever a kernel places its roundings), {along} moved as a "
                   f"{'larger' if sigma > 0 else 'smaller'} {label} moves them, where a correct kernel moves as "
                   f"many each way (z = {z:.1f} > {Z:g}, beyond what the rounding of its hyperparameters and "
                   f"state allows); {cause}: a systematic error in the step, too small for each element's bound")


#: The largest relative change of a hyperparameter that :func:`balancing_change` looks for.
LARGEST_CHANGE = 4.0


def balancing_change(step: ExactStep, got: np.ndarray, direction: Direction, sigma: float, dtype: str,
                     model: int, iterations: int = 30) -> float | None:
    r"""The relative change of ``direction`` (its sign ``sigma``) at which the flips of a one-step ``got``
    no longer lean its way (:math:`S \le 0`) in the model of where a kernel rounds numbered ``model``
    (:func:`_models`), without the allowance (an estimate of the change itself), by bisection in log space;
    0 where they do not lean its way, None where even :data:`LARGEST_CHANGE` leaves them leaning."""
    def leans(change: float) -> bool:
        return bool(_scores(step, got, direction, sigma, change, dtype, model, allowed=False)[0][0] > 0)

    if not leans(0.0):
        return 0.0
    if leans(LARGEST_CHANGE):
        return None
    low, high = 1e-9, LARGEST_CHANGE
    for _ in range(iterations):
        middle = float(np.sqrt(low * high))
        low, high = (middle, high) if leans(middle) else (low, middle)
    return high


def _at_step(step: ExactStep, t: int) -> ExactStep:
    return ExactStep(step.previous[t:t + 1], step.exact[t:t + 1],
                     None if step.decay is None else step.decay[t:t + 1], step.allowance[t:t + 1])


def _scores(step: ExactStep, got: np.ndarray, direction: Direction, sigma: float, change: float,
            dtype: str, model: int | None = None, allowed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Per step, :math:`S/\sqrt{n}` in ``direction`` (its sign ``sigma``), with ``n`` and the flips that lean
    its way, of the model of where a kernel rounds that it is least for (or of the one numbered ``model``); the
    model's value moved by ``change`` times the direction and, where ``allowed``, by the allowance."""
    steps = len(got)
    sign = np.sign(direction.sensitivity).reshape(steps, -1)
    shift = sigma * ((step.allowance if allowed else 0.0) * np.sign(direction.sensitivity)
                     + change * direction.sensitivity)
    got_flat = got.reshape(steps, -1)
    z, n_least, along_least = np.full(steps, np.inf), np.zeros(steps, int), np.zeros(steps, int)
    models = _models(step, shift, dtype)
    for rounded in models if model is None else [models[model]]:
        rounded = rounded.reshape(steps, -1)
        flipped = (got_flat != rounded) & (sign != 0)
        agree = np.where(flipped, sigma * np.sign(got_flat - rounded) * sign, 0.0)
        total, n = agree.sum(axis=1), flipped.sum(axis=1)
        score = np.where(n > 0, total / np.sqrt(np.maximum(n, 1)), 0.0)
        least = score < z
        z = np.where(least, score, z)
        n_least = np.where(least, n, n_least)
        along_least = np.where(least, ((total + n) // 2).astype(int), along_least)
    return z, n_least, along_least
