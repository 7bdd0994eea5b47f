"""tf-keras (Keras 2) optimizers held to the conventions read from their source (tf-keras 2.21).

``tf_keras.optimizers`` is the generation Keras 3 was written from: its AdamW is Keras' ε-hat rule with
the decay ``var -= var * wd * lr`` before the step.  ``tf_keras.optimizers.legacy.Adam`` steps through
``ResourceApplyAdam``, ε-hat too; its Adagrad through ``ResourceApplyAdagradV2``, ε outside the root.
The legacy generation holds its hyperparameters in float32 variables (``optimizer_v2.py``
``_create_hypers``), so in float64 it is rejected, and the hint names them.
"""

from __future__ import annotations

import json

import pytest

from optspec import adapters
from optspec.conformance.certify import certify
from optspec.conformance.cli import main
from optspec.conformance.identify import identify
from tests.conftest import needs
from tests.helpers import assert_builtins_conform, builtin_subject

pytestmark = needs("tf_keras")

#: The preset each built-in follows, read from its source.
OWN_PRESETS = {
    "tf_keras.optimizers.SGD": "keras",
    "tf_keras.optimizers.Adagrad": "keras",
    "tf_keras.optimizers.RMSprop": "keras",
    "tf_keras.optimizers.Adam": "keras",
    "tf_keras.optimizers.AdamW": "keras",
    "tf_keras.optimizers.Lion": "paper",
    "tf_keras.optimizers.Adamax": "keras",
    "tf_keras.optimizers.Adadelta": "keras",
    "tf_keras.optimizers.legacy.SGD": "keras",
    "tf_keras.optimizers.legacy.Adagrad": "torch",
    "tf_keras.optimizers.legacy.Adam": "keras",
}


def test_every_builtin_conforms_to_the_preset_of_its_source_through_the_cli(capsys):
    assert_builtins_conform(capsys, "tf_keras", OWN_PRESETS, examples=5)


@pytest.mark.parametrize(("impl", "rule"), [("tf_keras.optimizers:AdamW", "adamw"),
                                            ("tf_keras.optimizers.legacy:Adam", "adam")])
def test_without_the_framework_flag_it_conforms_to_keras_and_the_certificate_names_tf_keras_on_tensorflow(
        impl, rule, tmp_path, capsys):
    import tensorflow as tf
    import tf_keras

    assert main(["certify", "--impl", impl, "--rule", rule, "--examples", "5", "--out", str(tmp_path)]) == 0
    assert f"CONFORMS: {impl} vs keras (" in capsys.readouterr().out
    (recorded,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert recorded["framework"] == "tf_keras", recorded
    assert recorded["framework_version"] == f"{tf_keras.__version__} on tensorflow {tf.__version__}", recorded


def test_identify_names_keras_for_the_legacy_adam():
    found = identify(builtin_subject("tf_keras", "tf_keras.optimizers.legacy.Adam"), examples=5)
    assert found.fits and found.preset == "keras" and found.rejection is None, found.lines()
    assert found.knobs["epsilon"] == "hat", found.knobs


def test_the_legacy_adam_in_float64_is_rejected_and_the_hint_names_its_float32_betas():
    cert = certify(builtin_subject("tf_keras", "tf_keras.optimizers.legacy.Adam"), dtype="float64", examples=5)
    assert not cert.conforms and "betas alone rounded to float32" in (cert.failure.hint or ""), cert.failure


@pytest.mark.parametrize(("impl", "knob"), [
    ("tests.plugins.tf_keras_subjects:LegacyAdamEpsilonCorrected", "epsilon=corrected"),
    ("tests.plugins.tf_keras_subjects:AdamWDecayAfter", "decay_point=after"),
])
def test_a_defective_optimizer_of_our_own_is_rejected_and_the_hint_names_its_knob(impl, knob):
    (subject,) = adapters.resolve_subject("tf_keras", impl)
    cert = certify(subject, dtype="float32", examples=5)
    assert not cert.conforms and knob in (cert.failure.hint or ""), cert.failure


def test_transformers_tf_adam_weight_decay_conforms_to_keras_and_has_no_float64_kernel(capsys):
    pytest.importorskip("transformers.optimization_tf")
    impl = "transformers.optimization_tf:AdamWeightDecay"  # legacy Adam's step, then lr·λ·θ; λ is weight_decay_rate
    assert main(["certify", "--impl", impl, "--examples", "5"]) == 0
    assert f"CONFORMS: {impl} vs keras (" in capsys.readouterr().out
    assert main(["certify", "--impl", impl, "--examples", "5", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert f"NOT APPLICABLE: {impl} vs keras (not applicable in float64: the subject has no float64 kernel" in out, out
