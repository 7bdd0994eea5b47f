"""Loshchilov & Hutter's propositions, and the AdamW presets' agreement with Adam at λ = 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optspec import spec
from optspec.conformance import strategies as cs
from optspec.conformance import tolerance


@given(
    theta0=cs.parameters((3,)),
    grads=cs.gradient_stream((3,), 5, magnitude=(1e-8, 1e8)),
    lr=st.floats(1e-4, 1.0),
    l2=st.floats(0, 1.0),
)
def test_proposition_1_sgd_l2_equals_sgdw(theta0, grads, lr, l2):
    """Plain SGD with L2 coefficient λ' and lr α equals SGDW with λ = αλ'.

    Equal in exact arithmetic; in float64 the two orders of operations each
    stay within the tolerance model's trajectory bound of the exact result
    (the step's parts are lr·|g| and lr·λ'|θ|, which may cancel), so they
    differ by at most twice that bound.
    """
    sgd = spec.run("sgd", theta0, grads, lr=lr, weight_decay=l2)
    sgdw = spec.run("sgdw", theta0, grads, lr=lr, weight_decay=lr * l2)
    previous = np.concatenate([theta0[None], sgd[:-1]])
    parts = lr * (np.abs(grads) + l2 * np.abs(previous))
    bound = 2 * tolerance.trajectory_bounds(theta0, sgd, "float64", update=parts)
    excess = np.abs(sgd - sgdw) / bound
    assert excess.max() <= 1, f"SGD+L2 and SGDW differ by {excess.max():.3g} times the bound"


def implied_l2(grads: np.ndarray, lr: float, wd: float) -> float:
    """The λ' for which Adam+L2 ends where AdamW ends, for one coordinate (θ0 = 1).

    Found by bisection in log space: a larger λ' pulls θ further towards 0.
    """
    theta0 = np.array([1.0])
    target = spec.run("adamw", theta0, grads, lr=lr, weight_decay=wd)[-1, 0]
    low, high = 1e-12, 1e6
    for _ in range(80):
        mid = float(np.sqrt(low * high))
        end = spec.run("adam", theta0, grads, lr=lr, weight_decay=mid)[-1, 0]
        low, high = (mid, high) if end > target else (low, mid)
    return float(np.sqrt(low * high))


def test_proposition_2_no_single_l2_matches_adamw():
    """With gradient scales that differ across coordinates, each implies a different λ'.

    Adam divides the L2 term λ'θ by √v̂ ≈ the gradient's scale s, so the λ'
    that reproduces AdamW's decay lr·λ·θ is about λ·s: one λ' cannot serve a
    coordinate with s = 1e-3 and one with s = 10.
    """
    noise = np.random.default_rng(0).normal(size=(50, 1))
    lr, wd = 1e-3, 0.1
    small = implied_l2(1e-3 * noise, lr, wd)
    large = implied_l2(10.0 * noise, lr, wd)
    assert large / small > 100, (small, large)


@pytest.mark.parametrize("preset", sorted(spec.PRESETS))
@given(theta0=cs.parameters((4,)), grads=cs.gradient_stream((4,), 4), amsgrad=st.booleans())
def test_adamw_without_decay_is_adam_with_the_same_epsilon_placement(preset, theta0, grads, amsgrad):
    conv = spec.PRESETS[preset]
    amsgrad = amsgrad and conv.amsgrad != "off"
    kwargs = {"lr": [0.1, 0.05, 0.2, 0.01], "eps": 1e-6, "amsgrad": amsgrad, "convention": conv}
    adamw = spec.run("adamw", theta0, grads, weight_decay=0.0, **kwargs)
    adam = spec.run("adam", theta0, grads, weight_decay=0.0, **kwargs)
    np.testing.assert_array_equal(adamw, adam)


def test_presets_are_distinct_conventions():
    values = [dataclasses.astuple(c) for c in spec.PRESETS.values()]
    assert len(set(values)) == len(values)
