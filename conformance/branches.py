r"""Steps that are discontinuous in their inputs: where a correct kernel may take either branch.

A rule whose step takes the sign of a value :math:`a_t` (Lion's
:math:`c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t`, Rprop's :math:`g_t g_{t-1}`) declares it
(:attr:`spec.Rule.sign_argument`).  Where :math:`a_t` is within the
subject's rounding of 0, a correct kernel may compute either sign, or 0: a
difference of one or two learning rates, far above any rounding bound, so
the tolerance model alone would reject a correct kernel there.

**The tie bound.**  The kernel's :math:`a_t` is off the float64 value by at
most

.. math::

    T_t = c\,\bigl(u\,(K_a + \kappa) + 2t\,u_s\bigr)\,A_t + c\,\mathrm{tiny}\,[A_t > 0]

where :math:`A_t` is :math:`|a_t|` evaluated on :math:`|g|` with the state of
the rule run on :math:`|g|` (the sum of its terms' magnitudes, a running
error bound as :mod:`optspec.conformance.tolerance` takes for the update),
or the larger scale the rule declares where a correct kernel may compute
:math:`a_t` in another form (:attr:`spec.SignArgument.magnitude`: Lion's
interpolation :math:`m + (1-\beta_1)(g - m)` rounds on the scale of :math:`|m|`);
:math:`K_a` rounded operations compute it from the state
(:attr:`spec.SignArgument.operations`: Lion's 4, Rprop's product 1, whose
rounding cannot change its sign); :math:`2t\,u_s` is the history of the
moments it reads (where it reads one: :attr:`~spec.SignArgument.reads_moments`),
as in the tolerance model (:math:`u_s` the unit roundoff of the state's storage);
:math:`\kappa = \sum_\beta \beta/(1-\beta)` where the subject holds its
β in its dtype (the condition number of :math:`1-\beta`, which then carries
β's rounding); :math:`c` = :data:`~optspec.conformance.tolerance.SAFETY`
and tiny the dtype's smallest normal number (below it rounding is absolute, and
XLA on the CPU flushes to zero: Rprop's product of two tiny gradients may
be 0 in the kernel).  Where every term is exactly 0 (:math:`A_t = 0`, or
the terms from the state the step reads, as Rprop's gradient kept as 0 after a
sign change) so is :math:`a_t` in any kernel: the sign of 0 is then no tie,
and a kernel whose sign of 0 is not 0 fails.

**Ties.**  An element with :math:`|a_t| < T_t` is tied at step
:math:`t`: the reference takes there the branch the subject took (of the
signs −1, 0 and +1, the one whose step from the subject's parameters is
nearest the subject's), and every later step, of the re-synced and the free
run alike, follows from it.  An element whose margin is clear keeps the
reference's branch, so a kernel that takes the wrong one there fails by a
learning rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optspec import spec
from optspec.conformance import tolerance
from optspec.conformance.cases import Case

#: The signs a tied element may take.
SIGNS = (-1.0, 0.0, 1.0)


def tie_bounds(rule: str, convention: spec.Knobs | None, case: Case, grads: np.ndarray, dtype: str,
               state_dtype: str | None = None, holds_betas: bool = False) -> np.ndarray | None:
    r""":math:`T_t` for each step and element of this tensor (steps first); None for a rule whose step is
    continuous."""
    from optspec.conformance.reference import case_hyperparameters, reference
    from optspec.conformance.tolerance_inputs import magnitude_case

    spec_rule = spec.get_rule(rule)
    argument = spec_rule.sign_argument
    if argument is None:
        return None
    on_magnitudes = magnitude_case(case)
    magnitudes = np.abs(grads)
    states: list[Any] = []
    reference(rule, convention, on_magnitudes, np.zeros(grads.shape[1:]), magnitudes, states=states)
    full = case_hyperparameters(spec_rule, convention, on_magnitudes)
    before = [spec_rule.init_state(np, np.zeros(grads.shape[1:]), full), *states[:-1]]
    magnitude = argument.magnitude or argument.value
    scale = np.stack([np.abs(magnitude(np, magnitudes[t], state, **full))
                      for t, state in enumerate(before)]) if before else np.zeros(grads.shape)
    u = tolerance.unit_roundoff(dtype)
    u_state = max(u, tolerance.unit_roundoff(state_dtype)) if state_dtype is not None else u
    betas = full.get("betas", ()) if holds_betas else ()
    kappa = sum(beta / (1 - beta) for beta in betas if beta < 1)
    steps = np.arange(1, len(before) + 1).reshape((-1,) + (1,) * (grads.ndim - 1))
    history = 2 * steps * u_state if argument.reads_moments else 0.0
    # terms that are all exactly 0 sum to exactly 0 in any kernel: there the sign of 0 is no tie
    return tolerance.SAFETY * ((u * (argument.operations + kappa) + history) * scale
                               + np.where(scale > 0, tolerance.SMALLEST_NORMAL[dtype], 0.0))


def tied(spec_rule: spec.Rule, grad: np.ndarray, state: Any, bounds: np.ndarray, **hyper: Any) -> np.ndarray:
    """The elements whose sign argument, from ``state``, is within ``bounds`` (:func:`tie_bounds`) of 0 and
    not exactly 0 in every kernel (a term of it, from this state, is nonzero)."""
    value = spec_rule.sign_argument.value(np, grad, state, **hyper)
    magnitudes = state._replace(**{field: np.abs(getattr(state, field)) for field in spec_rule.state_fields})
    terms = spec_rule.sign_argument.value(np, np.abs(grad), magnitudes, **{**hyper, "maximize": False})
    return (np.abs(value) < bounds) & (np.abs(terms) > 0)


def branch_taken(spec_rule: spec.Rule, previous: np.ndarray, grad: np.ndarray, state: Any, got: np.ndarray,
                 tied: np.ndarray, **hyper: Any) -> np.ndarray:
    """The signs of the tied elements (NaN elsewhere): each the one of :data:`SIGNS` whose step from the
    subject's ``previous`` parameters is nearest what it returned (``got``)."""
    steps = [spec_rule.step(np, previous, grad, state, signs=np.full(previous.shape, sign), **hyper)[0]
             for sign in SIGNS]
    nearest = np.argmin(np.stack([np.abs(got - step) for step in steps]), axis=0)
    return np.where(tied, np.asarray(SIGNS)[nearest], np.nan)
