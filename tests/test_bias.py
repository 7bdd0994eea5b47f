"""The bias test (conformance/bias.py): what it rejects below the per-element floor, and what it must not.

The synthetic kernels here step 4,096 bfloat16 parameters once, from an exact
float64 step with a decoupled decay, and round it as real kernels do: once
(torch's fused AdamW), the decay first and the update after it (torch's
for-loop), or with the decay factor rounded to bfloat16 (torch's foreach).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from optspec.conformance import bias
from optspec.conformance.reference import round_to_dtype
from tests.conftest import needs

SIZE = 4096
LR, DECAY = 0.125, 0.5  # 1 - lr·λ = 0.9375, exact in bfloat16
BF16 = "bfloat16"


def _exact(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameters of 1 in bfloat16, an Adam-like update of lr times 1e-3 (an ε-dominated step) and the decay."""
    rng = np.random.default_rng(seed)
    theta = round_to_dtype(rng.choice([-1.0, 1.0], SIZE) * rng.uniform(0.5, 1.0, SIZE), BF16)
    update = -LR * 1e-3 * rng.choice([-1.0, 1.0], SIZE) * rng.uniform(0.5, 1.0, SIZE)
    return theta, update, -LR * DECAY * theta


def _check(theta: np.ndarray, update: np.ndarray, decay: np.ndarray, got: np.ndarray,
           betas: tuple[float, float] = (0.5, 0.5)) -> tuple[int, str] | None:
    """:func:`bias.first_bias` of one step, with the directions of lr (update and decay) and λ (decay), lr's
    roundoff that of an Adam step's scalars at ``betas``."""
    exact = theta + decay + update
    lr_roundoff = bias.scalar_roundoff({"betas": betas, "weight_decay": DECAY}, [LR], BF16, bias_corrected=True)
    found = [bias.Direction("lr", (update + decay)[None], lr_roundoff[:, None]),
             bias.Direction("weight_decay", decay[None], bias.held_roundoff(DECAY, BF16))]
    steps = np.ones((1, 1))
    allowance = bias.allowance(theta[None], exact[None], decay[None], found, steps, state_roundoff=2.0**-8)
    return bias.first_bias(bias.ExactStep(theta[None], exact[None], decay[None], allowance), got[None], found, BF16,
                           "tensor 0")


def _float32_noise(x: np.ndarray, seed: int) -> np.ndarray:
    """``x`` as a kernel computing in float32 may hold it before its last rounding."""
    return x * (1 + 2.0**-24 * np.random.default_rng(seed + 1000).standard_normal(x.shape))


KERNELS = {
    "once (fused)": lambda theta, update, decay, seed: round_to_dtype(_float32_noise(theta + decay + update, seed),
                                                                       BF16),
    "decay first (for-loop)": lambda theta, update, decay, seed: round_to_dtype(
        _float32_noise(round_to_dtype(theta + decay, BF16) + update, seed), BF16),
    "decay factor in bfloat16 (foreach)": lambda theta, update, decay, seed: round_to_dtype(
        _float32_noise(round_to_dtype(theta * round_to_dtype(1 + decay / theta, BF16), BF16) + update, seed), BF16),
    "decay last": lambda theta, update, decay, seed: round_to_dtype(
        _float32_noise(round_to_dtype(theta + update, BF16) + decay, seed), BF16),
}


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_a_correct_kernel_passes_wherever_it_places_its_roundings(kernel):
    """20 seeds: at 1.5e-8 per direction and sign (Hoeffding), a false alarm here is a defect of the test."""
    for seed in range(20):
        theta, update, decay = _exact(seed)
        assert _check(theta, update, decay, KERNELS[kernel](theta, update, decay, seed)) is None, (kernel, seed)


def test_rounding_once_is_told_from_decaying_first():
    """Without the model of a decay rounded first, torch's for-loop kernel would be a false alarm: where
    lr·λ is below half a unit (3.3e-4, as in ``large-tensors``) and the Adam step is not (3.3e-3), the decay
    rounded first is lost, and the flips between its result and the step rounded once lean the way of a
    smaller decay."""
    theta, _, _ = _exact()
    rng = np.random.default_rng(1)
    update = 3.3e-3 * rng.choice([-1.0, 1.0], SIZE) * rng.uniform(0.5, 1.0, SIZE)
    decay = -3.3e-4 * theta
    got = KERNELS["decay first (for-loop)"](theta, update, decay, 0)
    flips = got != round_to_dtype(theta + decay + update, BF16)
    assert flips.sum() > 100
    smaller_decay = np.sign(got - round_to_dtype(theta + decay + update, BF16))[flips] * np.sign(decay[flips])
    assert smaller_decay.sum() < -6 * np.sqrt(flips.sum())


