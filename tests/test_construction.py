"""Construction as the subject allows: knobs the constructor refuses are not tested (with its message),
a constructor that fails is one exit code in certify and identify, and a dtype without a kernel is not
applicable, not a failure."""

from __future__ import annotations

import json

import pytest

from optspec import adapters
from optspec.conformance.certify import certify
from optspec.conformance.cli import main
from tests.conftest import needs

PLUGIN = "tests.plugins.torch_subjects"


@needs("torch")
def test_a_knob_the_constructor_refuses_is_not_tested_and_the_rest_is_certified(tmp_path, capsys):
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:RefusesAmsgrad")
    assert "amsgrad" not in subject.supports and "maximize" in subject.supports
    assert subject.not_tested["amsgrad"] == (
        "the constructor refuses amsgrad=True (ValueError: this Adam does not support amsgrad)")
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:RefusesAmsgrad", "--examples", "10",
            "--out", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr()
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert "amsgrad: not tested: the constructor refuses amsgrad=True (ValueError: this Adam does not " \
           "support amsgrad)" in cert["notes"]


@needs("torch")
def test_a_kwargs_constructor_that_rejects_unknown_keys_is_certified_without_them():
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:UnknownKeywordsRefused")
    assert {"amsgrad", "maximize"} & subject.supports == set()
    assert subject.not_tested["maximize"].startswith("the constructor refuses maximize=False (TypeError")
    assert certify(subject, examples=10).conforms


@needs("torch")
def test_fixed_options_are_not_passed_again_as_knobs():
    # amsgrad=False is bound once by the options; passing it again as a knob would be a TypeError
    (subject,) = adapters.resolve_subject("torch", "torch.optim:AdamW[amsgrad=False,maximize=False]")
    assert dict(subject.fixed) == {"amsgrad": False, "maximize": False}
    assert certify(subject, examples=10).conforms


@needs("torch")
@pytest.mark.parametrize("command", ["certify", "identify"])
def test_a_constructor_that_fails_is_exit_2_with_its_message_in_certify_and_identify(command, capsys):
    argv = [command, "--framework", "torch", "--impl", f"{PLUGIN}:RejectsEverything"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "its constructor raised ValueError: unsupported argument betas" in err and len(err.splitlines()) == 1


@needs("torch")
def test_a_dtype_without_a_kernel_is_not_applicable_with_the_reason(capsys):
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:NoFloat64Kernel")
    cert = certify(subject, dtype="float64", examples=5)
    assert cert.verdict == "not applicable" and not cert.applicable and cert.passes and cert.cases_run == 0
    assert cert.notes[-1].startswith("not applicable in float64: the subject has no float64 kernel: it steps in "
                                     "float32"), cert.notes
    assert "no kernel for Double" in cert.notes[-1]
    assert certify(subject, dtype="float32", examples=5).conforms


@needs("torch")
def test_a_subject_that_raises_in_every_dtype_is_not_excused_as_missing_a_kernel():
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:AdamW_raises")
    with pytest.raises(adapters.SubjectError, match="raised at step 2: RuntimeError: kernel launch failed"):
        certify(subject, dtype="float64", examples=1)  # fails as a defect, in the worker a verdict of 1


@needs("torch")
def test_a_dtype_without_a_kernel_is_exit_0_and_says_not_applicable(capsys):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:NoFloat64Kernel", "--dtype", "float64",
            "--examples", "5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"NOT APPLICABLE: {PLUGIN}:NoFloat64Kernel vs torch (not applicable in float64: "), out
