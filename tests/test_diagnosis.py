"""The diagnosis of a failure names no more than it shows: a knob (or a pair of knobs, or another rule) only where
the case is within the bounds with it, and a change that explains part of the error as no more than that."""

from __future__ import annotations

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.adapters.driver import Trajectory
from optspec.conformance.cases import NAMED_CASES, Case
from optspec.conformance.certify import certify
from optspec.conformance.check import check_trajectory
from optspec.conformance.explain import HINT_THRESHOLD, SCORED_STEPS
from optspec.conformance.reference import explicit_hyperparameters, reference
from tests.conftest import needs
from tests.helpers import told_its_rule


def _hint_for(traj_of, *, dtype="float64", steps=None):
    """The hint for the trajectory ``traj_of(expected, with_epsilon_hat)`` on the epsilon-placement case (given
    ``steps``, its first tensor run that many steps on gradients drawn alike)."""
    (subject,) = adapters.resolve_subject("torch", "torch.optim.AdamW[for-loop]")
    named = next(c for c in NAMED_CASES if c.label == "epsilon-placement")
    grads, lrs = named.grads[:1], named.lrs
    if steps is not None:
        scale = float(np.abs(grads[0]).mean())
        grads = [scale * np.random.default_rng(0).standard_normal((steps, *named.params0[0].shape))]
        lrs = [lrs[0]] * steps
    case = Case(named.params0[:1], grads, lrs, explicit_hyperparameters(subject, named.hyper))
    theta0, grads = case.params0[0], case.grads[0]
    expected, _ = reference("adamw", spec.resolve("torch"), case, theta0, grads)
    knob, _ = reference("adamw", spec.resolve("torch").replace(epsilon="hat"), case, theta0, grads)
    got = Trajectory(params=[traj_of(expected, knob)])
    result = check_trajectory(subject, case, [theta0], [grads], got, convention=spec.resolve("torch"), dtype=dtype)
    assert not result.passed
    return result.hint


@needs("torch")
def test_a_knob_that_brings_the_case_within_the_bounds_is_named():
    assert _hint_for(lambda expected, knob: knob).startswith("most likely knob: epsilon=hat (with it, ")


@needs("torch")
@pytest.mark.parametrize("fraction", [0.01, 0.05])
def test_a_knob_that_removes_most_of_the_error_but_not_all_is_said_to_explain_part_of_it(fraction):
    hint = _hint_for(lambda expected, knob: knob + fraction * (expected - knob))
    assert fraction / (1 - fraction) <= HINT_THRESHOLD
    assert "most likely" not in hint, hint
    assert hint.startswith("no single knob explains it, nor a pair"), hint
    assert "epsilon=hat partly explains it" in hint and "times the bound" in hint, hint


@needs("torch")
def test_a_change_that_leaves_more_than_the_threshold_is_not_mentioned():
    hint = _hint_for(lambda expected, knob: knob + 0.3 * (expected - knob))
    assert hint.startswith("no single knob explains it") and "partly" not in hint, hint


@needs("torch")
def test_a_long_case_failing_early_is_scored_over_its_first_steps_and_a_knob_named_by_all_of_them():
    steps = 10 * SCORED_STEPS
    hint = _hint_for(lambda expected, knob: knob, steps=steps)
    assert hint.startswith("most likely knob: epsilon=hat (with it, the case's largest error over its first "
                           f"{SCORED_STEPS} steps falls from "), hint
    # the knob explains the steps it is scored over, not the drift added after them: it is not named
    late = np.arange(steps).reshape(-1, 1) >= steps // 2
    hint = _hint_for(lambda expected, knob: knob + np.where(late, 1e-3 * (expected - knob + 1e-6), 0.0), steps=steps)
    assert "most likely" not in hint and "epsilon=hat partly explains it" in hint, hint


@needs("torch")
def test_two_knobs_that_together_explain_it_are_named_together():
    """The spec's own AdamW in HF's legacy convention, held to torch's: it differs in two knobs."""
    (subject,) = adapters.resolve_subject("torch", "optspec.adapters.torch.optimizer:AdamW[convention='hf_legacy']")
    cert = certify(subject, convention="torch", examples=0, golden_dir=None)
    assert not cert.conforms
    assert cert.failure.hint.startswith("most likely knobs: decay_point=after and epsilon=hat (with it"), cert.failure


#: (framework, subject, its rule and preset, dtype); the rules beyond the Adam family and Adagrad are told so in
#: ``tests/test_rule_conventions.py``, which reuses this test.
ANOTHER_RULE = [("torch", "torch.optim:Adam", "adam", "torch", "float64"),
                ("torch", "torch.optim:Adagrad", "adagrad", "torch", "float64")]


@pytest.mark.parametrize(("framework", "impl", "rule", "preset", "dtype"),
                         [pytest.param(*row, marks=needs(row[0]), id=row[1]) for row in ANOTHER_RULE])
def test_a_subject_of_another_rule_is_told_its_rule_and_the_advised_command_conforms(framework, impl, rule, preset,
                                                                                    dtype, capsys):
    told_its_rule(framework, impl, rule, preset, dtype, capsys)


@needs("torch")
def test_a_subject_no_rule_fits_is_told_so_and_no_knob_is_named():
    (subject,) = adapters.resolve_subject("torch", "torch.optim:Adafactor")  # factored: no rule of the spec has it
    cert = certify(subject, examples=0, golden_dir=None)
    hint = cert.failure.hint
    assert not cert.conforms and "no other rule of the spec fits its steps" in hint, hint
    assert "most likely" not in hint and "--rule" not in hint, hint


@needs("jax")
def test_optax_adafactor_held_to_adamw_names_no_knob_with_confidence():
    (subject,) = adapters.resolve_subject("jax", "optax:adafactor")
    cert = certify(subject, dtype="float32", examples=0, golden_dir=None)
    hint = cert.failure.hint
    assert "most likely" not in hint and "partly explains it" in hint, hint
    ratio = float(hint.split("still ")[1].split(" times the bound")[0])
    assert ratio > 1, hint
