"""The certifier: detection power, no false alarms, identify, the CLI's verdicts and errors."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from optspec import adapters, spec
from optspec.conformance.certify import certify
from optspec.conformance.cli import main
from optspec.conformance.identify import identify
from tests.conftest import false_alarm_cases, needs
from tests.plugins.torch_subjects import DEVIATIONS

PLUGIN = "tests.plugins.torch_subjects"
EXPECTED_HINT = {
    "l2": "L2 term",
    "decay_after": "decay_point=after",
    "no_bias_correction": "bias_correction=False",
    "epsilon_hat": "epsilon=hat",
    "epsilon_inside": "epsilon=inside",
    "decay_unscaled": "decay_scale=none",
    "bias_off_by_one": "bias_correction one step late",
    "amsgrad_corrected": "amsgrad=corrected",
    # either the named candidate ("second moment kept in bfloat16") or the storage advice ("holds ... in bfloat16")
    "bf16_second_moment": "in bfloat16",
    "ignore_maximize": "maximize ignored",
}


@needs("torch")
@pytest.mark.parametrize("deviation", DEVIATIONS)
def test_every_single_deviation_is_rejected_with_the_right_knob(deviation):
    assert set(EXPECTED_HINT) == set(DEVIATIONS)
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:AdamW_{deviation}")
    dtype = "float32" if deviation == "bf16_second_moment" else "float64"
    cert = certify(subject, convention="torch", dtype=dtype, examples=20)
    assert not cert.conforms, f"{deviation} was not caught"
    assert EXPECTED_HINT[deviation] in cert.failure.hint, cert.failure


@needs("torch")
@pytest.mark.parametrize("target", [f"{PLUGIN}:ReferenceAdamW", f"{PLUGIN}:Float64Internals"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rounding_only_differences_pass(target, dtype):
    (subject,) = adapters.resolve_subject("torch", target)
    cert = certify(subject, convention="torch", dtype=dtype, examples=60)
    assert cert.conforms, cert.failure


def builtin_adam_family():
    out = []
    for framework in ("torch", "jax", "tensorflow", "numpy"):
        if adapters.is_available(framework):
            family = [s for s in adapters.subjects(framework) if s.rule in ("adam", "adamw")]
            share = -(-false_alarm_cases() // len(family))
            if framework == "numpy":  # the spec against itself: not batched, and not a claim of the issue
                share = 20
            out += [pytest.param(s, share, id=s.name) for s in family]
    return out


@pytest.mark.parametrize(("subject", "examples"), builtin_adam_family())
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_builtin_subjects_pass_their_own_preset(subject, examples, seed):
    """No false alarms: each framework's built-ins share false_alarm_cases() cases per seed, over 5 seeds."""
    cert = certify(subject, dtype="float32" if subject.framework == "tensorflow" else "float64",
                   examples=examples, seed_value=seed)
    assert cert.conforms, cert.failure
    assert cert.cases_run >= examples


def _l2_feedback_case(weight_decay: float = 0.1):
    """Shrunk from seed 3: an L2 gradient that cancels at step 1, then a tiny one divided by ~ε."""
    import numpy as np

    from optspec.conformance.cases import Case

    return Case(params0=[np.array(1e-5)], grads=[np.array([-1e-6, 1e-6, 1e-6, 1e-6, 1e-6])], lrs=[0.5] * 5,
                hyper={"betas": (0.0, 0.9), "eps": 1e-7, "weight_decay": weight_decay,
                       "amsgrad": False, "maximize": False})


@needs("torch")
def test_an_l2_error_amplified_by_the_adaptive_step_is_within_the_trajectory_bound():
    """θ₁ is off by 1.5e-16 (fused g + λθ), and λ/ε turns that into 3e-13 at step 2: rounding, not a defect."""
    from optspec.conformance.check import run_case

    subject = adapters.resolve_subject("torch", "torch.optim.Adam[for-loop]")[0]
    result = run_case(subject, _l2_feedback_case(), convention=spec.resolve("torch"), dtype="float64")
    assert result.passed, result.failure


