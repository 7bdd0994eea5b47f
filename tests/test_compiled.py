"""The compiled spec: it agrees with the eager spec and never recompiles across steps."""

from __future__ import annotations

import numpy as np
import pytest

import adapters
import spec
from adapters.compiled import CompiledStep, as_numpy, compilations
from conformance import tolerance

FRAMEWORKS = [pytest.param(f, marks=pytest.mark.skipif(not adapters.is_available(f), reason=f"{f} is not installed"))
              for f in ("torch", "jax", "tensorflow")]


def run_compiled(framework, dtype, param0, grads, lrs, **hyper):
    compiled = CompiledStep(framework, "adamw", adapters.asarray(framework, param0, dtype), **hyper)
    out = []
    for grad, lr in zip(grads, lrs):
        compiled.step(adapters.asarray(framework, grad, dtype), lr)
        out.append(as_numpy(compiled).astype(np.float64))
    return compiled, np.stack(out)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("convention", ["torch", "keras", "paper", "hf_legacy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_agrees_with_the_eager_spec(framework, convention, dtype):
    rng = np.random.default_rng(1)
    param0 = rng.normal(size=257)
    grads = rng.normal(size=(30, 257)) * np.geomspace(1, 1e-3, 30)[:, None]
    lrs = list(np.linspace(1e-2, 1e-3, 30))
    hyper = {"weight_decay": 0.1, "eps": 1e-6, "convention": convention}
    theta0 = adapters.to_numpy(adapters.asarray(framework, param0, dtype)).astype(np.float64)
    g = adapters.to_numpy(adapters.asarray(framework, grads, dtype)).astype(np.float64)
    _, got = run_compiled(framework, dtype, param0, grads, lrs, **hyper)
    eager = spec.run("adamw", theta0, g, lr=lrs, **hyper)
    if framework == "torch" and dtype == "float64":
        np.testing.assert_array_equal(got, eager)  # inductor keeps the spec's order of operations
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


def test_uncompiled_framework_and_rule_are_refused():
    with pytest.raises(ValueError, match="no compiled spec for 'numpy'"):
        CompiledStep("numpy", "adamw", np.zeros(3))
    with pytest.raises(ValueError, match="only adam and adamw are compiled"):
        CompiledStep("torch", "sgd", np.zeros(3))
