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
the previous ones.  The AdamW map has
:math:`\partial\theta_t/\partial\theta_{t-1} = 1-d \le 1`, so there the
free-running bound is the running sum :math:`B^{(T)}_t = \sum_{s \le t} B^{(1)}_s`,
which grows with the step count as the error can.

An L2 penalty feeds an error :math:`\delta\theta_s` back into the gradient as
:math:`\lambda\,\delta\theta_s`, and an adaptive step is *not* gently
Lipschitz in an absolute gradient perturbation: with
:math:`u_t = \mathrm{lr}_t\,\hat m_t/D_t`, where :math:`D_t` is the
denominator in corrected units (:math:`\sqrt{\hat v_t}+\epsilon`,
:math:`\sqrt{\hat v_t}+\epsilon/\sqrt{bc_2}` for ε-hat,
:math:`\sqrt{\hat v_t+\epsilon}` inside), a perturbation of at most
:math:`\delta` in every past gradient moves :math:`\hat m_t` by at most
:math:`\delta` (its weights sum to at most 1) and :math:`\sqrt{\hat v_t}`
(a weighted root mean square, or its running maximum) by at most
:math:`\delta`, so

.. math::

    |\delta u_t| \le A_t\,\delta, \qquad
    A_t = \frac{\mathrm{lr}_t}{D_t}\Bigl(1 + \frac{|\hat m_t|}{D_t}\Bigr).

:math:`A_t` is :math:`\mathrm{lr}/\epsilon` where the gradients are tiny: an
error of one ulp in :math:`\theta` that an L2 term turns into a gradient
error can come out amplified by thousands.  For the Adam rule with L2 the
bound is therefore the first-order recursion
:math:`B^{(T)}_t = (1 + \lambda A_t)\,B^{(T)}_{t-1} + B^{(1)}_t`, and the
one-step check, whose state was built from the subject's own earlier
parameters, adds :math:`\lambda A_t \max_{s \le t-2}|\theta_s - \theta^{ref}_s|`
(the deviations actually measured).  :math:`A_t` is evaluated along the
float64 reference.

**State stored in fewer bits.**  Where the subject stores a state field in a
dtype of unit roundoff :math:`u_s > u` between steps (:mod:`optspec.spec.storage`),
the reference stores it the same way, rounded to nearest-even; the two
stored values differ only where the subject's own rounding of the value
before storage moves it across a rounding boundary of the coarser dtype,
by one unit of :math:`u_s` of the field.  That difference decays with the
moment's :math:`\beta` and recurs at each step, so the moments' history term
takes :math:`u_s` in place of :math:`u`:

.. math::

    B^{(1)}_t = c\,\bigl(u\,(2|\theta_{t-1}| + K_0|\Delta_t|) + 2t\,u_s\,|\Delta_t|\bigr)

(with the bias-correction condition number still at :math:`u`: β is not a
state).  The parameters' own rounding stays at :math:`u`: a kernel that also
rounds its parameters or its arithmetic to the coarser dtype still fails.

**Kahan-compensated parameters.**  A kernel that keeps its low-precision
parameters with a compensation :math:`c` (what the rounded parameters have
yet to receive) holds the sum :math:`\theta + c` to the rounding of the
compensation itself: :math:`c` is at most half an ulp of :math:`\theta`, so
its two roundings per step cost at most :math:`2u \cdot u|\theta|`, and
:math:`u^2` takes the place of :math:`u` in the parameters' term (the
update's arithmetic keeps :math:`u`); :mod:`optspec.conformance.kahan`.

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
                   betas: tuple[float, float] | None = None, state_dtype: str | None = None,
                   param_roundoff: float | None = None) -> np.ndarray:
    """:math:`B^{(1)}_t` elementwise, for 1-based ``step``; ``update`` is :math:`M_t` (or the step);
    ``state_dtype``, the coarsest dtype the subject stores a state field in, if coarser than ``dtype``;
    ``param_roundoff``, the unit roundoff the parameters themselves are held to where it is not ``dtype``'s
    (a Kahan-compensated sum: :math:`u^2`, :mod:`optspec.conformance.kahan`)."""
    u = unit_roundoff(dtype)
    u_state = max(u, unit_roundoff(state_dtype)) if state_dtype is not None else u
    u_param = u if param_roundoff is None else param_roundoff
    growth = u * (OPS_PER_UPDATE + bias_condition(step, betas)) + u_state * 2 * step
    return SAFETY * (u_param * 2 * np.abs(theta_prev) + growth * np.abs(update) + SMALLEST_NORMAL[dtype])


def trajectory_bounds(theta0: np.ndarray, reference: np.ndarray, dtype: str,
                      betas: tuple[float, float] | None = None,
                      update: np.ndarray | None = None,
                      feedback: np.ndarray | None = None, state_dtype: str | None = None,
                      param_roundoff: float | None = None) -> np.ndarray:
    r""":math:`B^{(T)}_t` for every step: the one-step bounds along the reference, accumulated.

    ``update`` is :math:`M_t` per step; by default the reference's own steps;
    ``state_dtype`` and ``param_roundoff`` as :func:`one_step_bound`'s.
    ``feedback`` is :math:`\lambda A_t` per step for an L2 rule (see above):
    the previous bound is then amplified by :math:`1 + \lambda A_t`; without
    it the bounds simply add up.
    """
    previous = np.concatenate([theta0[None], reference[:-1]])
    steps = np.arange(1, len(reference) + 1).reshape((-1,) + (1,) * theta0.ndim)
    delta = np.abs(reference - previous)
    magnitude = delta if update is None else np.maximum(delta, update)
    per_step = one_step_bound(previous, magnitude, steps, dtype, betas, state_dtype, param_roundoff)
    if feedback is None:
        return np.cumsum(per_step, axis=0)
    bounds = np.empty_like(per_step)
    carried = np.zeros_like(per_step[0])
    for t in range(len(per_step)):
        carried = (1 + feedback[t]) * carried + per_step[t]
        bounds[t] = carried
    return bounds


def adam_gradient_sensitivity(lr: Any, m_hat: Any, denominator: Any) -> Any:
    r""":math:`A_t = \mathrm{lr}_t (1 + |\hat m_t|/D_t)/D_t`, elementwise (see the module docstring)."""
    return lr / denominator * (1 + np.abs(m_hat) / denominator)


def ulps(error: Any, magnitude: Any, dtype: str) -> Any:
    """``error`` in units of the last place of ``magnitude`` in ``dtype`` (elementwise).

    Pass the running scale, :math:`\\max_{s \\le t}\\max(|\theta_s|, |\theta_{s-1}|, M_s)`,
    as ``magnitude``: an error on a value that cancelled to nearly zero is then
    not counted in ulps of that tiny value.
    """
    u = unit_roundoff(dtype)
    scale = np.maximum(np.abs(magnitude), np.finfo(np.float64).tiny) * 2 * u
    return np.asarray(error) / scale
