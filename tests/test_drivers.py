"""Every subject, built-in or plugin, is driven through the full protocol; bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.adapters.frameworks import FRAMEWORKS, describe
from tests.conftest import needs

RNG = np.random.default_rng(11)
PARAMS0 = [RNG.normal(size=(3,)), RNG.normal(size=(2, 2)), RNG.normal(size=())]
STEPS = 6
GRADS = [RNG.normal(size=(STEPS, *p.shape)) for p in PARAMS0]
LRS = [0.05 * min(1, (t + 1) / 3) for t in range(STEPS)]  # warm-up


def all_subjects():
    out = []
    for framework in FRAMEWORKS:
        if adapters.is_available(framework):
            out += adapters.subjects(framework)
    return out


def hyper_for(subject):
    candidates = {"betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.05, "momentum": 0.5,
                  "alpha": 0.9, "initial_accumulator_value": 0.1, "rho": 0.9}
    return {k: v for k, v in candidates.items() if k in subject.supports}


def driven_dtype(subject) -> str:
    """float64, unless the subject has no float64 kernel (MindSpore's SGD), or keeps a state field in float32
    (torch's NAdam its product of momenta, which ``load_state_dict`` casts to the parameters' dtype,
    ``torch/optim/optimizer.py:799-801``, so that a float64 run resumed from a checkpoint is not the same run):
    then float32."""
    from optspec.conformance.certify import missing_kernel

    coarser_state = "float32" in subject.state_storage.values()
    return "float32" if coarser_state or missing_kernel(subject, "float64", None, 30.0) else "float64"


@pytest.mark.parametrize("subject", all_subjects(), ids=lambda s: s.name)
def test_full_protocol_with_save_and_restore(subject):
    hyper, dtype = hyper_for(subject), driven_dtype(subject)
    straight = adapters.drive(subject, PARAMS0, GRADS, LRS, hyper, record_state=True, dtype=dtype)
    resumed = adapters.drive(subject, PARAMS0, GRADS, LRS, hyper, restore_at=3, dtype=dtype)
    assert [p.shape for p in straight.params] == [(STEPS, *p.shape) for p in PARAMS0]
    for a, b in zip(straight.params, resumed.params):
        np.testing.assert_array_equal(a, b, err_msg=f"{subject.name}: state round trip changed the run")
    assert all(np.isfinite(p).all() for p in straight.params)
    if subject.rule != "sgd" or "momentum" in subject.supports:  # plain SGD has no state to expose
        assert straight.states and straight.states[-1], f"{subject.name} exposes no state"
    assert straight.mutated_at is None
    # the schedule reached the subject: a constant lr gives a different run
    constant = adapters.drive(subject, PARAMS0, GRADS, [LRS[-1]] * STEPS, hyper, dtype=dtype)
    assert not np.array_equal(constant.params[0], straight.params[0])


def with_a_preset():
    return [s for s in all_subjects() if s.convention is not None]


def test_every_builtin_of_a_rule_with_presets_declares_one_of_them():
    for subject in all_subjects():
        presets = spec.get_rule(subject.rule).presets
        assert (subject.convention in presets) if presets else subject.convention is None, subject


@pytest.mark.parametrize("subject", with_a_preset(), ids=lambda s: s.name)
def test_every_builtin_matches_its_own_preset(subject):
    hyper, dtype = {**hyper_for(subject), **subject.fixed}, driven_dtype(subject)
    got = adapters.drive(subject, PARAMS0, GRADS, LRS, hyper, dtype=dtype)
    # The frameworks certified in float32 by default keep some arithmetic in float32 under float64
    # parameters: Keras on TF rounds Python-float hyperparameters (tensorflow#35938), MLX raises beta to its
    # uint64 step count in float32 (Adam.apply_single's bias correction), MindSpore casts to float32.
    rtol = 1e-12 if describe(subject.framework).default_dtype == "float64" and dtype == "float64" else 1e-5
    for param0, grads, traj in zip(PARAMS0, GRADS, got.params):
        want = spec.run(subject.rule, param0, grads, lr=LRS, convention=subject.convention, **hyper)
        np.testing.assert_allclose(traj, want, rtol=rtol, atol=rtol, err_msg=subject.name)


PLUGINS = [
    pytest.param("torch", "tests.plugins.torch_subjects:ReferenceAdamW", marks=needs("torch")),
    pytest.param("jax", "tests.plugins.jax_subjects:adamw_torch_order", marks=needs("jax")),
    pytest.param("tensorflow", "tests.plugins.keras_subjects:PlainAdamW", marks=needs("tensorflow")),
]


@pytest.mark.parametrize(("framework", "target"), PLUGINS)
def test_plugin_is_driven_like_a_builtin(framework, target):
    (subject,) = adapters.resolve_subject(framework, target)
    hyper = {"betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.05}
    straight = adapters.drive(subject, PARAMS0, GRADS, LRS, hyper)
    resumed = adapters.drive(subject, PARAMS0, GRADS, LRS, hyper, restore_at=2)
    rtol = 1e-5 if framework == "tensorflow" else 1e-12
    for param0, grads, a, b in zip(PARAMS0, GRADS, straight.params, resumed.params):
        np.testing.assert_array_equal(a, b)
        want = spec.run("adamw", param0, grads, lr=LRS, convention=subject.convention, **hyper)
        np.testing.assert_allclose(a, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize(
    ("framework", "target", "message"),
    [
        ("torch", "nosuchpkg.optim:AdamW", r"--impl 'nosuchpkg.optim:AdamW': module 'nosuchpkg.optim' does not import \(ModuleNotFoundError"),
        ("torch", "tests.plugins.torch_subjects:Missing", r"module 'tests.plugins.torch_subjects' has no attribute 'Missing'"),
        ("torch", "tests.plugins.torch_subjects", r"is not of the form MODULE:ATTR"),
        ("torch", "tests.plugins.torch_subjects:NotAnOptimizer", r"has no 'lr' parameter: the certifier sets the learning rate through it"),
        ("jax", "tests.plugins.jax_subjects:not_a_transformation", r"cannot be driven as a jax adamw optimizer: TypeError: calling it returned int, not an optax.GradientTransformation"),
        ("tensorflow", "tests.plugins.torch_subjects:NotAnOptimizer", r"has no 'learning_rate' parameter"),
        ("torch", "AdamX", r"unknown subject 'AdamX' for torch: use MODULE:ATTR or one of torch.optim.SGD\[for-loop\]"),
    ],
)
def test_bad_impl_is_one_line(framework, target, message):
    if not adapters.is_available(framework):
        pytest.skip(f"{framework} is not installed")
    with pytest.raises(adapters.SetupError, match=message) as info:
        adapters.resolve_subject(framework, target)
    assert "\n" not in str(info.value)


@needs("torch")
def test_constructor_rejecting_the_call_is_a_setup_error_before_any_case():
    with pytest.raises(adapters.SetupError, match=r"cannot be driven as a torch adamw optimizer: its constructor raised ValueError: unsupported argument betas"):
        adapters.resolve_subject("torch", "tests.plugins.torch_subjects:RejectsEverything")


@needs("torch")
def test_subject_raising_mid_run_names_the_step_and_keeps_the_steps_before():
    (subject,) = adapters.resolve_subject("torch", "tests.plugins.torch_subjects:AdamW_raises")
    with pytest.raises(adapters.SubjectError, match=r"raised at step 2: RuntimeError: kernel launch failed") as info:
        adapters.drive(subject, PARAMS0, GRADS, LRS, {})
    assert info.value.step == 2
    assert [c.shape[0] for c in info.value.completed] == [1, 1, 1]


@needs("torch")
def test_subject_that_hangs_is_stopped():
    (subject,) = adapters.resolve_subject("torch", "tests.plugins.torch_subjects:AdamW_hangs")
    with pytest.raises(adapters.SubjectError, match=r"hung: no result within 0.5 s at step 2"):
        adapters.drive(subject, PARAMS0, GRADS, LRS, {}, time_limit_s=0.5)


@needs("torch")
def test_gradient_mutation_is_recorded():
    (subject,) = adapters.resolve_subject("torch", "tests.plugins.torch_subjects:AdamW_mutate_grad")
    assert adapters.drive(subject, PARAMS0, GRADS, LRS, {}).mutated_at == 1


@needs("torch")
def test_unsupported_hyperparameter_for_subject():
    (subject,) = adapters.resolve_subject("jax", "optax.adamw") if adapters.is_available("jax") else (None,)
    if subject is None:
        pytest.skip("jax is not installed")
    with pytest.raises(adapters.SubjectError, match=r"hyperparameter 'maximize' has no equivalent in this subject"):
        adapters.drive(subject, PARAMS0, GRADS, LRS, {"maximize": True})
