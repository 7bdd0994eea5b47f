"""MLX's optimizers held to the conventions read from their source (``mlx/optimizers/optimizers.py``, MLX 0.32).

``Adam.apply_single`` divides by ``1 - beta**step`` only when ``bias_correction=True``, which is off by
default: MLX's AdamW (``parameter * (1 - lr * weight_decay)`` first, then Adam's step) is BERT's rule as it
ships and torch's with the flag.  Its SGD damps the first step (``v`` starts at zeros); its Adagrad refuses
``eps=0``.
"""

from __future__ import annotations

import dataclasses

import pytest

from optspec import adapters
from optspec.conformance.cases import NAMED_CASES, restricted
from optspec.conformance.certify import certify
from optspec.conformance.check import refused_edge
from optspec.conformance.cli import main
from optspec.conformance.identify import identify
from tests.conftest import needs
from tests.helpers import assert_builtins_conform, builtin_subject

pytestmark = needs("mlx")

#: The preset each built-in follows, read from its source.
OWN_PRESETS = {
    "mlx.optimizers.SGD": "mlx",
    "mlx.optimizers.Adagrad": "torch",
    "mlx.optimizers.RMSprop": "torch",
    "mlx.optimizers.Adam": "bert",
    "mlx.optimizers.Adam[bias_correction=True]": "torch",
    "mlx.optimizers.AdamW": "bert",
    "mlx.optimizers.AdamW[bias_correction=True]": "torch",
    "mlx.optimizers.Adamax": "mlx",
    "mlx.optimizers.AdaDelta": "torch",
    "mlx.optimizers.Lion": "paper",
}



def test_every_builtin_conforms_to_the_preset_of_its_source_through_the_cli(capsys):
    assert_builtins_conform(capsys, "mlx", OWN_PRESETS, examples=10)


def test_adamw_as_it_ships_is_not_torchs_and_the_hint_names_the_missing_bias_correction():
    cert = certify(builtin_subject("mlx", "mlx.optimizers.AdamW"), convention="torch", dtype="float32", examples=10)
    assert not cert.conforms and "most likely knob: bias_correction=False" in cert.failure.hint, cert.failure


@pytest.mark.parametrize(("impl", "preset"), [("mlx.optimizers.AdamW", "bert"),
                                              ("mlx.optimizers:AdamW[bias_correction=True]", "torch"),
                                              ("mlx.optimizers.Adam", "bert")])
def test_identify_names_bert_as_it_ships_and_torch_with_bias_correction(impl, preset):
    (subject,) = [s for s in adapters.resolve_subject("mlx", impl) if s.name == impl]
    found = identify(subject, examples=10)
    assert found.fits and found.preset == preset and found.rejection is None, found.lines()
    assert found.knobs["bias_correction"] is (preset == "torch"), found.knobs


def test_a_defective_adamw_of_our_own_is_rejected_and_the_hint_names_its_decay_point():
    (subject,) = adapters.resolve_subject("mlx", "tests.plugins.mlx_subjects:AdamWDecayAfter")
    assert subject.convention == "bert"  # its signature keeps MLX's bias_correction=False
    cert = certify(subject, dtype="float32", examples=10)
    assert not cert.conforms and "decay_point=after" in (cert.failure.hint or ""), cert.failure


def test_a_case_whose_edge_value_the_constructor_refuses_does_not_apply_and_the_certificate_says_so():
    adagrad = builtin_subject("mlx", "mlx.optimizers.Adagrad")
    (zero_accumulator,) = [restricted(c, adagrad) for c in NAMED_CASES if c.label == "zero-accumulator"]
    refusal = refused_edge(adagrad, zero_accumulator, dtype="float32")
    assert refusal and "the constructor refuses eps=0.0" in refusal and "epsilon should be >0" in refusal
    assert refused_edge(adagrad, dataclasses.replace(zero_accumulator, hyper={"eps": 1e-8}), dtype="float32") is None
    cert = certify(adagrad, dtype="float32", examples=5)
    assert cert.conforms and f"named case not applicable: {refusal}" in cert.notes, cert.notes


def test_a_constructor_that_refuses_everything_is_not_excused_by_an_edge_value():
    def refuses(*args, **kwargs):
        raise ValueError("nothing is accepted")

    broken = dataclasses.replace(builtin_subject("mlx", "mlx.optimizers.Adagrad"), name="broken", build=refuses)
    (zero_accumulator,) = [restricted(c, broken) for c in NAMED_CASES if c.label == "zero-accumulator"]
    assert refused_edge(broken, zero_accumulator, dtype="float32") is None


def test_size_without_a_compiled_spec_is_refused_in_one_line_before_any_work(capsys):
    code = main(["certify", "--framework", "mlx", "--size", "1000"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "mlx does not have: drop --size" in err[0], err