@needs("torch")
def test_the_l2_feedback_term_does_not_hide_a_wrong_weight_decay():
    """A relative change of 1e-9 in λ moves the same case by far more than the widened bound."""
    from optspec.conformance.check import check_trajectory, prepared

    subject = adapters.resolve_subject("torch", "torch.optim.Adam[for-loop]")[0]
    case, params0, grads = prepared(subject, _l2_feedback_case(), "float64")
    skewed = prepared(subject, _l2_feedback_case(0.1 * (1 + 1e-9)), "float64")[0]
    got = adapters.drive(subject, params0, grads, skewed.lrs, skewed.hyper, dtype="float64")
    result = check_trajectory(subject, case, params0, grads, got, convention=spec.resolve("torch"), dtype="float64")
    assert not result.passed


@pytest.mark.parametrize(
    ("framework", "impl", "preset"),
    [
        pytest.param("torch", "torch.optim.AdamW", "torch", marks=needs("torch")),
        pytest.param("jax", "optax.adamw", "optax", marks=needs("jax")),
        pytest.param("tensorflow", "keras.optimizers.AdamW", "keras", marks=needs("tensorflow")),
        pytest.param("torch", f"{PLUGIN}:AdamW_epsilon_hat", "keras", marks=needs("torch")),
        pytest.param("torch", f"{PLUGIN}:AdamW_no_bias_correction", "bert", marks=needs("torch")),
        pytest.param("torch", f"{PLUGIN}:AdamW_decay_unscaled", "none", marks=needs("torch")),
    ],
)
def test_identify_names_the_preset(framework, impl, preset, capsys):
    assert main(["identify", "--framework", framework, "--impl", impl]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == preset
    assert lines[0].startswith("fit: error/bound ") and float(lines[0].split()[2]) <= 1
    assert lines[1].startswith("certified: conforms in ")
    assert [line.split("=")[0] for line in lines[2:-1]] == [
        "knob: decay_scale", "knob: decay_point", "knob: bias_correction", "knob: epsilon", "knob: amsgrad"]


@needs("torch")
def test_identify_describes_a_subject_matching_no_preset():
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:AdamW_decay_after")
    ident = identify(subject)
    assert ident.knobs["decay_point"] == "after" and ident.knobs["epsilon"] == "corrected"
    assert ident.preset is None


@needs("torch")
@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["certify", "--framework", "mxnet"], 2, "unknown framework 'mxnet'"),
        (["certify", "--framework", "torch", "--convention", "pytorch"], 2, "unknown convention 'pytorch'"),
        (["certify", "--framework", "torch", "--impl", "nope.mod:X"], 2, "does not import"),
        (["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_raises", "--examples", "1"], 1, "raised at step 2: RuntimeError: kernel launch failed"),
        (["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_nan", "--examples", "1"], 1, "non-finite at step 1"),
        (["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_mutate_grad", "--examples", "1"], 1, "changed the gradient it was given at step 1"),
    ],
)
def test_cli_exit_codes_and_one_line_errors(argv, code, message, capsys):
    assert main(argv) == code
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1


@needs("torch")
def test_hanging_subject_hits_the_time_limit():
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:AdamW_hangs")
    with pytest.raises(adapters.SubjectError, match=r"hung: no result within 0\.5 s at step 2"):
        from optspec.conformance.cases import NAMED_CASES
        from optspec.conformance.check import run_case

        run_case(subject, NAMED_CASES[0], convention=spec.resolve("torch"), time_limit_s=0.5)


@needs("torch")
def test_a_kernel_that_keeps_its_state_in_float32_is_told_to_certify_in_float32():
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:Float32State")
    cert = certify(subject, dtype="float64", examples=5)
    assert not cert.conforms and "holds its parameters or state in float32" in cert.failure.hint, cert.failure
    assert "--dtype float32" in cert.failure.hint
    assert certify(subject, dtype="float32", examples=20).conforms


