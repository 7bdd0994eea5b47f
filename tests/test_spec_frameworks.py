"""The spec's torch, optax and keras conventions agree with the real optimizers in float64.

Cases are hypothesis-drawn: several tensors, gradient streams with exact zeros,
tiny (1e-30) and huge (1e30) values and sign flips, schedules, and every
hyperparameter the optimizer takes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optspec import adapters, spec
from optspec.conformance import strategies as cs
from tests.conftest import needs
from tests.helpers import assert_trajectory_close


@st.composite
def cases(draw, subject, magnitude=(cs.TINY, cs.HUGE), steps=(1, 6)):
    tensor_shapes = draw(cs.shapes(), label="shapes")
    steps = draw(st.integers(*steps), label="steps")
    params0 = [draw(cs.parameters(s)) for s in tensor_shapes]
    grads = [draw(cs.gradient_stream(s, steps, magnitude)) for s in tensor_shapes]
    lr = draw(cs.HYPER_STRATEGIES["lr"], label="lr")
    lrs = draw(cs.schedule(steps, lr), label="schedule")
    hyper = draw(cs.hyperparameters(subject.supports), label="hyper")
    return params0, grads, lrs, {**hyper, **subject.fixed}


def reference(subject, params0, grads, lrs, hyper, dtype=np.float64):
    kwargs = dict(hyper)
    if subject.convention:
        kwargs["convention"] = subject.convention
    return [
        spec.run(subject.rule, p.astype(dtype), g.astype(dtype), lr=lrs, **kwargs)
        for p, g in zip(params0, grads)
    ]


def check(subject, case, *, rtol, dtype="float64"):
    params0, grads, lrs, hyper = case
    got = adapters.drive(subject, params0, grads, lrs, hyper, dtype=dtype)
    want = reference(subject, params0, grads, lrs, hyper)
    for i, (g, w, p) in enumerate(zip(got.params, want, params0)):
        slack = rmsprop_l2_residue(p, grads[i], lrs, hyper) if subject.rule == "rmsprop" else 0
        assert_trajectory_close(g, w, p, rtol=rtol, atol=slack, what=f"{subject.name} tensor {i}")


def rmsprop_l2_residue(param0, grads, lrs, hyper):
    r"""How far rounding the L2 gradient once or twice can move RMSprop's trajectory, per element.

    torch forms :math:`g + \lambda\theta` with one rounding (``add(alpha=)``),
    the spec with two; they differ by at most :math:`u\lambda|\theta|`
    (:math:`u = 2^{-53}`).  Where g cancels :math:`\lambda\theta` that residue is
    all of the gradient and is divided by :math:`\sqrt{\tilde v_t}+\epsilon`,
    which can be as small as ε: with g = 1e-8, θ = -1e-6, λ = 1e-2 it moves θ
    by lr · 4.5e-25 / 1e-12, beyond rtol 1e-12 of |θ|.  So the slack is the
    error the residue makes through the momentum buffer,
    :math:`E_t = E_{t-1} + \mathrm{lr}_t B_t`,
    :math:`B_t = \mu B_{t-1} + 2u\lambda|\theta_{t-1}| / (\sqrt{\tilde v_t}+\epsilon)`,
    along the spec's own trajectory, with twice u for the residue's effect on v.
    """
    rule, xp = spec.get_rule("rmsprop"), adapters.namespace("numpy")
    config = rule.hyperparameters(**hyper)
    if config["weight_decay"] == 0:
        return 0
    theta, state = np.asarray(param0, np.float64), rule.init_state(xp, np.asarray(param0, np.float64), config)
    buffer, error, slack = np.zeros_like(theta), np.zeros_like(theta), []
    for grad, lr in zip(grads, lrs):
        residue = 2 * 2.0**-53 * config["weight_decay"] * np.abs(theta)
        theta, state = rule.step(xp, theta, np.asarray(grad, np.float64), state, lr=lr, **config)
        second = state.square_avg - (state.grad_avg**2 if config["centered"] else 0)
        with np.errstate(invalid="ignore"):
            buffer = config["momentum"] * buffer + residue / (np.sqrt(np.maximum(second, 0)) + config["eps"])
        error = error + lr * buffer
        slack.append(error)
    return np.stack(slack)


def torch_subjects():
    """torch's for-loop optimizers, but those that keep a state field in a coarser dtype than float64 (NAdam's
    product of momenta, in torch's float32 scalar dtype): their float64 runs are not the spec's to 1e-12, and
    the certifier holds them to that storage (``tests/test_rule_conventions.py``)."""
    if not adapters.is_available("torch"):
        return []
    return [s for s in adapters.subjects("torch") if s.name.endswith("[for-loop]") and not s.state_storage]


@needs("torch")
@pytest.mark.parametrize("subject", torch_subjects(), ids=lambda s: getattr(s, "name", None))
def test_torch_equals_spec_torch_convention(subject):
    @given(case=cases(subject))
    def run(case):
        check(subject, case, rtol=1e-12)

    run()


@needs("torch")
def test_torch_rmsprop_l2_cancellation_is_the_residue_the_slack_allows():
    (subject,) = adapters.resolve_subject("torch", "torch.optim.RMSprop[for-loop]")
    theta0 = -np.geomspace(1e-6, 1e-3, 64)
    grads = 1e-2 * np.abs(theta0) * np.array([1.0, 0.5, 1.0])[:, None]  # g = -lambda*theta at steps 1 and 3
    lrs, hyper = [0.1] * 3, {"weight_decay": 1e-2, "eps": 1e-12}
    (got,) = adapters.drive(subject, [theta0], [grads], lrs, hyper, dtype="float64").params
    (want,) = reference(subject, [theta0], [grads], lrs, hyper)
    with pytest.raises(AssertionError, match="step 1"):  # the residue is real, and beyond rtol alone
        assert_trajectory_close(got, want, theta0, rtol=1e-12, what="torch RMSprop")
    slack = rmsprop_l2_residue(theta0, grads, lrs, hyper)
    assert_trajectory_close(got, want, theta0, rtol=1e-12, atol=slack, what="torch RMSprop")
    assert np.max(np.abs(got - want) / slack) > 0.1, "the slack is far looser than the residue"


@needs("jax")
def test_optax_adamw_equals_optax_preset():
    (subject,) = adapters.resolve_subject("jax", "optax.adamw")

    @given(case=cases(subject))
    def run(case):
        check(subject, case, rtol=1e-12)

    run()


@needs("tensorflow")
def test_keras_adamw_equals_keras_preset_in_float32():
    """Keras in float32 against the keras preset in float64.

    Gradients stay within float32's squarable range (1e-15..1e15): beyond it
    g**2 under- or overflows in float32 and the comparison would measure the
    dtype, not the convention.  The bound is 2e-5 of the step magnitude: about
    a hundred float32 unit roundoffs (2**-24), room for up to 6 steps of
    rounding in m, v, the root and the update.  Float64 Keras is not compared
    at 1e-12: on the TensorFlow backend Python-float hyperparameters reach
    float64 variables through float32 (tensorflow#35938), a drift of ~1e-7.
    """
    (subject,) = adapters.resolve_subject("tensorflow", "keras.optimizers.AdamW")

    @given(case=cases(subject, magnitude=(1e-15, 1e15), steps=(1, 4)))
    def run(case):
        check(subject, case, rtol=2e-5, dtype="float32")

    run()


def own_defaults_subject(framework, rule, factory, *, extra_names=(), drop_constants=()):
    """``factory`` of ``framework`` as it ships: its own defaults, with ``extra_names`` mapped as they are named.

    The built-in subjects pass constants that select torch's behaviour (optax's
    ``eps_in_sqrt=False``); here the framework runs in its own convention.
    """
    import dataclasses

    from optspec.adapters.driver import SubjectInfo
    from optspec.adapters.frameworks import part

    subjects = part(framework, "subjects")
    translation = subjects.TRANSLATIONS[rule]
    translation = dataclasses.replace(
        translation, names={**translation.names, **{n: n for n in extra_names}},
        constants={k: v for k, v in translation.constants.items() if k not in drop_constants})
    return SubjectInfo(name=f"{factory.__module__}.{factory.__name__} (own defaults)", framework=framework,
                       rule=rule, convention=None, supports=translation.supports,
                       build=subjects.builder(factory, translation))


def check_against_preset(subject, case, preset, *, rtol, dtype):
    params0, grads, lrs, hyper = case
    got = adapters.drive(subject, params0, grads, lrs, hyper, dtype=dtype)
    for i, (g, p, gs) in enumerate(zip(got.params, params0, grads)):
        want = spec.run(subject.rule, p.astype(np.float64), gs.astype(np.float64), lr=lrs, convention=preset,
                        **hyper)
        assert_trajectory_close(g, want, p, rtol=rtol, what=f"{subject.name} vs {preset} tensor {i}")


@needs("jax")
@pytest.mark.parametrize("rule", ["sgd", "adagrad", "rmsprop"])
def test_optax_rule_equals_optax_preset(rule):
    """optax's SGD (lr outside the trace), Adagrad (ε inside the root, a zero guard) and RMSprop (ε inside the
    root, ``eps_in_sqrt=True``; lr inside the trace) with their own defaults, under schedules, in float64."""
    import optax

    subject = own_defaults_subject("jax", rule, getattr(optax, rule), drop_constants=("eps_in_sqrt",))

    @given(case=cases(subject))
    def run(case):
        check_against_preset(subject, case, "optax", rtol=1e-12, dtype="float64")

    run()


@needs("tensorflow")
@pytest.mark.parametrize("rule, name", [("sgd", "SGD"), ("adagrad", "Adagrad"), ("rmsprop", "RMSprop")])
def test_keras_rule_equals_keras_preset_in_float32(rule, name):
    """Keras' SGD (lr inside the trace), Adagrad and RMSprop (ε inside the root, lr inside the trace) with
    ``weight_decay`` (decoupled, lr-scaled), under schedules, in float32 against the float64 preset: the bound
    is :func:`test_keras_adamw_equals_keras_preset_in_float32`'s."""
    import keras

    subject = own_defaults_subject("tensorflow", rule, getattr(keras.optimizers, name), extra_names=("weight_decay",))

    @given(case=cases(subject, magnitude=(1e-15, 1e15), steps=(1, 4)))
    def run(case):
        check_against_preset(subject, case, "keras", rtol=2e-5, dtype="float32")

    run()


