"""The certifier's detection floor: a defect at the published threshold is rejected, and the same run accepts
the unperturbed subject.

The subjects are torch's own AdamW with one value perturbed by a relative δ
(``tests/plugins/perturbed.py``), certified as a user would (named cases,
drawn cases, golden replay, seed 0).  The thresholds sit well above the
smallest δ that ``python -m tools.detection`` measured (the README's table);
the unperturbed run makes a certifier that rejects everything fail here.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs

#: The smallest relative defect the certifier must reject, per dtype: 100 times (float64) and 4 to 40 times
#: (float32) the smallest δ that ``python -m tools.detection`` rejected (README, "Detection power").
THRESHOLDS = {
    "float64": {"lr": 1e-12, "weight_decay": 1e-12, "eps": 1e-12, "beta1": 1e-12, "one_minus_beta2": 1e-11},
    "float32": {"lr": 1e-4, "weight_decay": 1e-4, "eps": 1e-4, "beta1": 1e-4, "one_minus_beta2": 1e-3},
}
EXAMPLES = 20


def _rejected(knob: str, delta: float, dtype: str) -> bool:
    from tools.detection import rejected

    return rejected("adamw", knob, delta, dtype, EXAMPLES, seed=0)


@needs("torch")
@pytest.mark.parametrize("dtype", list(THRESHOLDS))
def test_the_unperturbed_subject_conforms_under_the_same_run(dtype):
    assert not _rejected("lr", 0.0, dtype), f"torch's AdamW in {dtype} is rejected: a false alarm"


@needs("torch")
@pytest.mark.parametrize(("dtype", "knob"), [(d, k) for d, knobs in THRESHOLDS.items() for k in knobs])
def test_a_defect_at_the_threshold_is_rejected(dtype, knob):
    delta = THRESHOLDS[dtype][knob]
    assert _rejected(knob, delta, dtype), f"{knob} off by a relative {delta:g} passes in {dtype}"


#: The floor of the named cases alone (no drawn cases, no golden replay), which only the
#: ``SENSITIVE_CASES`` reach: without them the named cases let 1-beta2 off by 0.24 pass in float32,
#: and every knob off by a relative 1 pass in bfloat16 (README, "Detection power").
NAMED_ONLY_THRESHOLDS = {
    "float32": {"lr": 1e-4, "eps": 1e-4, "one_minus_beta2": 1e-3},
    "bfloat16": {"lr": 1.0, "weight_decay": 1.0, "beta1": 1.0},
}


def _rejected_by_named_cases(knob: str, delta: float, dtype: str) -> bool:
    from tools.detection import rejected

    return rejected("adamw", knob, delta, dtype, examples=0, seed=0, replay_golden=False)


@needs("torch")
@pytest.mark.parametrize("dtype", list(NAMED_ONLY_THRESHOLDS))
def test_the_named_cases_alone_accept_the_unperturbed_subject(dtype):
    assert not _rejected_by_named_cases("lr", 0.0, dtype), f"torch's AdamW in {dtype} fails a named case"


@needs("torch")
@pytest.mark.parametrize(("dtype", "knob"), [(d, k) for d, knobs in NAMED_ONLY_THRESHOLDS.items() for k in knobs])
def test_the_named_cases_alone_reject_a_defect_at_their_threshold(dtype, knob):
    delta = NAMED_ONLY_THRESHOLDS[dtype][knob]
    assert _rejected_by_named_cases(knob, delta, dtype), (
        f"{knob} off by a relative {delta:g} passes every named case in {dtype}")