@needs("torch")
def test_a_kernel_that_keeps_its_state_in_the_dtype_under_test_is_never_told_to_use_a_coarser_one():
    # computes in float32 but holds parameters and state in float64: float32's bounds would hide a defect
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:Float32Internals")
    cert = certify(subject, dtype="float64", examples=5)
    assert not cert.conforms and "--dtype" not in cert.failure.hint, cert.failure.hint


@needs("torch")
def test_a_defect_larger_than_float32_arithmetic_is_not_put_down_to_it():
    # torch's AdamW with lr·(1 + 1e-3)
    (subject,) = adapters.resolve_subject("torch", "tests.plugins.perturbed:AdamW[knob='lr',delta=1e-3]")
    cert = certify(subject, dtype="float64", examples=5)
    assert not cert.conforms and "float32" not in cert.failure.hint, cert.failure.hint


@needs("torch")
def test_out_writes_certificate_junit_and_report(tmp_path):
    code = main(["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_epsilon_hat",
                 "--examples", "5", "--seed", "7", "--out", str(tmp_path)])
    assert code == 1
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert cert["verdict"] == "does not conform" and cert["seed"] == 7
    assert cert["spec_version"] and cert["framework_version"] and cert["failure"]["hint"]
    assert "<failure" in (tmp_path / "junit.xml").read_text()
    report = (tmp_path / "report.md").read_text()
    assert "epsilon=hat" in report and "![|error| / bound, log axis](errors-0.png)" in report
    assert (tmp_path / "errors-0.png").read_bytes()[:4] == b"\x89PNG"


@needs("torch")
def test_reproduce_spec_prints_the_expected_value_the_failure_names(tmp_path):
    main(["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_epsilon_hat", "--examples", "5",
          "--out", str(tmp_path)])
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    failure = cert["failure"]
    # the free-running reference is the expected value of a trajectory failure, and of a one-step failure at step 1
    assert failure["check"] == "trajectory" or failure["step"] == 1, failure
    tensor, element, step = re.search(r"tensor (\d+) element \(([\d, ]*)\) at step (\d+)", failure["detail"]).groups()
    expected = float(re.search(r"expected (\S+),", failure["detail"]).group(1))
    printed: list = []
    exec(failure["reproduce_spec"], {"print": printed.append})  # the snippet as written, its prints captured
    index = (int(step) - 1, *(int(i) for i in element.split(",") if i.strip()))
    assert float(printed[int(tensor)][index]) == expected, (printed[int(tensor)], index, expected)


@needs("torch")
def test_a_non_finite_failure_writes_no_plot(tmp_path):
    assert main(["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_nan", "--examples", "1",
                 "--out", str(tmp_path)]) == 1
    assert "non-finite" in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob("*.png")), "NaN has no error/bound to plot; a plot would look like a pass"


@needs("torch")
def test_pytest_plugin_certifies_inside_pytest(tmp_path):
    skips = tmp_path / "skips.txt"
    skips.write_text("no.such.subject reason\n")
    (tmp_path / "test_empty.py").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider",
         "--optspec-framework", "torch", "--optspec-impl", f"{PLUGIN}:AdamW_epsilon_hat",
         "--optspec-examples", "3", "--optspec-skips", str(skips)],
        capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parent.parent))
    assert result.returncode == 1, result.stdout
    assert "epsilon=hat" in result.stdout
    assert "matches no subject" in result.stdout


@needs("jax")
def test_a_subjects_own_default_is_not_taken_for_a_deviation():
    """optax.rmsprop's decay defaults to 0.9 where the spec's (torch's) alpha is 0.99."""
    import dataclasses

    from optspec.conformance.cases import NAMED_CASES, restricted
    from optspec.conformance.check import run_case

    (subject,) = adapters.resolve_subject("jax", "optax.rmsprop")
    case = restricted(NAMED_CASES[2], subject)
    assert "alpha" not in case.hyper
    own = spec.get_rule("rmsprop").presets["optax"]
    result = run_case(subject, case, convention=own)
    assert result.passed, result.failure
    assert result.case.hyper["alpha"] == 0.99
    slower = run_case(subject, dataclasses.replace(case, hyper={**case.hyper, "alpha": 0.9}), convention=own)
    assert slower.passed and slower.case.hyper["alpha"] == 0.9


