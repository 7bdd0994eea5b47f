"""Real third-party optimizers from PyPI, certified as they ship (the ``real`` extra).

The convention of each was read from its source; file and line refer to the
installed package at the pinned version.  None of these packages imports
torchvision, so each is imported as it is (PyPI's torchvision does not load
against the CPU torch wheel; a package that pulled it in would need its
optimizer module imported on its own).
"""

from __future__ import annotations

import pytest

from optspec.conformance.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def _certify(impl: str, *extra: str) -> int:
    return main(["certify", "--framework", "torch", "--impl", impl, "--dtype", "float32", *extra])


def _identify(impl: str, capsys, *options: str) -> list[str]:
    capsys.readouterr()
    code = main(["identify", "--framework", "torch", "--impl", impl, *options])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == (0 if lines[0].startswith("fit:") else 1)
    return lines


# transformers 4.49.0, transformers/optimization.py:629-638 (signature: no amsgrad, no maximize),
# :697 denom = sqrt(v) + eps and :699-703 step_size = lr*sqrt(bc2)/bc1 (epsilon "hat"),
# :715-716 p -= lr*wd*p after the Adam step (decay_point "after"): the hf_legacy preset.
HF = "transformers.optimization:AdamW[no_deprecation_warning=True]"


def test_hf_transformers_legacy_adamw_is_hf_legacy(capsys):
    pytest.importorskip("transformers.optimization")
    assert _certify(HF, "--convention", "hf_legacy", "--examples", "60") == 0
    assert _certify(HF, "--examples", "20") == 1  # not torch's convention
    assert _identify(HF, capsys)[-1] == "hf_legacy"


def test_hf_without_bias_correction_fits_knobs_but_no_preset(capsys):
    pytest.importorskip("transformers.optimization")
    lines = _identify("transformers.optimization:AdamW[no_deprecation_warning=True,correct_bias=False]", capsys)
    assert "knob: bias_correction=off" in lines and "knob: decay_point=after" in lines and lines[-1] == "none"


# torch-optimi 0.3.3, optimi/adamw.py:48-61 (no amsgrad, no maximize); optimi/adam.py:273 decay factor
# 1 - lr*wd before the step (:373-375), :396 lr*m/(sqrt(v)+eps) on bias-corrected moments: torch's
# convention.  With decouple_lr=True, adam.py:270-271 decays by (lr/max_lr)*wd, max_lr being the lr
# given at construction (optimizer.py:20-21): the paper's schedule-scaled decay.
def test_torch_optimi_adamw_is_torch(capsys):
    pytest.importorskip("optimi")
    assert _certify("optimi:AdamW", "--examples", "60") == 0
    assert _identify("optimi:AdamW", capsys)[-1] == "torch"


def test_torch_optimi_decouple_lr_is_the_paper(capsys):
    pytest.importorskip("optimi")
    impl = "optimi:AdamW[decouple_lr=True]"
    assert _certify(impl, "--convention", "paper", "--examples", "60") == 0
    assert _certify(impl, "--examples", "20") == 1
    assert _identify(impl, capsys)[-1] == "paper"


# torch-optimi 0.3.3, optimi/adam.py:384-393: with kahan_sum (on by default for bf16/fp16 parameters) the
# step uses the gradient as a scratch buffer (grad.copy_(param), then grad.sub_(param)).
def test_torch_optimi_kahan_summation_in_bfloat16_is_rejected_for_writing_into_the_gradient(capsys):
    pytest.importorskip("optimi")
    argv = ["certify", "--framework", "torch", "--impl", "optimi:AdamW", "--dtype", "bfloat16", "--examples", "0"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "the subject changed the gradient it was given at step 1: each gradient holds the parameters' change" in out
    assert "as Kahan summation's scratch space does" in out, out


# torchao's _AdamW (identified as torch, float32 conforms) and AdamW8bit (rejected by the default run, its
# 8-bit format named) are rows of the ecosystem scoreboard, which `nox -s ecosystem_check` reproduces in CI
# (tools/ecosystem_rows.py, with their source read there); their compiled steps take minutes on the CPU.


# bitsandbytes 0.50.2, bitsandbytes/optim/adamw.py:9-59: AdamW takes amsgrad and never passes it on.
def test_bitsandbytes_adamw_ignoring_amsgrad_is_named(capsys):
    pytest.importorskip("bitsandbytes")
    assert _certify("bitsandbytes.optim:AdamW", "--examples", "20") == 1
    assert "most likely knob: amsgrad ignored" in capsys.readouterr().out


# bitsandbytes 0.50.2, bitsandbytes/backends/default/ops.py:451-452: the CPU kernel steps p.float() and g.float().
def test_bitsandbytes_in_float64_is_told_its_error_is_the_size_of_float32_arithmetic(capsys):
    pytest.importorskip("bitsandbytes")
    assert _certify("bitsandbytes.optim:AdamW", "--dtype", "float64", "--examples", "5") == 1
    out = capsys.readouterr().out
    assert "no single knob explains it" in out and "within float32's bounds" in out, out


# torch-optimi 0.3.3, optimi/adam.py:269-273 turns λ into the multiplier 1 - (lr/max_lr)·λ (decouple_lr) or
# 1 - lr·λ, and :373-377 decays only when that multiplier is nonzero: where it is exactly 0, the decay that
# should zero the parameters is skipped.
def test_torch_optimi_skips_a_decay_whose_multiplier_is_zero():
    pytest.importorskip("optimi")
    import numpy as np

    from optspec import adapters, spec
    from optspec.conformance.cases import Case
    from optspec.conformance.check import run_case

    (subject,) = adapters.resolve_subject("torch", "optimi:AdamW[decouple_lr=True]", "adamw")
    hyper = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1.0}
    case = Case([np.array([1.0, -0.5])], [np.array([[1.0, 0.5], [0.5, -1.0]])], [0.01, 0.01], hyper)
    result = run_case(subject, case, convention=spec.resolve("paper"), dtype="float32")
    assert not result.passed and result.step == 1, result.failure
    assert "weight decay not applied" in result.hint, result.hint
    near = run_case(subject, Case(case.params0, case.grads, case.lrs, {**hyper, "weight_decay": 0.999}),
                    convention=spec.resolve("paper"), dtype="float32")
    assert near.passed, near.failure
