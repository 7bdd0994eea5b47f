"""Options fixed through ``[key=value]`` never cause a false alarm: golden scenarios and named cases are
matched against them by value and kind, and a scenario the subject cannot take is not applicable, with why."""

from __future__ import annotations

import pytest

from optspec import adapters
from optspec.adapters.plugins import same_value
from optspec.conformance.certify import certify
from optspec.conformance.golden import incompatibility
from tests.conftest import needs

#: (framework, plugin, rule, its options that fix λ = 0, ε = 1e-6, β = (0.9, 0.99) and AMSGrad, where it has them)
FIXED = {
    "torch": {"weight_decay=0.0": "weight_decay=0.0", "eps=1e-6": "eps=1e-6",
              "betas=(0.9, 0.99)": "betas=(0.9, 0.99)", "amsgrad": "amsgrad=True"},
    "jax": {"weight_decay=0.0": "weight_decay=0.0", "eps=1e-6": "eps=1e-6", "betas=(0.9, 0.99)": "b1=0.9,b2=0.99"},
    "tensorflow": {"weight_decay=0.0": "weight_decay=0.0", "eps=1e-6": "epsilon=1e-6",
                   "betas=(0.9, 0.99)": "beta_1=0.9,beta_2=0.99", "amsgrad": "amsgrad=True"},
}
#: Every built-in Adam-family subject, as a plugin whose options select it: (framework, plugin, base options, rule).
SUBJECTS = [
    *(("torch", "torch.optim:AdamW", form, "adamw") for form in ("foreach=False", "foreach=True", "fused=True")),
    *(("torch", "torch.optim:Adam", form, "adam") for form in ("foreach=False", "foreach=True", "fused=True")),
    ("torch", "torch.optim:Adam", "decoupled_weight_decay=True", "adamw"),
    ("jax", "optax:adamw", "", "adamw"),
    ("jax", "optax:adam", "", "adam"),
    ("tensorflow", "keras.optimizers:AdamW", "", "adamw"),
    ("tensorflow", "keras.optimizers:Adam", "", "adam"),
]


def _cases():
    for framework, target, base, rule in SUBJECTS:
        for label, option in FIXED[framework].items():
            if label == "weight_decay=0.0" and rule == "adam" and framework != "torch":
                continue  # optax's and Keras' Adam have no L2 weight decay to fix
            impl = f"{target}[{','.join(filter(None, (base, option)))}]"
            yield pytest.param(framework, impl, rule, marks=needs(framework), id=f"{impl}-{rule}")


@pytest.mark.parametrize(("framework", "impl", "rule"), list(_cases()))
def test_a_builtin_with_a_fixed_option_conforms_to_its_own_preset(framework, impl, rule):
    (subject,) = adapters.resolve_subject(framework, impl, rule)
    assert subject.fixed, f"{impl}: the option fixed no hyperparameter"
    dtype = "float32" if framework == "tensorflow" else "float64"
    cert = certify(subject, dtype=dtype, examples=0, golden_dir=_golden_dir())
    assert cert.conforms, cert.failure
    for outcome in cert.golden:
        assert outcome.applicable or "not applicable: it is recorded with" in outcome.detail, outcome


@needs("torch")
def test_a_factory_function_that_fixes_no_decay_conforms_and_says_which_scenarios_it_cannot_replay():
    (subject,) = adapters.resolve_subject("torch", "tests.plugins.torch_subjects:adamw_without_flags[weight_decay=0.0]")
    assert dict(subject.fixed) == {"weight_decay": 0.0}
    cert = certify(subject, examples=5, golden_dir=_golden_dir())
    assert cert.conforms, cert.failure
    skipped = {g.scenario: g.detail for g in cert.golden if not g.applicable}
    assert skipped["defaults"] == ("not applicable: it is recorded with weight_decay=0.01; "
                                   "the subject fixes weight_decay=0.0")
    assert "the constructor has no 'amsgrad' parameter" in skipped["amsgrad"]


def test_a_weight_decay_of_zero_is_not_the_flag_false():
    assert not same_value(0.0, False) and not same_value(False, 0)
    assert same_value(0, 0.0) and same_value((0.9, 0.99), [0.9, 0.99]) and same_value(True, True)
    assert not same_value((0.9, 0.99), (0.9, 0.999)) and not same_value(1e-6, (1e-6,))


@needs("torch")
def test_a_scenario_that_leaves_a_fixed_option_at_its_default_is_matched_against_the_default():
    (subject,) = adapters.resolve_subject("torch", "torch.optim:AdamW[amsgrad=False]")
    assert incompatibility(subject, {}) is None  # the default is amsgrad=False
    assert incompatibility(subject, {"amsgrad": True}) == (
        "it is recorded with amsgrad=True; the subject fixes amsgrad=False")


def _golden_dir() -> str:
    from optspec.conformance.golden import DEFAULT_DIR

    return str(DEFAULT_DIR)