@needs("tensorflow")
def test_keras_float64_drift_is_explained_by_float32_hyperparameters():
    """Keras-TF rounds Python-float hyperparameters through float32 (tensorflow#35938)."""
    (subject,) = adapters.resolve_subject("tensorflow", "keras.optimizers.AdamW")
    cert = certify(subject, dtype="float64", examples=0)
    assert not cert.conforms
    assert "rounded to float32" in cert.failure.hint, cert.failure


@needs("torch")
def test_matrix_prints_subject_by_preset(capsys):
    code = main(["matrix", "--framework", "torch", "--impl", "torch.optim.AdamW[fused]", "--examples", "5"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.startswith("subject"))
    # the columns are the presets of the rows' rules: no RMSprop-only tf1, no rule column for AdamW
    assert header.split()[1:] == ["dtype", "torch", "optax", "keras", "paper", "bert", "hf_legacy", "tfa"]
    (row,) = [line for line in out if line.startswith("torch.optim.AdamW[fused]")]
    cells = row.split()[1:]
    # optax's preset differs in amsgrad (max of v̂), which this subject supports, so it differs too.
    assert cells[:3] == ["float64", "PASS", cells[2]] and cells[2].endswith("*"), row
    assert cells[3:] == ["differs"] * 6, row
    assert any(line.startswith("differs: ") and "not a bug" in line for line in out)


def test_matrix_exit_code_counts_the_rule_column(monkeypatch, capsys):
    from optspec.conformance import run

    real = run.certify_matrix

    def failing(options, **kwargs):
        for subject, preset, cert in real(options, **kwargs):
            failed = dataclasses.replace(cert, verdict="does not conform") if subject.rule == "sgdw" else cert
            yield subject, preset, failed

    monkeypatch.setattr(run, "certify_matrix", failing)
    # SGDW has one behaviour: its only cell is the rule's
    assert main(["matrix", "--framework", "numpy", "--impl", "spec.sgdw", "--examples", "2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert next(line for line in out if line.startswith("subject")).split()[1:] == ["dtype", "rule"]
    (row,) = [line for line in out if line.startswith("spec.sgdw")]
    assert row.split()[-1] == "FAIL*", row


@needs("torch")
def test_matrix_out_writes_every_cell_and_a_crash_fails_its_cells_only(tmp_path, capsys, monkeypatch):
    from optspec.conformance import run

    # two columns keep it short: each cell after a crash starts a fresh worker
    monkeypatch.setattr(run, "matrix_conventions", lambda subject: ["torch", "optax"])
    code = main(["matrix", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_segfaults", "--examples", "2",
                 "--out", str(tmp_path)])
    assert code == 1
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(PLUGIN)]
    assert row.split()[1:] == ["float64", "FAIL*", "differs"], row
    document = json.loads((tmp_path / "certificate.json").read_text())
    certs = document["certificates"]
    assert [c["convention"] for c in certs] == ["torch", "optax"]
    assert all("crashed with SIGSEGV at step 3" in c["failure"]["detail"] for c in certs), certs
    junit = (tmp_path / "junit.xml").read_text()
    # the subject's own preset is a failure; another preset it does not follow is skipped, not failed
    assert junit.count("<failure") == 2 and 'name="trajectory"><skipped message="differs' in junit
    assert "# optspec matrix" in (tmp_path / "report.md").read_text()


def test_matrix_options_are_refused_before_any_case(capsys):
    assert main(["matrix", "--examples", "-5"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --examples must be 0 or more (got -5)"]
