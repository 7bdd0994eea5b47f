"""Every rule runs under array_api_strict, the float32-only device included."""

from __future__ import annotations

import array_api_strict as xps
import numpy as np
import pytest

from optspec import spec

CONFIGS = {
    "sgd": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True},
    "sgdw": {"momentum": 0.9, "weight_decay": 0.1},
    "adagrad": {"lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.1},
    "rmsprop": {"centered": True, "momentum": 0.5, "weight_decay": 0.1},
    "adam": {"amsgrad": True, "weight_decay": 0.1, "maximize": True},
    "adamw": {"amsgrad": True, "weight_decay": 0.1},
    "adamax": {"weight_decay": 0.1, "maximize": True},
    "nadam": {"weight_decay": 0.1, "momentum_decay": 0.5, "maximize": True},
    "radam": {"betas": (0.9, 0.9), "weight_decay": 0.1, "threshold": 4.0},
    "adadelta": {"rho": 0.95, "weight_decay": 0.1, "maximize": True},
    "lion": {"betas": (0.8, 0.95), "weight_decay": 0.1, "maximize": True},
    "rprop": {"etas": (0.4, 1.3), "step_sizes": (1e-3, 0.5), "maximize": True},
}


@pytest.mark.parametrize("rule", sorted(spec.RULES))
@pytest.mark.parametrize(
    ("device", "dtype", "rtol"),
    [("CPU_DEVICE", "float64", 1e-15), ("no_float64", "float32", 1e-5)],
)
def test_rule_runs_on_array_api_strict(rule, device, dtype, rtol):
    assert set(CONFIGS) == set(spec.RULES)
    rng = np.random.default_rng(7)
    theta0 = rng.normal(size=(2, 3))
    grads = rng.normal(size=(4, 2, 3))
    dev = xps.Device(device)
    strict = spec.run(rule, xps.asarray(theta0, dtype=getattr(xps, dtype), device=dev),
                      xps.asarray(grads, dtype=getattr(xps, dtype), device=dev), lr=0.1, **CONFIGS[rule])
    assert strict.dtype == getattr(xps, dtype) and strict.device == dev
    reference = spec.run(rule, theta0, grads, lr=0.1, **CONFIGS[rule])
    np.testing.assert_allclose(np.asarray(xps.asarray(strict, device=xps.Device("CPU_DEVICE"))),
                               reference, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("preset", sorted(spec.PRESETS))
def test_every_preset_runs_on_array_api_strict(preset):
    theta0 = xps.asarray([1.0, -2.0])
    grads = xps.asarray([[0.5, 0.0], [1e-30, -1e30]])
    out = spec.run("adamw", theta0, grads, lr=[0.1, 0.05], convention=preset)
    assert out.shape == (2, 2)