@needs("tensorflow")
@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.5, False), (0.5, True)])
def test_tf1_rmsprop_equals_tf1_preset_and_not_keras(momentum, centered):
    """``tf.compat.v1.train.RMSPropOptimizer`` starts its mean square at ones: the tf1 preset, not keras'.

    Float64, but TensorFlow rounds Python-float hyperparameters through
    float32 (tensorflow#35938), so the bound is float32's: 2e-5 of the step
    magnitude, as for Keras.
    """
    import tensorflow as tf

    rng = np.random.default_rng(7)
    theta0, grads = rng.normal(size=(3, 4)), rng.normal(size=(5, 3, 4)) * 0.1
    var = tf.Variable(theta0, dtype=tf.float64)
    optimizer = tf.compat.v1.train.RMSPropOptimizer(0.01, decay=0.9, momentum=momentum, epsilon=1e-3,
                                                    centered=centered)
    got = []
    for grad in grads:
        optimizer.apply_gradients([(tf.constant(grad), var)])
        got.append(var.numpy())
    hyper = {"lr": 0.01, "alpha": 0.9, "momentum": momentum, "eps": 1e-3, "centered": centered}
    assert_trajectory_close(np.stack(got), spec.run("rmsprop", theta0, grads, convention="tf1", **hyper), theta0,
                            rtol=2e-5, what="tf1 RMSPropOptimizer vs tf1")
    with pytest.raises(AssertionError, match="step 1"):
        assert_trajectory_close(np.stack(got), spec.run("rmsprop", theta0, grads, convention="keras", **hyper),
                                theta0, rtol=2e-5, what="tf1 RMSPropOptimizer vs keras")