@pytest.mark.parametrize(("knob", "scale"), [("lr", (1.01, 1.01)), ("weight_decay", (1.0, 1.01)),
                                             ("lr", (0.99, 0.99)), ("weight_decay", (1.0, 0.99))])
@pytest.mark.parametrize("kernel", [k for k in KERNELS if "foreach" not in k])
def test_a_one_percent_defect_is_rejected_and_its_size_estimated(kernel, knob, scale):
    r"""Not in the foreach kernel, which rounds :math:`1 - \mathrm{lr}\lambda` to bfloat16: 1 % of lr·λ = 1/16 is
    lost there (0.9375 ∓ 0.000625 rounds back to 0.9375), so that no test could see it in the decay."""
    theta, update, decay = _exact()
    got = KERNELS[kernel](theta, scale[0] * update, scale[1] * decay, 0)
    failure = _check(theta, update, decay, got)
    assert failure is not None, f"{knob} scaled by {scale} passes in the {kernel} kernel"
    step, detail = failure
    assert step == 1
    way = "larger" if max(scale) > 1 else "smaller"
    estimate = re.search(rf"{knob} {way} by about ([0-9.]+)%", detail)
    assert estimate is not None, detail
    assert 0.5 <= float(estimate.group(1)) <= 1.5, detail


def test_truncation_is_rejected():
    """A kernel that drops the bits below bfloat16 (rounds towards 0) moves every flip towards 0: the way a
    larger decay moves it."""
    theta, update, decay = _exact()
    x = np.asarray(theta + decay + update, np.float32)
    truncated = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32).astype(np.float64)
    failure = _check(theta, update, decay, truncated)
    assert failure is not None
    assert "larger weight_decay" in failure[1] or "smaller" in failure[1], failure[1]


def test_a_beta_held_in_the_parameters_dtype_is_allowed_what_it_does_to_the_step():
    """Keras casts β1 to the variable's dtype before :math:`1-\\beta_1^t`, and its moment's :math:`1-\\beta_1`
    after: at β1 = 0.9 in bfloat16 its first step is :math:`0.1000977/0.1015625`, 1.4 % short.  That passes at
    β1 = 0.9, whose rounding allows it, and is rejected at β1 = 0.875, which bfloat16 holds exactly."""
    theta, update, decay = _exact()
    short = 1 - float(round_to_dtype(0.1, BF16)) / (1 - float(round_to_dtype(0.9, BF16)))
    got = KERNELS["once (fused)"](theta, (1 - short) * update, (1 - short) * decay, 0)
    assert 0.013 < short < 0.015
    assert bias.scalar_roundoff({"betas": (0.9, 0.5)}, [LR], BF16, bias_corrected=True)[0] > short
    assert _check(theta, update, decay, got, betas=(0.9, 0.5)) is None
    assert _check(theta, update, decay, got, betas=(0.875, 0.5)) is not None


def test_the_roundoff_of_a_hyperparameter_is_the_one_it_has():
    assert bias.held_roundoff(0.5, BF16) == 0.0
    assert bias.held_roundoff(0.3, BF16) == pytest.approx(abs(0.30078125 - 0.3) / 0.3)
    assert bias.scalar_roundoff({"betas": (0.5, 0.5)}, [0.125, 0.25], BF16, bias_corrected=True) == (
        pytest.approx([2.0**-8, 2.0**-8]))


def test_a_tensor_too_small_to_reach_the_threshold_is_not_tested():
    assert bias.MIN_ELEMENTS == 36
    assert not bias.applies_to(BF16, 35, "nearest")
    assert bias.applies_to(BF16, 36, "nearest")
    assert not bias.applies_to("float32", 4096, "nearest")
    assert not bias.applies_to(BF16, 4096, "stochastic")


@needs("torch")
def test_a_rule_whose_kernels_round_between_parts_of_the_update_is_not_tested_and_says_so():
    """torch's NAdam adds its update in two ``addcdiv_`` (``Rule.rounded_parts``): the certificate says the bias
    test did not run, where a bfloat16 certification of AdamW says nothing."""
    from optspec import adapters
    from optspec.conformance.certify import certify

    def notes(name: str) -> list[str]:
        (subject,) = [s for s in adapters.subjects("torch") if s.name == name]
        cert = certify(subject, dtype=BF16, examples=0)
        assert cert.verdict == "conforms", cert.failure
        return [n for n in cert.notes if n.startswith("bias test")]

    assert notes("torch.optim.NAdam[for-loop]") == [
        "bias test: not run: a nadam kernel may round the parameters between the 2 parts of its update "
        "(docs/DEVIATIONS.md)"]
    assert notes("torch.optim.AdamW[fused]") == []
