r"""The tolerance model: how far a correct subject may be from the float64 reference.

Let :math:`u` be the unit roundoff of the subject's dtype (:math:`2^{-53}`,
:math:`2^{-24}`, :math:`2^{-11}`, :math:`2^{-8}` for float64, float32, float16,
bfloat16).  The reference is the spec in float64 on the very inputs the subject
saw (rounded to its dtype), so only the subject's own arithmetic is measured.

**One step.**  A step :math:`\theta_t = (1-d)\theta_{t-1} - \Delta_t` rounds the
decay and the subtraction (2 ulps of :math:`|\theta_{t-1}|`), and computes
:math:`\Delta_t` from :math:`m, v` through about :math:`K_0 = 16` rounded
operations (the moment updates, root, ε, division, products with lr and the
bias corrections, each possibly rounded to the dtype when cast).  The moments
themselves carry the relative error of their own history: a geometric average
of :math:`t` rounded terms is off by at most :math:`\approx 2t\,u`.  Hence, per
element,

.. math::

    B^{(1)}_t = c\,u\,\bigl(2|\theta_{t-1}| + (K_0 + 2t)\,|\Delta_t|\bigr)

with a safety factor :math:`c = 4` for the ops a kernel may fuse or reorder.
A subject may also hold :math:`\beta` in its dtype and compute
:math:`1-\beta^t` there (Keras does).  :math:`\beta` is then perturbed by
:math:`u`, and the bias correction amplifies that by its condition number
:math:`\kappa_t(\beta) = t\beta^t/(1-\beta^t)` (1000 for
:math:`\beta = 0.999, t = 1`).  The update depends on :math:`1/bc_1` and
:math:`\sqrt{bc_2}`, so :math:`\kappa_t(\beta_1) + \kappa_t(\beta_2)/2`
joins :math:`K_0 + 2t`.
The magnitude :math:`|\Delta_t|` that errors are relative to is not the net
step but the sum of its parts' magnitudes: the adaptive update and the decay
may nearly cancel (:math:`\mathrm{lr}\,\lambda\,\theta \approx -U_t`), and a
first moment of sign-flipping gradients may be far smaller than the terms it
sums.  The caller therefore passes :math:`M_t = \max(|\Delta_t|, |U^{abs}_t|)`,
where :math:`U^{abs}_t` is the update of the same rule run on :math:`|g|`
without weight decay (a running-error bound in the manner of Higham,
*Accuracy and Stability of Numerical Algorithms*, §3.3), and :math:`M_t`
takes the place of :math:`|\Delta_t|` above.  A moment updated as
:math:`m + (1-\beta)(g - m)` rounds at the scale of :math:`m_{t-1}`, so
:math:`M_t` is at least :math:`2\,(\mathrm{lr}_t/\mathrm{lr}_{t-1})\,|U^{abs}_{t-1}|`
(the 2 covers the change of the bias corrections and of :math:`\sqrt{\hat v}`
from one step to the next).
The one-step check re-syncs the parameter: it compares the subject's
:math:`\theta_t` with the reference step taken from the *subject's*
:math:`\theta_{t-1}`, so error cannot build up.

An L2 penalty enters the gradient, so there :math:`|g| + \lambda|\theta_{t-1}|` takes
the place of :math:`|g|` in that run; and an adaptive rule divides the rounding
error of a cancelled :math:`g + \lambda\theta` by about :math:`\epsilon`, so
:math:`M_t \ge \mathrm{lr}_t\lambda|\theta_{t-1}|/\epsilon` there.

**Trajectory.**  Without re-syncing, each step adds its own error and passes on
the previous ones at most unamplified (the AdamW map has
:math:`\partial\theta_t/\partial\theta_{t-1} = 1-d \le 1`; for L2 variants the
extra term is :math:`O(\mathrm{lr}\,\lambda)`).  The free-running bound is
therefore the running sum :math:`B^{(T)}_t = \sum_{s \le t} B^{(1)}_s`, which
grows with the step count as the error can.

Below the normal range rounding is absolute, and XLA on CPU flushes
subnormals to zero, so each step also allows the smallest normal number of the
dtype (``np.finfo(dtype).tiny``, scaled like the rest).

Non-finite values are checked separately: a subject that produces NaN or inf
where the reference is finite fails at that step, whatever the bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np

UNIT_ROUNDOFF = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
SMALLEST_NORMAL = {"float64": 2.0**-1022, "float32": 2.0**-126, "float16": 2.0**-14, "bfloat16": 2.0**-126}
OPS_PER_UPDATE = 16
SAFETY = 4.0


def unit_roundoff(dtype: str) -> float:
    return UNIT_ROUNDOFF[dtype]


def bias_condition(step: Any, betas: tuple[float, float] | None) -> Any:
    r""":math:`\kappa_t(\beta_1) + \kappa_t(\beta_2)/2`, 0 for rules without bias correction."""
    if betas is None:
        return 0.0
    total = 0.0
    for beta, weight in zip(betas, (1.0, 0.5)):
        if beta > 0:
            power = np.power(beta, step)
            total = total + weight * step * power / (1 - power)
    return total


def one_step_bound(theta_prev: np.ndarray, update: np.ndarray, step: Any, dtype: str,
                   betas: tuple[float, float] | None = None) -> np.ndarray:
    """:math:`B^{(1)}_t` elementwise, for 1-based ``step``; ``update`` is :math:`M_t` (or the step)."""
    u = unit_roundoff(dtype)
    growth = OPS_PER_UPDATE + 2 * step + bias_condition(step, betas)
    return SAFETY * (u * (2 * np.abs(theta_prev) + growth * np.abs(update)) + SMALLEST_NORMAL[dtype])


def trajectory_bounds(theta0: np.ndarray, reference: np.ndarray, dtype: str,
                      betas: tuple[float, float] | None = None,
                      update: np.ndarray | None = None) -> np.ndarray:
    """:math:`B^{(T)}_t` for every step: the running sum of one-step bounds along the reference.

    ``update`` is :math:`M_t` per step; by default the reference's own steps.
    """
    previous = np.concatenate([theta0[None], reference[:-1]])
    steps = np.arange(1, len(reference) + 1).reshape((-1,) + (1,) * theta0.ndim)
    delta = np.abs(reference - previous)
    magnitude = delta if update is None else np.maximum(delta, update)
    per_step = one_step_bound(previous, magnitude, steps, dtype, betas)
    return np.cumsum(per_step, axis=0)


def ulps(error: Any, magnitude: Any, dtype: str) -> Any:
    """``error`` in units of the last place of ``magnitude`` in ``dtype`` (elementwise).

    Pass the running scale, :math:`\\max_{s \\le t}\\max(|\theta_s|, |\theta_{s-1}|, M_s)`,
    as ``magnitude``: an error on a value that cancelled to nearly zero is then
    not counted in ulps of that tiny value.
    """
    u = unit_roundoff(dtype)
    scale = np.maximum(np.abs(magnitude), np.finfo(np.float64).tiny) * 2 * u
    return np.asarray(error) / scale
