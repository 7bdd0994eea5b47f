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

import adapters
import spec
from conformance import strategies as cs
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
        assert_trajectory_close(g, w, p, rtol=rtol, what=f"{subject.name} tensor {i}")


def torch_subjects():
    if not adapters.is_available("torch"):
        return []
    subjects = [s for s in adapters.subjects("torch") if s.name.endswith("[for-loop]")]
    # Diagnosed, not a convention difference: with L2, g + lambda*theta can cancel (g = 1e-8,
    # lambda*theta = -1e-8).  torch's add(alpha=) keeps the residue of one fused multiply-add
    # (4.5e-25) where the spec rounds twice (0), and RMSprop divides it by sqrt(v) + eps ~ 1e-12:
    # theta moves by lr * 4.5e-25 / 1e-12 = 4.5e-17, beyond rtol 1e-12 of |theta| = 1e-6.  Only
    # some draws hit it.  The certifier models this L2 feedback for Adam only (issue #4's note).
    known = pytest.mark.xfail(reason="L2 cancellation: torch's fused g + lambda*theta residue / eps exceeds "
                                     "rtol (see comment)", strict=False)
    return [pytest.param(s, marks=known) if s.rule == "rmsprop" else s for s in subjects]


@needs("torch")
@pytest.mark.parametrize("subject", torch_subjects(), ids=lambda s: getattr(s, "name", None))
def test_torch_equals_spec_torch_convention(subject):
    @given(case=cases(subject))
    def run(case):
        check(subject, case, rtol=1e-12)

    run()


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
