"""Each invalid input raises ValueError naming the parameter and its accepted range."""

from __future__ import annotations

import numpy as np
import pytest

from optspec import spec

THETA = np.zeros(3)
GRADS = np.ones((2, 3))


@pytest.mark.parametrize(
    ("rule", "kwargs", "message"),
    [
        ("adamw", {"lr": -0.1}, r"lr=-0.1 at step 1 is invalid: it must be a finite number >= 0"),
        ("adamw", {"betas": (1.0, 0.999)}, r"betas\[0\]=1.0 is invalid: it must lie in \[0, 1\)"),
        ("adam", {"betas": (0.9, -0.1)}, r"betas\[1\]=-0.1 is invalid: it must lie in \[0, 1\)"),
        ("adamw", {"betas": 0.9}, r"betas=0.9 is invalid: it must be a pair"),
        ("adamw", {"eps": -1e-8}, r"eps=-1e-08 is invalid: it must be a finite number >= 0"),
        ("adagrad", {"eps": -1.0}, r"eps=-1.0 is invalid"),
        ("adamw", {"weight_decay": -0.01}, r"weight_decay=-0.01 is invalid: it must be a finite number >= 0"),
        ("sgd", {"weight_decay": -1.0}, r"weight_decay=-1.0 is invalid"),
        ("sgd", {"momentum": -0.5}, r"momentum=-0.5 is invalid: it must be a finite number >= 0"),
        ("rmsprop", {"momentum": -0.5}, r"momentum=-0.5 is invalid"),
        ("sgd", {"nesterov": True}, r"nesterov=True needs momentum > 0 and dampening = 0"),
        ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
         r"nesterov=True needs momentum > 0 and dampening = 0 \(got momentum=0.9, dampening=0.1\)"),
        ("rmsprop", {"alpha": 1.0}, r"alpha=1.0 is invalid: it must lie in \[0, 1\)"),
        ("adamw", {"betaz": (0.9, 0.99)}, r"unknown hyperparameter betaz for rule 'adamw': it accepts betas"),
        ("sgd", {"amsgrad": True}, r"unknown hyperparameter amsgrad for rule 'sgd'"),
        ("adamw", {"convention": "pytorch"}, r"unknown convention 'pytorch': use one of torch, optax"),
        ("sgd", {"convention": "bert"}, r"unknown convention 'bert' for rule 'sgd': use one of torch, optax, keras"),
        ("sgdw", {"convention": "keras"}, r"convention='keras' is not a hyperparameter of rule 'sgdw'"),
        ("rmsprop", {"convention": spec.Convention()}, r"is not a RMSpropConvention, the convention type of rule"),
        ("adamw", {"convention": "bert", "amsgrad": True}, r"amsgrad=True is not defined for convention 'bert'"),
        ("adamw", {"lr": [0.1]}, r"lr has 1 values but there are 2 gradient steps"),
        ("adamw", {"lr": float("nan")}, r"lr=nan at step 1 is invalid"),
    ],
)
def test_invalid_hyperparameters(rule, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spec.run(rule, THETA, GRADS, **kwargs)


def test_unknown_rule():
    with pytest.raises(ValueError, match=r"unknown rule 'adamw2': use one of sgd, sgdw, adagrad"):
        spec.run("adamw2", THETA, GRADS)


def test_gradient_shape_mismatch():
    with pytest.raises(ValueError, match=r"gradient at step 1 has shape \(4,\) but the parameter has shape \(3,\)"):
        spec.run("adamw", THETA, np.ones((2, 4)))


def test_gradient_dtype_mismatch():
    with pytest.raises(ValueError, match=r"gradient at step 1 has dtype float32 but the parameter has dtype float64"):
        spec.run("adamw", THETA, np.ones((2, 3), np.float32))


def test_unknown_convention_knob_value():
    with pytest.raises(ValueError, match=r"convention knob epsilon='outside' is not one of 'corrected', 'hat', 'inside'"):
        spec.Convention(epsilon="outside")


def test_schedule_decay_needs_positive_initial_lr():
    with pytest.raises(ValueError, match=r"initial_lr=0.0 is invalid: the schedule multiplier lr_t/lr_0 needs lr_0 > 0"):
        spec.run("adamw", THETA, GRADS, lr=[0.0, 0.1], convention="paper")
