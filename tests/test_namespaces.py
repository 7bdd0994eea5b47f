"""The spec on every framework's namespace agrees with NumPy; the TF namespace is checked like the others."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.adapters.frameworks import FRAMEWORKS, describe
from tests.conftest import needs
from tests.test_spec_portability import CONFIGS

RNG = np.random.default_rng(3)
THETA = RNG.normal(size=(2, 3))
GRADS = RNG.normal(size=(5, 2, 3)) * np.array([1e-3, 1.0, 1e3])

#: float64 must agree to 1e-15 relative. Reduced types are bounded by their unit
#: roundoff u times a growth factor of 8 per step (five rounded ops per element)
#: over 5 steps, against the float64 oracle.
UNIT_ROUNDOFF = {"float32": 2.0**-24, "bfloat16": 2.0**-8}


def on(framework):
    return pytest.param(framework, marks=needs(framework))


@pytest.mark.parametrize("framework", [on(f) for f in FRAMEWORKS if describe(f).array_namespace])
@pytest.mark.parametrize("rule", sorted(spec.RULES))
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_spec_on_namespace_agrees_with_numpy(framework, rule, dtype):
    if framework == "numpy" and dtype == "bfloat16":
        pytest.skip("numpy has no bfloat16")
    xp = adapters.namespace(framework)
    theta = adapters.asarray(framework, THETA, dtype)
    grads = adapters.asarray(framework, GRADS, dtype)
    got = adapters.to_numpy(spec.run(rule, theta, grads, lr=0.01, xp=xp, **CONFIGS[rule]))
    want = spec.run(rule, adapters.to_numpy(theta).astype(np.float64),
                    adapters.to_numpy(grads).astype(np.float64), lr=0.01, **CONFIGS[rule])
    rtol = 1e-15 if dtype == "float64" else 8 * 5 * UNIT_ROUNDOFF[dtype]
    scale = np.maximum(np.abs(want), np.abs(THETA).max())
    np.testing.assert_array_less(np.abs(got - want), rtol * scale + 1e-300,
                                 err_msg=f"{rule} on {framework} {dtype}")


@needs("tensorflow")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tensorflow_namespace_functions_match_numpy(dtype):
    """The functions the spec uses, with Array API semantics, against NumPy."""
    xp = adapters.namespace("tensorflow")
    x_np = np.array([[0.0, 1.0, -2.5], [4.0, 9.0, 1e-30]])
    y_np = np.array([[1.0, -1.0, 3.0], [2.0, 10.0, 0.0]])
    x, y = xp.asarray(x_np, dtype=getattr(xp, dtype)), xp.asarray(y_np, dtype=getattr(xp, dtype))
    cases = {
        "sqrt": (xp.sqrt(xp.abs(x)), np.sqrt(np.abs(x_np))),
        "maximum": (xp.maximum(x, y), np.maximum(x_np, y_np)),
        "minimum": (xp.minimum(x, y), np.minimum(x_np, y_np)),
        "where": (xp.where(x > y, x, y), np.where(x_np > y_np, x_np, y_np)),
        "stack": (xp.stack([x, y]), np.stack([x_np, y_np])),
        "zeros_like": (xp.zeros_like(x), np.zeros_like(x_np)),
        "full_like": (xp.full_like(x, 0.5), np.full_like(x_np, 0.5)),
        "scalar ops": (0.5 * x - y / 2.0 + (1 - 0.25) * x * x, 0.5 * x_np - y_np / 2 + 0.75 * x_np * x_np),
        "negation": (-x, -x_np),
        "isfinite": (xp.isfinite(x / y), np.isfinite(x_np / np.where(y_np == 0, 0.0, y_np))),
        "isnan": (xp.isnan(x / y - x / y), np.isnan(x_np / np.where(y_np == 0, 0.0, y_np) * 0.0)),
        "sign": (xp.sign(x - y), np.sign(x_np - y_np)),
    }
    for name, (got, want) in cases.items():
        got = adapters.to_numpy(got)
        assert got.shape == want.shape, name
        if got.dtype != bool:
            assert str(got.dtype) == dtype, f"{name} returned {got.dtype}, expected {dtype}"
        np.testing.assert_allclose(got, want.astype(got.dtype), rtol=1e-6, err_msg=name)
    # a Python float fills at the array's precision, not through float32
    assert adapters.to_numpy(xp.full_like(x, 0.1))[0, 0] == (np.float32(0.1) if dtype == "float32" else 0.1)
    assert xp.zeros((2, 3), dtype=xp.float32).shape == (2, 3)
    assert adapters.to_numpy(xp.astype(x, xp.float16)).dtype == np.float16


@pytest.mark.parametrize("framework", [on(f) for f in FRAMEWORKS])
def test_unknown_device_lists_the_devices_present(framework):
    with pytest.raises(adapters.SetupError, match=rf"device 'tpu' is not available to {framework}: the devices present are cpu"):
        adapters.namespace(framework, "tpu")


@needs("torch")
def test_cuda_path_or_clean_skip():
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(adapters.SetupError, match="device 'cuda' is not available to torch"):
            adapters.namespace("torch", "cuda")
        pytest.skip("no CUDA device here: the cuda path is checked on a GPU machine")
    xp = adapters.namespace("torch", "cuda")
    theta = adapters.asarray("torch", THETA, "float64", "cuda")
    got = spec.run("adamw", theta, adapters.asarray("torch", GRADS, "float64", "cuda"), lr=0.01, xp=xp)
    np.testing.assert_allclose(adapters.to_numpy(got), spec.run("adamw", THETA, GRADS, lr=0.01), rtol=1e-13)


def test_unknown_framework():
    with pytest.raises(adapters.SetupError, match=f"unknown framework 'mxnet': use one of {', '.join(FRAMEWORKS)}$"):
        adapters.namespace("mxnet")


def test_missing_framework_names_the_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "optax":
            raise ImportError("No module named 'optax'", name="optax")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(__import__("sys").modules, "optax", raising=False)
    monkeypatch.setattr(adapters.frameworks, "_IMPORTED", {})
    with pytest.raises(adapters.SetupError, match=r"framework 'jax' is not installed \(optax is missing\): run `pip install -e '.\[jax\]'`"):
        adapters.import_framework("jax")


@needs("tensorflow")
def test_importing_the_frameworks_writes_no_log_lines(tmp_path):
    done = subprocess.run([sys.executable, "-m", "optspec", "list"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "keras.optimizers.AdamW" in done.stdout
    noise = [line for line in (done.stdout + done.stderr).splitlines()
             if "absl" in line or re.match(r"[IW]\d{4} ", line)]
    assert not noise, noise
