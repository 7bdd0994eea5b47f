"""A step discontinuous in its inputs (Lion's sign, Rprop's sign of a product): either branch is accepted where a
correct kernel's rounding may cross 0, and only there (:mod:`optspec.conformance.branches`)."""

from __future__ import annotations

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.conformance import branches
from optspec.conformance.cases import sign_ties, step_size_bounds
from optspec.conformance.certify import certify
from optspec.conformance.check import run_case
from optspec.conformance.expectation import Expectation
from optspec.conformance.reference import prepared
from tests.conftest import needs

DEFECTS = "tests.plugins.rule_defects"

#: Real Lions nobody here wrote: optax 0.2.8, MLX 0.32, Keras 3.15 on TensorFlow, pytorch-optimizer 4.1.0 (whose
#: ``maximize`` negates the gradient in place, ``base/optimizer.py`` ``maximize_gradient``; the tie case has none).
LIONS = [("jax", "optax.lion"), ("mlx", "mlx.optimizers.Lion"), ("tensorflow", "keras.optimizers.Lion"),
         ("torch", "pytorch_optimizer:Lion")]
SEEDS = range(20)


def _subject(framework: str, impl: str) -> adapters.SubjectInfo:
    (subject,) = adapters.resolve_subject(framework, impl, "lion")
    return subject


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("framework", "impl"), [pytest.param(*row, marks=needs(row[0]), id=row[1]) for row in LIONS])
def test_a_correct_lion_with_tied_sign_arguments_conforms_across_20_seeds(framework, impl, dtype):
    if impl.startswith("pytorch_optimizer"):
        pytest.importorskip("pytorch_optimizer")
    subject = _subject(framework, impl)
    convention = Expectation.of(subject).convention
    failed = {seed: result.failure for seed in SEEDS
              if not (result := run_case(subject, sign_ties(seed), convention=convention, dtype=dtype,
                                         device=None)).passed}
    assert not failed, failed


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_tie_case_ties_what_it_builds_and_nothing_whose_terms_are_all_zero(dtype):
    """Elements 2-7 are tied at step 2 in every seed; 0-1 (all terms exactly 0) never are; the drawn elements are
    not at step 1, where the argument is a tenth of the gradient."""
    rule = spec.get_rule("lion")
    for seed in SEEDS:
        case, _, grads = prepared(_subject("numpy", "spec.lion"), sign_ties(seed), dtype)
        g = grads[0]
        bounds = branches.tie_bounds("lion", rule.resolve(None), case, g, dtype)
        state = rule.init_state(np, np.zeros_like(g[0]), case.hyper)
        first = np.abs(rule.sign_argument.value(np, g[0], state, **case.hyper))
        _, state = rule.step(np, np.zeros_like(g[0]), g[0], state, lr=0.0, **case.hyper)
        second = np.abs(rule.sign_argument.value(np, g[1], state, **case.hyper))
        assert (second[2:8] < bounds[1][2:8]).all(), (seed, second, bounds[1])
        assert (bounds[:2, :2] == 0).all() and (first[:2] == 0).all() and (second[:2] == 0).all()
        assert (first[8:] > bounds[0][8:]).all(), (seed, first, bounds[0])


@needs("torch")
def test_a_sign_of_zero_that_is_not_zero_fails_where_every_term_is_exactly_zero():
    (subject,) = adapters.resolve_subject("torch", f"{DEFECTS}:LionSignOfZeroIsOne", "lion")
    result = run_case(subject, sign_ties(), convention=None, dtype="float32", device=None)
    assert not result.passed and result.step == 1, result.failure
    assert result.failure.startswith(("tensor 0 element (0,) at step 1", "tensor 0 element (1,) at step 1")), \
        result.failure


@needs("torch")
@pytest.mark.parametrize("impl", ["LionFlipsNearZero", "LionSwappedBetas"])
def test_a_wrong_branch_where_the_margin_is_clear_is_rejected_and_the_correct_base_conforms(impl):
    (defect,) = adapters.resolve_subject("torch", f"{DEFECTS}:{impl}", "lion")
    (base,) = adapters.resolve_subject("torch", f"{DEFECTS}:Lion", "lion")
    for dtype in ("float32", "bfloat16"):
        assert not certify(defect, dtype=dtype, examples=10, golden_dir=None).conforms, (impl, dtype)
        assert certify(base, dtype=dtype, examples=10, golden_dir=None).conforms, dtype


def test_held_betas_widen_the_tie_bound_by_their_condition_numbers():
    (subject,) = adapters.resolve_subject("numpy", "spec.lion")
    case, _, grads = prepared(subject, sign_ties(), "float32")
    plain = branches.tie_bounds("lion", None, case, grads[0], "float32")
    held = branches.tie_bounds("lion", None, case, grads[0], "float32", holds_betas=True)
    drawn = np.s_[:, 8:]  # no term is zero there
    kappa = 0.9 / 0.1 + 0.99 / 0.01
    steps = np.arange(1, case.steps + 1)[:, None]
    operations = spec.get_rule("lion").sign_argument.operations
    expected = (operations + kappa + 2 * steps) / (operations + 2 * steps)
    np.testing.assert_allclose(held[drawn] / plain[drawn], np.broadcast_to(expected, held[drawn].shape), rtol=1e-6)
    assert branches.tie_bounds("adamw", None, case, grads[0], "float32") is None


#: Rprop's product of two gradients of 1e-23 is 1e-46: 0 in float32 and bfloat16, where the float64 one is not.
RPROPS = [("torch", "torch.optim.Rprop[for-loop]"), ("torch", "torch.optim.Rprop[foreach]")]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("framework", "impl"), [pytest.param(*row, marks=needs(row[0]), id=row[1]) for row in RPROPS])
def test_rprop_whose_product_of_gradients_underflows_conforms_across_20_seeds(framework, impl, dtype):
    (subject,) = adapters.resolve_subject(framework, impl)
    convention = Expectation.of(subject).convention
    failed = {seed: result.failure for seed in SEEDS
              if not (result := run_case(subject, step_size_bounds(seed), convention=convention, dtype=dtype,
                                         device=None)).passed}
    assert not failed, failed


def test_an_underflowing_product_is_tied_and_a_kept_zero_is_not():
    """Elements 8-11 of the step-size-bounds case are tied in float32 at every step after the first; where the
    kept gradient is 0 (the first step, or after a sign change) no element is."""
    rule = spec.get_rule("rprop")
    case, _, grads = prepared(adapters.resolve_subject("numpy", "spec.rprop")[0], step_size_bounds(), "float32")
    g = grads[0]
    bounds = branches.tie_bounds("rprop", rule.resolve(None), case, g, "float32")
    hyper = {**case.hyper, "convention": "torch", "initial_lr": case.lrs[0]}
    state = rule.init_state(np, np.zeros_like(g[0]), hyper)
    assert not branches.tied(rule, g[0], state, bounds[0], **hyper).any()
    for t in range(1, case.steps):
        _, state = rule.step(np, np.zeros_like(g[0]), g[t - 1], state, lr=0.0, **hyper)
        ties = branches.tied(rule, g[t], state, bounds[t], **hyper)
        kept = state.prev != 0
        assert (ties == (kept & (np.arange(g.shape[1]) >= 8))).all(), (t, ties, kept)
