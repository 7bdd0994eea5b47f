"""MindSpore's optimizers held to the conventions read from their source (MindSpore 2.10, ``mindspore/nn/optim/``
and ``mindspore/experimental/optim/``), as ``docs/DEVIATIONS.md`` lists them.

``nn.AdamWeightDecay`` is BERT's rule (no bias correction, the decay inside the update) and refuses β1 = 0;
``experimental.optim.AdamW`` is torch's; ``nn.Adam`` is Keras' ε-hat with an L2 term, and its AMSGrad kernel
refuses 0-D parameters; ``nn.SGD`` is torch's SGD.  In float64 ``nn.AdamWeightDecay`` casts the
parameters to float32 for its kernel.  ``nox -s separate`` runs these tests (MindSpore needs NumPy 1).
"""

from __future__ import annotations

from optspec import adapters
from optspec.conformance.certify import certify
from optspec.conformance.cli import main
from optspec.conformance.identify import identify
from tests.conftest import needs
from tests.helpers import assert_builtins_conform, builtin_subject

pytestmark = needs("mindspore")

#: The preset each built-in follows, read from its source.
OWN_PRESETS = {
    "mindspore.nn.AdamWeightDecay": "bert",
    "mindspore.experimental.optim.AdamW": "torch",
    "mindspore.nn.Adam": "keras",
    "mindspore.nn.SGD": "torch",
    "mindspore.nn.Adadelta": "torch",
    "mindspore.nn.Rprop": "torch",
    "mindspore.experimental.optim.Adamax": "torch",
    "mindspore.experimental.optim.Adadelta": "torch",
    "mindspore.experimental.optim.Rprop": "torch",
}


def test_every_builtin_conforms_to_the_preset_of_its_source_through_the_cli(capsys):
    assert_builtins_conform(capsys, "mindspore", OWN_PRESETS, examples=10)


def test_a_drawn_value_the_constructor_refuses_is_not_run_and_the_certificate_says_so():
    cert = certify(builtin_subject("mindspore", "mindspore.nn.AdamWeightDecay"), dtype="float32", examples=10)
    assert cert.conforms, cert.failure
    assert any(n.startswith("drawn cases not run: the constructor refuses betas=(0.0,") and "beta1" in n
               for n in cert.notes), cert.notes


def test_adamweightdecay_in_float64_is_rejected_and_the_hint_says_it_computes_in_float32():
    cert = certify(builtin_subject("mindspore", "mindspore.nn.AdamWeightDecay"), dtype="float64", examples=5)
    assert not cert.conforms, cert.notes
    assert cert.failure.hint.startswith("computed in float32: every value the subject returned is exactly a "
                                        "float32 value"), cert.failure


def test_identify_names_bert_for_adamweightdecay_without_the_framework_flag(capsys):
    assert main(["identify", "--impl", "mindspore.nn:AdamWeightDecay", "--examples", "5"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "bert"


def test_identify_names_torch_for_the_experimental_adamw():
    (subject,) = adapters.resolve_subject("mindspore", "mindspore.experimental.optim:AdamW")
    found = identify(subject, examples=5)
    assert found.fits and found.preset == "torch" and found.rejection is None, found.lines()


def test_a_decay_without_the_learning_rate_is_rejected_and_the_hint_names_it(capsys):
    code = main(["certify", "--impl", "tests.plugins.mindspore_subjects:AdamWDecayWithoutLr", "--examples", "10"])
    out = capsys.readouterr().out
    assert code == 1 and "DOES NOT CONFORM: tests.plugins.mindspore_subjects:AdamWDecayWithoutLr vs torch" in out
    assert "most likely knob: decay_scale=none" in out, out


def test_adam_is_keras_epsilon_hat_and_says_why_its_amsgrad_is_not_tested():
    adam = builtin_subject("mindspore", "mindspore.nn.Adam")
    cert = certify(adam, dtype="float32", examples=10)
    assert cert.conforms, cert.failure
    assert any(n.startswith("amsgrad: not tested: its CPU kernel ApplyAdamWithAmsgradV2 refuses a 0-D parameter")
               for n in cert.notes), cert.notes
    assert not certify(adam, convention="torch", dtype="float32", examples=10).conforms
