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


# The conventions of HF transformers' legacy AdamW (with and without bias correction), torch-optimi's AdamW
# (with and without decouple_lr), bitsandbytes' AdamW (amsgrad taken and ignored) and torchao's _AdamW and
# AdamW8bit (compiled steps: minutes on the CPU) are rows of the ecosystem scoreboard, with their source cited
# (tools/ecosystem_rows.py): `nox -s ecosystem_check` identifies and certifies each afresh in CI and fails where a
# verdict, a cause or an identified convention changes.


# torch-optimi 0.3.3, optimi/adam.py:384-393: with kahan_sum (on by default for bf16/fp16 parameters) the
# step uses the gradient as a scratch buffer (grad.copy_(param), then grad.sub_(param)).
def test_torch_optimi_kahan_summation_in_bfloat16_is_rejected_for_writing_into_the_gradient(capsys):
    pytest.importorskip("optimi")
    argv = ["certify", "--framework", "torch", "--impl", "optimi:AdamW", "--dtype", "bfloat16", "--examples", "0"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "the subject changed the gradient it was given at step 1: each gradient holds the parameters' change" in out
    assert "as Kahan summation's scratch space does" in out, out


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
