r"""The check of low-precision parameters kept with a Kahan compensation: the compensated sum, to its own accuracy.

A kernel may keep bfloat16 (or float16) parameters :math:`\theta` beside a
compensation buffer :math:`c` of the same dtype, which holds what the
rounded parameters have yet to receive (torch-optimi's ``kahan_sum``,
``optimi/adam.py:384-393``): each step adds its update :math:`\Delta_t` to
:math:`c`, adds :math:`c` to :math:`\theta` (rounded), and keeps in
:math:`c` what that rounding left out, :math:`c \leftarrow c + (\theta_{old}
- \theta_{new})`.  The sum :math:`S_t = \theta_t + c_t` then follows the
exact trajectory far more closely than :math:`\theta_t` does: :math:`|c|`
is at most half an ulp of :math:`\theta`, so the two roundings of
:math:`c` per step cost at most :math:`2u\cdot u|\theta|`.

Declared with ``--state-dtype params=kahan``, the driver reads :math:`c`
after each step (:meth:`~optspec.adapters.driver.Session.compensation`),
and each bfloat16 or float16 tensor's :math:`S_t` is held, beside the
ordinary checks of :math:`\theta_t`, to:

- **one step**: the spec's step from the subject's own :math:`S_{t-1}`,
  within :math:`B^{(1)}_t` with :math:`u^2` in place of :math:`u` in the
  parameters' term (:func:`optspec.conformance.tolerance.one_step_bound`'s
  ``param_roundoff``; the update's arithmetic and the state's history keep
  :math:`u`);
- **trajectory**: the spec's free run, within those bounds accumulated.

A kernel that drops its compensation loses up to :math:`u|\theta|` a step,
:math:`1/u` times (256 in bfloat16) the share allowed, and fails (the
``rounding`` check) where that is more than the update's own share of the
bound (in bfloat16 that share is wide: the bias corrections may be computed
in the dtype).  A part of the step applied to :math:`\theta` outside the
compensation (torch-optimi's decoupled decay, ``param.mul_(1 - lr*wd)``,
lost entirely where :math:`\mathrm{lr}\,\lambda` is below half an ulp)
loses :math:`\mathrm{lr}\,\lambda|\theta|` or less a step: caught where
the update's share is smaller (steps with little or no gradient), and then
named.
"""

from __future__ import annotations

import numpy as np

from optspec import adapters
from optspec.conformance import rounding, tolerance

#: What the checks compare: (name, got, expected, bound), each ``(T, ...)``.
Compared = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def applies_to(dtype: str) -> bool:
    """Whether parameters in ``dtype`` are compensated under the declaration (bfloat16, float16)."""
    return rounding.applies_to(dtype)


def param_roundoff(dtype: str) -> float:
    """:math:`u^2`: what the compensated sum of parameters in ``dtype`` is held to, per step."""
    return tolerance.unit_roundoff(dtype) ** 2


def compensated(got: adapters.Trajectory, index: int, traj: np.ndarray, subject: str) -> np.ndarray:
    """:math:`S_t = \\theta_t + c_t` of tensor ``index`` (float64, exact: both are bfloat16 or float16); a
    one-line :class:`adapters.SetupError` where the subject kept no compensation the driver reads."""
    kept = [step[index] if index < len(step) else None for step in got.compensation]
    if len(kept) != len(traj) or any(c is None or np.shape(c) != traj.shape[1:] for c in kept):
        raise adapters.SetupError(
            f"{subject} is declared params=kahan, but the driver reads no Kahan compensation beside its "
            "parameters (torch: a per-parameter state entry kahan_comp shaped like the parameter, as "
            "torch-optimi's): declare what it keeps, or leave params=kahan out")
    return traj + np.stack([np.asarray(c, np.float64) for c in kept])


def first_violation(checks: list[Compared], decay: np.ndarray, name: str) -> tuple[int, str] | None:
    r"""The first step at which the compensated sum is beyond a bound of ``checks``, and why; ``decay``
    (``(T, ...)``, each step's :math:`\mathrm{lr}_t\lambda|\theta_{t-1}|`) is named where the error is that
    much, within the bound."""
    for check, got, expected, bound in checks:
        error = np.abs(got - expected)
        beyond = (error > bound) & np.isfinite(expected)
        if not beyond.any():
            continue
        flat = beyond.reshape(len(got), -1)
        step = int(np.argwhere(flat)[0][0])
        ratio = np.where(flat[step], (error / bound).reshape(len(got), -1)[step], 0.0)
        i = np.unravel_index(int(np.argmax(ratio)), got.shape[1:])
        at = (step, *i)
        cause = ("the compensation does not carry what the rounded parameters lost"
                 if abs(error[at] - decay[at]) > bound[at] else
                 f"the error is the step's weight decay, lr*lambda*|theta| = {decay[at]:.3g}: the decay did not "
                 "reach the compensated sum (as where it is applied to the low-precision parameters outside the "
                 "compensation, torch-optimi's param.mul_(1 - lr*wd))")
        return step + 1, (f"{name} element {tuple(int(j) for j in i)} at step {step + 1} ({check}): the "
                          f"compensated value theta + kahan_comp is {float(got[at])!r}, the spec's "
                          f"{float(expected[at])!r}: |error| {error[at]:.3g} > bound {bound[at]:.3g}, which holds "
                          f"the compensated sum to u^2 of |theta|; {cause}")
    return None
