"""State stored in fewer bits than the parameters, certified in its own set-up: declared with ``--state-dtype``,
named by the diagnosis where the subject holds such state, and never put down to another ``--dtype``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.conformance import tolerance
from optspec.conformance.certify import certify
from optspec.conformance.cli import main
from optspec.conformance.reference import reference
from optspec.conformance.state_storage import parse_state_dtypes, stored
from tests.conftest import needs

PLUGIN = "tests.plugins.torch_subjects"
SECOND_MOMENT_IN_BF16 = {"exp_avg_sq": "bfloat16", "max_exp_avg_sq": "bfloat16"}


def test_the_reference_stores_a_field_rounded_in_its_dtype_and_the_others_exactly():
    from optspec.conformance.cases import Case

    case = Case([np.array([1.0, -0.5])], [np.array([[0.3, 0.1], [0.2, -0.7]])], [0.1, 0.1],
                {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0})
    states: list = []
    reference("adamw", spec.resolve("torch"), case, case.params0[0], case.grads[0], states=states,
              storage={"exp_avg": "bfloat16"})
    for state in states:
        bits = state.exp_avg.astype(np.float32).view(np.uint32)
        assert np.all(bits & 0xFFFF == 0), state.exp_avg  # a bfloat16 value
        assert not np.all(state.exp_avg_sq.astype(np.float32).view(np.uint32) & 0xFFFF == 0)


def test_the_bound_takes_the_storage_dtype_for_the_state_history_only():
    theta, update = np.array([1.0]), np.array([1e-3])
    plain = tolerance.one_step_bound(theta, update, 3, "float32")
    coarse = tolerance.one_step_bound(theta, update, 3, "float32", state_dtype="bfloat16")
    assert coarse - plain == pytest.approx(tolerance.SAFETY * 2 * 3 * (2.0**-8 - 2.0**-24) * 1e-3)


@needs("torch")
def test_a_second_moment_in_bfloat16_is_named_with_its_declaration_and_no_other_dtype(capsys):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_bf16_second_moment", "--dtype", "float32",
            "--examples", "5"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "most likely: the subject stores state in bfloat16 (it holds bfloat16 state" in out, out
    assert "--state-dtype FIELD=bfloat16, FIELD one of exp_avg, exp_avg_sq, max_exp_avg_sq" in out, out
    assert "--dtype bfloat16" not in out, out


@needs("torch")
def test_declared_it_is_certified_in_its_own_set_up_golden_replay_included(tmp_path, capsys):
    """Through the CLI: the cases in a worker, the golden replay in a second one, each storing the state so."""
    declared = [word for field, dtype in SECOND_MOMENT_IN_BF16.items() for word in ("--state-dtype", f"{field}={dtype}")]
    assert main(["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_bf16_second_moment", "--dtype",
                 "float32", "--examples", "10", *declared, "--out", str(tmp_path)]) == 0, capsys.readouterr().out
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert "state stored as declared: exp_avg_sq in bfloat16, max_exp_avg_sq in bfloat16" in cert["notes"]
    assert any(outcome["passed"] for outcome in cert["golden"]), cert["golden"]


@needs("torch")
def test_a_state_declared_coarser_than_the_subject_keeps_passes_and_a_finer_one_is_rejected():
    (subject,) = adapters.resolve_subject("torch", "torch.optim.AdamW[foreach]")
    assert certify(subject, dtype="float32", examples=5, state_dtypes={"exp_avg": "bfloat16"}).conforms
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:AdamW_bf16_second_moment")
    cert = certify(subject, dtype="float32", examples=5, state_dtypes={"exp_avg_sq": "float32"})
    assert not cert.conforms and "stores state in bfloat16" in cert.failure.hint, cert.failure


@needs("jax")
def test_optax_with_a_bfloat16_first_moment_is_certified_as_it_ships_not_in_bfloat16_parameters():
    (subject,) = adapters.resolve_subject("jax", "optax:adamw[mu_dtype='bfloat16']")
    cert = certify(subject, dtype="float32", examples=5)
    assert not cert.conforms
    assert "--state-dtype FIELD=bfloat16" in cert.failure.hint and "--dtype" not in cert.failure.hint, cert.failure
    cert = certify(subject, dtype="float32", examples=10, state_dtypes={"exp_avg": "bfloat16"})
    assert cert.conforms, cert.failure


@pytest.mark.parametrize(("texts", "message"), [
    (["exp_avg"], "is not FIELD=DTYPE"),
    (["exp_avg=int8"], "is not one of float64"),
    (["exp_avg=bfloat16", "exp_avg=float16"], "given twice"),
])
def test_a_malformed_state_dtype_is_one_line(texts, message):
    with pytest.raises(adapters.SetupError, match=message):
        parse_state_dtypes(texts)


def test_a_field_the_rule_has_not_is_refused_naming_its_fields():
    (subject,) = adapters.resolve_subject("numpy", "spec.adamw")
    with pytest.raises(adapters.SetupError, match="not a state field of rule 'adamw': use one of exp_avg"):
        stored(subject, {"momentum_buffer": "bfloat16"})
