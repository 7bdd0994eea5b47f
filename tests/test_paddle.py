"""PaddlePaddle's optimizers held to the conventions read from their source (Paddle 3.3, ``paddle/optimizer/``
and the CPU kernels under ``paddle/phi/kernels/``), as ``docs/DEVIATIONS.md`` lists them.

AdamW decays ``p - lr*coeff*p`` before Adam's step (torch's rule); Adam's, SGD's and Momentum's float
``weight_decay`` is L2; RMSProp puts ε inside the root and lr inside the momentum trace (optax's knobs).  In
float64 AdamW's ``coeff`` is a C++ ``float`` attribute: the decay is rounded to float32.  NAdam (Dozat's schedule),
RAdam (ε raw, threshold 5) and Adadelta follow torch, with L2 decay; Adamax adds ε to the decayed norm (the spec's
``paddle`` preset); their β, ρ and ε are C++ ``float`` attributes too.  The CPU kernels are float64 and float32
only, SGD's also bfloat16.
"""

from __future__ import annotations

import pytest

from optspec import adapters
from optspec.conformance.certify import certify
from optspec.conformance.cli import main
from optspec.conformance.identify import identify
from tests.conftest import needs
from tests.helpers import assert_builtins_conform, builtin_subject

pytestmark = needs("paddle")

#: The preset each built-in follows, read from its source.
OWN_PRESETS = {
    "paddle.optimizer.SGD": "torch",
    "paddle.optimizer.Momentum": "torch",
    "paddle.optimizer.Adagrad": "torch",
    "paddle.optimizer.RMSProp": "optax",
    "paddle.optimizer.Adam": "torch",
    "paddle.optimizer.AdamW": "torch",
    "paddle.optimizer.NAdam": "torch",
    "paddle.optimizer.RAdam": "torch",
    "paddle.optimizer.Adadelta": "torch",
    "paddle.optimizer.Adamax": "paddle",
}


def test_every_builtin_conforms_to_the_preset_of_its_source_through_the_cli(capsys):
    assert_builtins_conform(capsys, "paddle", OWN_PRESETS, examples=10)


def test_adamw_in_float64_is_rejected_and_the_hint_names_its_float32_decay_coefficient():
    cert = certify(builtin_subject("paddle", "paddle.optimizer.AdamW"), dtype="float64", examples=5)
    assert not cert.conforms, cert.notes
    assert cert.failure.hint.startswith("most likely knob: weight_decay alone rounded to float32"), cert.failure


def test_adamax_held_to_torchs_preset_is_told_that_it_adds_epsilon_to_the_decayed_norm():
    """Paddle's u = max(|g|, b2*u + eps) (``impl/adamax_kernel_impl.h:63-64``), which only its own preset has."""
    cert = certify(builtin_subject("paddle", "paddle.optimizer.Adamax"), convention="torch", dtype="float32",
                   examples=5)
    assert not cert.conforms, cert.notes
    assert cert.failure.hint.startswith("most likely knob: epsilon=decayed"), cert.failure


@pytest.mark.parametrize(("dtype", "applicable"), [("bfloat16", {"paddle.optimizer.SGD"}), ("float16", set())])
def test_a_dtype_without_a_kernel_is_not_applicable_and_the_rest_conforms(dtype, applicable, capsys):
    assert main(["certify", "--framework", "paddle", "--dtype", dtype, "--examples", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    conforms = {line.split()[1] for line in lines if line.startswith("CONFORMS: ")}
    missing = [line for line in lines if line.startswith("NOT APPLICABLE: ")]
    assert conforms == applicable and len(missing) == len(OWN_PRESETS) - len(applicable), lines
    assert all(f"(not applicable in {dtype}: the subject has no {dtype} kernel" in line for line in missing), missing


@pytest.mark.parametrize(("impl", "rule", "preset"), [("paddle.optimizer:AdamW", "adamw", "torch"),
                                                      ("paddle.optimizer:RMSProp", "rmsprop", "optax"),
                                                      ("paddle.optimizer:NAdam", "nadam", "torch"),
                                                      ("paddle.optimizer:RAdam", "radam", "torch"),
                                                      ("paddle.optimizer:Adadelta", "adadelta", "torch"),
                                                      ("paddle.optimizer:Adamax", "adamax", "paddle")])
def test_identify_names_the_preset_of_its_source(impl, rule, preset):
    (subject,) = adapters.resolve_subject("paddle", impl, rule)
    found = identify(subject, examples=10)
    assert found.fits and found.preset == preset and found.rejection is None, found.lines()


def test_an_adamw_that_is_adam_with_l2_is_rejected_without_naming_the_framework(capsys):
    code = main(["certify", "--impl", "tests.plugins.paddle_subjects:AdamWAsL2", "--examples", "10"])
    out = capsys.readouterr().out
    assert code == 1 and "DOES NOT CONFORM: tests.plugins.paddle_subjects:AdamWAsL2 vs torch" in out, out
    assert "another rule: its steps follow the spec's rule adam" in out and "certify it with --rule adam" in out, out
