"""The compiled spec: it agrees with the eager spec and never recompiles across steps."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optspec import adapters, spec
from optspec.adapters.compiled import CompiledStep, as_numpy, compilations
from optspec.adapters.numpy import plan as numpy_plan
from optspec.conformance import strategies, tolerance
from optspec.spec.conventions import AMSGRADS, DECAY_POINTS, DECAY_SCALES, EPSILONS, Convention

FRAMEWORKS = [pytest.param(f, marks=pytest.mark.skipif(not adapters.is_available(f), reason=f"{f} is not installed"))
              for f in ("torch", "jax", "tensorflow", "numpy")]
#: Where the compiled step keeps the eager spec's operations, order and dtypes, so float64 must agree exactly.
#: XLA (jax, tensorflow) does not: it contracts ``a * b + c`` into a fused multiply-add and divides by a
#: scalar through its reciprocal (each changes ~23-33% of float64 results on random inputs), so those two
#: are held to the tolerance model.
EXACT_IN_FLOAT64 = ("torch", "numpy")


def run_compiled(framework, dtype, param0, grads, lrs, **hyper):
    compiled = CompiledStep(framework, "adamw", adapters.asarray(framework, param0, dtype), **hyper)
    out = []
    for grad, lr in zip(grads, lrs):
        compiled.step(adapters.asarray(framework, grad, dtype), lr)
        out.append(as_numpy(compiled).astype(np.float64))
    return compiled, np.stack(out)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("convention", "amsgrad"), [("torch", False), ("keras", False), ("paper", False),
                                                     ("hf_legacy", False), ("torch", True), ("optax", True)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_agrees_with_the_eager_spec(framework, convention, amsgrad, dtype):
    rng = np.random.default_rng(1)
    param0 = rng.normal(size=257)
    grads = rng.normal(size=(30, 257)) * np.geomspace(1, 1e-3, 30)[:, None]
    lrs = [float(lr) for lr in np.linspace(1e-2, 1e-3, 30)]
    hyper = {"weight_decay": 0.1, "eps": 1e-6, "convention": convention, "amsgrad": amsgrad}
    theta0 = adapters.to_numpy(adapters.asarray(framework, param0, dtype)).astype(np.float64)
    g = adapters.to_numpy(adapters.asarray(framework, grads, dtype)).astype(np.float64)
    _, got = run_compiled(framework, dtype, param0, grads, lrs, **hyper)
    eager = spec.run("adamw", theta0, g, lr=lrs, **hyper)
    if framework in EXACT_IN_FLOAT64 and dtype == "float64":
        np.testing.assert_array_equal(got, eager)
    bound = tolerance.trajectory_bounds(theta0, eager, dtype, (0.9, 0.999))
    assert np.all(np.abs(got - eager) <= bound), float(np.max(np.abs(got - eager) / bound))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_changing_learning_rate_never_recompiles(framework):
    rng = np.random.default_rng(2)
    lrs = 1e-3 * (1 + np.cos(np.linspace(0, np.pi, 1000)))
    grads = rng.normal(size=(1000, 64))
    compiled, _ = run_compiled(framework, "float32", rng.normal(size=64), grads[:1], lrs[:1],
                               weight_decay=0.01, convention="paper")
    after_first = compilations(compiled)
    for grad, lr in zip(grads[1:], lrs[1:]):
        compiled.step(adapters.asarray(framework, grad, "float32"), lr)
    assert compiled.count == 1000
    assert after_first <= 1
    assert compilations(compiled) == after_first, "a step after the first recompiled"


@pytest.mark.skipif(not adapters.is_available("jax"), reason="jax is not installed")
@pytest.mark.parametrize("commit_grads", [False, True])
def test_jax_step_compiles_once_from_a_parameter_not_committed_to_a_device(commit_grads):
    import jax
    import jax.numpy as jnp

    # jit keys its cache on whether each array is committed to a device, and the step's outputs are.
    compiled = CompiledStep("jax", "adamw", jnp.ones(16, jnp.float32), weight_decay=0.01)
    for i in range(6):
        grad = jnp.full(16, 0.5, jnp.float32)
        compiled.step(jax.device_put(grad, jax.devices()[0]) if commit_grads else grad, 1e-3 * (i + 1))
    assert compilations(compiled) == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("convention", "amsgrad", "maximize"), [("torch", False, False), ("keras", True, True),
                                                                 ("paper", False, True)])
def test_numpy_plan_replays_the_eager_spec_bit_for_bit_across_blocks(monkeypatch, dtype, convention, amsgrad,
                                                                     maximize):
    monkeypatch.setattr(numpy_plan, "BLOCK", 64)  # 257 elements: four whole blocks and a partial one
    rng = np.random.default_rng(3)
    param0 = rng.normal(size=257).astype(dtype)
    grads = rng.normal(size=(12, 257)).astype(dtype)
    lrs = [float(lr) for lr in np.linspace(1e-2, 1e-3, 12)]
    hyper = {"weight_decay": 0.1, "convention": convention, "amsgrad": amsgrad, "maximize": maximize}
    compiled = CompiledStep("numpy", "adamw", param0, **hyper)
    rule = spec.get_rule("adamw")
    full = rule.hyperparameters(convention, weight_decay=0.1, amsgrad=amsgrad, maximize=maximize)
    param, state = param0, rule.init_state(adapters.namespace("numpy"), param0, full)
    for grad, lr in zip(grads, lrs):
        compiled.step(grad, lr)
        param, state = rule.step(adapters.namespace("numpy"), param, grad, state, lr=lr, initial_lr=lrs[0], **full)
        assert compiled.param.dtype == param.dtype
        np.testing.assert_array_equal(compiled.param, param)
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(getattr(compiled.state, name), getattr(state, name), err_msg=name)
    plan = next(iter(compiled._compiled["plans"].values()))
    assert plan.blocked and all(len(b) == 64 for b in plan.buffers)
    assert compiled.state.max_exp_avg_sq.size == (257 if amsgrad else 1)  # a stand-in when unused


@settings(deadline=None)
@given(data=st.data())
def test_numpy_plan_is_the_eager_spec_bit_for_bit_for_any_convention(data):
    conv = Convention(data.draw(st.sampled_from(DECAY_SCALES)), data.draw(st.sampled_from(DECAY_POINTS)),
                      data.draw(st.booleans()), data.draw(st.sampled_from(EPSILONS)),
                      data.draw(st.sampled_from(AMSGRADS)))
    rule = spec.get_rule(data.draw(st.sampled_from(["adam", "adamw"])))
    hyper = data.draw(strategies.hyperparameters(rule.defaults))
    hyper["amsgrad"] = hyper["amsgrad"] and conv.amsgrad != "off"
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    shape = data.draw(strategies.shapes(max_tensors=1))[0]
    steps = data.draw(st.integers(1, 5))
    param0 = data.draw(strategies.parameters(shape)).astype(dtype)
    grads = data.draw(strategies.gradient_stream(shape, steps)).astype(dtype)
    lrs = data.draw(strategies.schedule(steps, data.draw(strategies.HYPER_STRATEGIES["lr"])))
    full = rule.hyperparameters(conv, **hyper)
    xp = adapters.namespace("numpy")
    with np.errstate(all="ignore"), mock.patch.object(numpy_plan, "BLOCK", data.draw(st.sampled_from([1, 3, 64]))):
        compiled = CompiledStep("numpy", rule.name, param0, convention=conv, **hyper)
        param, state = param0, rule.init_state(xp, param0, full)
        extra = {"initial_lr": lrs[0]} if rule.takes_initial_lr else {}
        for grad, lr in zip(grads, lrs):
            compiled.step(grad, lr)
            param, state = rule.step(xp, param, grad, state, lr=lr, **full, **extra)
            np.testing.assert_array_equal(compiled.param, param)
            np.testing.assert_array_equal(compiled.state.exp_avg_sq, state.exp_avg_sq)


@pytest.mark.parametrize("block", [2, 64])
def test_numpy_plan_overwrites_an_array_only_once_its_old_value_is_dead(monkeypatch, block):
    def step(xp, a, b, s):
        new_a = a + s  # a's old value is still read by the next operation
        new_b = a * new_a
        return {"a": new_a, "b": xp.sqrt(new_b * new_b) - b}

    monkeypatch.setattr(numpy_plan, "BLOCK", block)
    a, b = np.arange(5.0), np.linspace(-1, 1, 5)
    expected = {"a": a + 0.5, "b": np.sqrt((a * (a + 0.5)) ** 2) - b}
    plan = numpy_plan.record(step, {"a": a, "b": b}, {"s": 0.5})
    arrays = {"a": a.copy(), "b": b.copy()}
    plan.run(arrays, {"s": 0.5})
    for name in expected:
        np.testing.assert_array_equal(arrays[name], expected[name], err_msg=name)


def test_numpy_plan_refuses_a_gradient_that_would_change_the_states_dtype():
    compiled = CompiledStep("numpy", "adamw", np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="makes param float64, but it is float32"):
        compiled.step(np.ones(3), 1e-3)


def test_numpy_plan_refuses_a_branch_on_a_runtime_value():
    def branching(xp, param, lr):
        return {"param": param * 2 if lr else param}

    with pytest.raises(TypeError, match="branched on a runtime value"):
        numpy_plan.record(branching, {"param": np.zeros(3)}, {"lr": 0.1})


@pytest.mark.skipif(not adapters.is_available("torch"), reason="torch is not installed")
@pytest.mark.parametrize("convention", ["torch", "keras", "paper"])
def test_torch_step_computes_its_scalars_before_the_elementwise_loop(convention):
    """In inductor's generated code no power of the step count is left inside the loop over the elements."""
    import torch
    from torch._inductor.utils import run_and_get_code

    from optspec.adapters.compiled import runtime_scalars
    from optspec.adapters.torch.compiled import torch_inplace_step

    step = torch_inplace_step("adamw", convention, False, False, dynamic=False, cache_key="generated code")
    size = 4099
    tensors = [torch.randn(size) for _ in range(4)]
    tensors[3] = tensors[3].abs()
    scalars = torch.tensor(runtime_scalars(0, 1e-3, 1e-3, (0.9, 0.999), 1e-8, 1e-2), dtype=torch.float64)
    _, sources = run_and_get_code(step, *tensors, torch.zeros(()), scalars)
    source = "\n".join(sources)
    loop = source.index(f"<static_cast<int64_t>({size}L)")  # the loop over the elements
    assert "pow(" in source[:loop], "the bias corrections were not found at all"
    assert "pow(" not in source[loop:], "a power of the step count is computed inside the elementwise loop"


def test_uncompiled_framework_and_rule_are_refused():
    with pytest.raises(ValueError, match="no compiled spec for 'mlx'"):
        CompiledStep("mlx", "adamw", np.zeros(3))
    with pytest.raises(ValueError, match="only adam and adamw are compiled"):
        CompiledStep("torch", "sgd", np.zeros(3))
