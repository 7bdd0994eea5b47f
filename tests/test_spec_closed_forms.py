"""The first steps of every rule on scalars, against values worked out by hand from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optspec import spec


def trajectory(rule: str, theta0: float, grads: list[float], **kwargs) -> list[float]:
    out = spec.run(rule, np.float64(theta0) * np.ones(()), np.asarray(grads, np.float64), **kwargs)
    return [float(x) for x in out]


def test_sgd_momentum_dampening_l2():
    # g1 = 0.5 + 0.01*1 = 0.51, b1 = g1; theta1 = 1 - 0.1*0.51
    # g2 = -0.25 + 0.01*0.949, b2 = 0.9*0.51 + (1-0.1)*g2; theta2 = 0.949 - 0.1*b2
    got = trajectory("sgd", 1.0, [0.5, -0.25], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
    g2 = -0.25 + 0.01 * 0.949
    b2 = 0.9 * 0.51 + 0.9 * g2
    assert got == pytest.approx([0.949, 0.949 - 0.1 * b2], rel=1e-15)


def test_sgd_nesterov():
    # b1 = 0.5, d1 = 0.5 + 0.9*0.5; b2 = 0.9*0.5 + 0.5, d2 = 0.5 + 0.9*b2
    got = trajectory("sgd", 1.0, [0.5, 0.5], lr=0.1, momentum=0.9, nesterov=True)
    assert got == pytest.approx([1 - 0.1 * 0.95, 1 - 0.1 * 0.95 - 0.1 * 1.355], rel=1e-15)


def test_sgd_maximize_ascends():
    assert trajectory("sgd", 1.0, [2.0], lr=0.5, maximize=True) == [2.0]


def test_sgdw_algorithm_1_with_schedule_multiplier():
    # eta = lr_t / lr_0 = (1, 0.5); m1 = 0.1*0.5, theta1 = 1 - m1 - 1*0.01*1
    # m2 = 0.9*m1 + 0.05*0.5, theta2 = theta1 - m2 - 0.5*0.01*theta1
    got = trajectory("sgdw", 1.0, [0.5, 0.5], lr=[0.1, 0.05], momentum=0.9, weight_decay=0.01)
    assert got == pytest.approx([0.94, 0.94 - 0.07 - 0.005 * 0.94], rel=1e-15)


def test_adagrad_lr_decay_and_initial_accumulator():
    # s1 = 0.25 + 0.25, clr1 = 0.1; s2 = s1 + 1, clr2 = 0.1 / (1 + 0.5)
    got = trajectory("adagrad", 1.0, [0.5, -1.0], lr=0.1, lr_decay=0.5, eps=0.0,
                     initial_accumulator_value=0.25)
    theta1 = 1 - 0.1 * 0.5 / math.sqrt(0.5)
    theta2 = theta1 + (0.1 / 1.5) / math.sqrt(1.5)
    assert got == pytest.approx([theta1, theta2], rel=1e-15)


def test_rmsprop_centered_with_momentum():
    # v1 = 0.1*0.25, gbar1 = 0.1*0.5, denom1 = sqrt(v1 - gbar1^2) = 0.15, b1 = 0.5/0.15
    # v2 = 0.9*v1 + 0.025, gbar2 = 0.9*gbar1 + 0.05, b2 = 0.5*b1 + 0.5/sqrt(v2 - gbar2^2)
    got = trajectory("rmsprop", 1.0, [0.5, 0.5], lr=0.01, alpha=0.9, eps=0.0, centered=True,
                     momentum=0.5)
    b1 = 0.5 / 0.15
    b2 = 0.5 * b1 + 0.5 / math.sqrt(0.0475 - 0.095**2)
    assert got == pytest.approx([1 - 0.01 * b1, 1 - 0.01 * b1 - 0.01 * b2], rel=1e-14)


def test_adam_l2_enters_the_moments():
    # g = 0.5 + 0.1*1; m_hat = g, v_hat = g^2 after one step
    got = trajectory("adam", 1.0, [0.5], lr=0.1, weight_decay=0.1)
    assert got == pytest.approx([1 - 0.1 * 0.6 / (0.6 + 1e-8)], rel=1e-15)


# AdamW on theta0 = 2, g = (1, 0.25), lr = (0.1, 0.05), wd = 0.2, eps = 1e-3, betas = (0.5, 0.75):
# m1 = 0.5, v1 = 0.25, bc1 = 0.5, bc2 = 0.25; m2 = 0.375, v2 = 0.203125, bc1 = 0.75, bc2 = 0.4375.
M = (0.5, 0.375)
V = (0.25, 0.203125)
BC1 = (0.5, 0.75)
BC2 = (0.25, 0.4375)
LR = (0.1, 0.05)
WD, EPS = 0.2, 1e-3


def corrected(t: int) -> float:
    return LR[t] / BC1[t] * M[t] / (math.sqrt(V[t]) / math.sqrt(BC2[t]) + EPS)


def hat(t: int) -> float:
    return LR[t] * math.sqrt(BC2[t]) / BC1[t] * M[t] / (math.sqrt(V[t]) + EPS)


def uncorrected(t: int) -> float:
    return LR[t] * M[t] / (math.sqrt(V[t]) + EPS)


def inside(t: int) -> float:
    return LR[t] / BC1[t] * M[t] / math.sqrt(V[t] / BC2[t] + EPS)


def before(update, decay):
    theta = 2.0
    out = []
    for t in range(2):
        theta = theta * (1 - decay(t)) - update(t)
        out.append(theta)
    return out


def after(update, decay):
    theta = 2.0
    out = []
    for t in range(2):
        theta = (theta - update(t)) * (1 - decay(t))
        out.append(theta)
    return out


def lr_scaled(t: int) -> float:
    return LR[t] * WD


EXPECTED = {
    "torch": before(corrected, lr_scaled),
    "optax": before(corrected, lr_scaled),
    "keras": before(hat, lr_scaled),
    "paper": before(corrected, lambda t: LR[t] / LR[0] * WD),
    "bert": before(uncorrected, lr_scaled),
    "hf_legacy": after(hat, lr_scaled),
    "tfa": before(hat, lambda t: WD),
}


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_adamw_presets(preset):
    got = trajectory("adamw", 2.0, [1.0, 0.25], lr=list(LR), weight_decay=WD, eps=EPS,
                     betas=(0.5, 0.75), convention=preset)
    assert got == pytest.approx(EXPECTED[preset], rel=1e-14), preset


def test_adamw_epsilon_inside_the_root():
    conv = spec.PRESETS["torch"].replace(epsilon="inside")
    got = trajectory("adamw", 2.0, [1.0, 0.25], lr=list(LR), weight_decay=WD, eps=EPS,
                     betas=(0.5, 0.75), convention=conv)
    assert got == pytest.approx(before(inside, lr_scaled), rel=1e-14)


@pytest.mark.parametrize(
    ("variant", "second_step_root"),
    [
        # raw: v_max = max(0.25, 0.203125) = 0.25, then divided by bc2 = 0.4375
        ("raw", math.sqrt(0.25 / 0.4375)),
        # corrected: max(v_hat1, v_hat2) = max(0.25/0.25, 0.203125/0.4375) = 1
        ("corrected", 1.0),
    ],
)
def test_amsgrad_variants(variant, second_step_root):
    conv = spec.PRESETS["torch"].replace(amsgrad=variant)
    got = trajectory("adamw", 2.0, [1.0, 0.25], lr=list(LR), weight_decay=0.0, eps=EPS,
                     betas=(0.5, 0.75), amsgrad=True, convention=conv)
    theta1 = 2.0 - corrected(0)
    theta2 = theta1 - LR[1] / BC1[1] * M[1] / (second_step_root + EPS)
    assert got == pytest.approx([theta1, theta2], rel=1e-14)


def test_keras_sgd_momentum_under_a_schedule_by_hand():
    # Keras: m1 = -0.1*0.5, theta1 = 1 + m1; m2 = 0.9*m1 - 0.05*0.5, theta2 = theta1 + m2; decoupled decay
    # theta <- theta - lr*0.1*theta first.  torch: b2 = 0.9*0.5 + 0.5, theta2 = theta1 - 0.05*b2.
    keras = trajectory("sgd", 1.0, [0.5, 0.5], lr=[0.1, 0.05], momentum=0.9, weight_decay=0.1, convention="keras")
    t1 = 1 - 0.1 * 0.1 * 1 - 0.1 * 0.5
    t2 = t1 - 0.05 * 0.1 * t1 + (0.9 * -0.05 - 0.05 * 0.5)
    assert keras == pytest.approx([t1, t2], rel=1e-15)
    torch = trajectory("sgd", 1.0, [0.5, 0.5], lr=[0.1, 0.05], momentum=0.9, convention="torch")
    assert torch == pytest.approx([0.95, 0.95 - 0.05 * 0.95], rel=1e-15)


def test_rmsprop_tf1_starts_the_mean_square_at_one_with_eps_inside_by_hand():
    # v1 = 0.9*1 + 0.1*0.25 = 0.925; theta1 = 1 - 0.01*0.5/sqrt(0.925 + 1e-3)
    got = trajectory("rmsprop", 1.0, [0.5], lr=0.01, alpha=0.9, eps=1e-3, convention="tf1")
    assert got == pytest.approx([1 - 0.01 * 0.5 / math.sqrt(0.926)], rel=1e-15)


def test_adagrad_optax_zero_guard_by_hand():
    # s = 0 and eps = 0: torch's 0/0 is NaN, optax's guard leaves theta where it was.
    with np.errstate(invalid="ignore"):
        torch = trajectory("adagrad", 1.0, [0.0], lr=0.1, eps=0.0)
        optax = trajectory("adagrad", 1.0, [0.0], lr=0.1, eps=0.0, convention="optax")
    assert math.isnan(torch[0]) and optax == [1.0]


#: Cases in which every knob of a rule's convention shows: a schedule, momentum, decay, a visible ε;
#: and an all-zero gradient with ε = 0 for Adagrad's zero guard.
KNOB_CASES = {
    "sgd": [dict(grads=[0.5, -0.3, 0.2], lr=[0.1, 0.05, 0.02], momentum=0.9, weight_decay=0.1),
            dict(grads=[0.5, -0.3], lr=0.1, momentum=0.9, dampening=0.5)],
    "adagrad": [dict(grads=[0.5, -0.3, 0.2], lr=[0.1, 0.05, 0.02], eps=1e-3, weight_decay=0.1),
                dict(grads=[0.0, 0.0], lr=0.1, eps=0.0)],
    "rmsprop": [dict(grads=[0.5, -0.3, 0.2], lr=[0.1, 0.05, 0.02], eps=1e-3, momentum=0.5, weight_decay=0.1)],
}


@pytest.mark.parametrize("rule", sorted(KNOB_CASES))
def test_every_knob_value_of_every_rule_changes_a_trajectory(rule):
    presets = spec.get_rule(rule).presets
    torch = presets["torch"]

    def runs(convention):
        with np.errstate(invalid="ignore", divide="ignore"):
            return [trajectory(rule, 1.0, **dict(case, convention=convention)) for case in KNOB_CASES[rule]]

    base = runs(torch)
    for knob, values in type(torch).KNOB_VALUES.items():
        for value in values:
            if value == getattr(torch, knob):
                continue
            changed = runs(torch.replace(**{knob: value}))
            assert not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(changed, base)), (
                f"{rule}: {knob}={value!r} leaves every case's trajectory as torch's: the knob is not wired")
    first = next(iter(type(torch).KNOB_VALUES))
    with pytest.raises(ValueError, match=f"convention knob {first}='between' is not one of"):
        torch.replace(**{first: "between"})
