"""Hypothesis strategies that draw NumPy cases: shapes, gradient streams, hyperparameters, schedules, and
whole :class:`~optspec.conformance.cases.Case` s (:func:`random_cases`).

Every draw is labelled, so that a shrunk failure reads as a case description.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st

from optspec.conformance.cases import Case
from optspec.conformance.representable import beta_near_one, normal_range

#: Magnitudes a float64 run must survive: exact zeros, tiny, ordinary and huge.
TINY, HUGE = 1e-30, 1e30


def shapes(max_tensors: int = 3) -> st.SearchStrategy[list[tuple[int, ...]]]:
    """Several parameter tensors of different shapes (0-d to 3-d)."""
    shape = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
    return st.lists(shape, min_size=1, max_size=max_tensors)


def gradient_values(magnitude: tuple[float, float] = (TINY, HUGE)) -> st.SearchStrategy[float]:
    """Exact zeros, tiny, ordinary and huge values of either sign, none below ``magnitude[0]`` but zero."""
    low, high = magnitude
    ordinary = st.floats(-10, 10, allow_nan=False, allow_subnormal=False).map(
        lambda x: x if abs(x) >= low else 0.0
    )
    extreme = st.sampled_from([m for m in (low, 1e-12, 1e-8, 1e8, high) if low <= m <= high]).flatmap(
        lambda m: st.sampled_from([m, -m])
    )
    return st.one_of(st.just(0.0), ordinary, ordinary, extreme)


@functools.cache
def gradient_stream(shape: tuple[int, ...], steps: int,
                    magnitude: tuple[float, float] = (TINY, HUGE)) -> st.SearchStrategy[np.ndarray]:
    """``(steps, *shape)`` float64 gradients; rows may flip sign from step to step.

    Each stream draws a palette of up to 8 values and a seed that scatters
    them over the elements: a few labelled draws per stream instead of one
    per element, so that thousands of cases generate in seconds, and a
    failure still shrinks to small palettes of simple values.
    """
    palette = st.lists(gradient_values(magnitude), min_size=1, max_size=8)
    flips = st.lists(st.sampled_from([1.0, -1.0]), min_size=steps, max_size=steps)

    def scatter(drawn: tuple[list[float], int, list[float]]) -> np.ndarray:
        values, scatter_seed, signs = drawn
        picks = np.random.default_rng(scatter_seed).integers(0, len(values), size=(steps, *shape))
        return np.asarray(values, np.float64)[picks] * np.asarray(signs).reshape((steps,) + (1,) * len(shape))

    return st.tuples(palette, st.integers(0, 2**32 - 1), flips).map(scatter)


@functools.cache
def parameters(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Initial parameters: exact zeros or magnitudes in [1e-6, 10] (far from the subnormal range)."""
    magnitude = st.floats(1e-6, 10)
    value = st.one_of(st.just(0.0), magnitude, magnitude.map(lambda x: -x))
    palette = st.lists(value, min_size=1, max_size=8)

    def scatter(drawn: tuple[list[float], int]) -> np.ndarray:
        values, scatter_seed = drawn
        picks = np.random.default_rng(scatter_seed).integers(0, len(values), size=shape)
        return np.asarray(values, np.float64)[picks]

    return st.tuples(palette, st.integers(0, 2**32 - 1)).map(scatter)


def schedule(steps: int, base_lr: float) -> st.SearchStrategy[list[float]]:
    """Per-step learning rates: constant, linear warm-up, cosine, or step drops."""

    def warmup(k: int) -> list[float]:
        return [base_lr * min(1.0, (t + 1) / k) for t in range(steps)]

    def cosine(floor: float) -> list[float]:
        return [floor + (base_lr - floor) * 0.5 * (1 + math.cos(math.pi * t / steps)) for t in range(steps)]

    def drops(every: int) -> list[float]:
        return [base_lr * 0.1 ** (t // every) for t in range(steps)]

    return st.one_of(
        st.just([base_lr] * steps),
        st.integers(1, max(steps, 1)).map(warmup),
        st.floats(0, base_lr / 10).map(cosine),
        st.integers(1, max(steps, 1)).map(drops),
    )


#: The values of eps drawn: from far below to far above a typical root of v.
EPS_VALUES = (1e-12, 1e-8, 1e-7, 1e-6, 1e-4, 1e-3, 0.1)

#: The plain values of beta1 and of beta2 drawn besides a continuous range.
BETA_VALUES = ((0.0, 0.5, 0.9, 0.99), (0.9, 0.99, 0.999, 0.9999))

#: Ranges of each hyperparameter over its whole valid range (not only defaults).
HYPER_STRATEGIES: Mapping[str, st.SearchStrategy[Any]] = {
    "lr": st.sampled_from([1e-4, 1e-3, 1e-2, 0.1, 0.5]) | st.floats(1e-5, 1.0),
    "betas": st.tuples(
        st.sampled_from(BETA_VALUES[0]) | st.floats(0.0, 0.999),
        st.sampled_from(BETA_VALUES[1]) | st.floats(0.5, 0.99999),
    ),
    "eps": st.sampled_from(EPS_VALUES),
    "weight_decay": st.sampled_from([0.0, 1e-4, 1e-2, 0.1, 0.5]) | st.floats(0, 1),
    "amsgrad": st.booleans(),
    "maximize": st.booleans(),
    "momentum": st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0, 0.99),
    "dampening": st.sampled_from([0.0, 0.1, 0.5]),
    "nesterov": st.booleans(),
    "alpha": st.sampled_from([0.9, 0.99]) | st.floats(0.5, 0.999),
    "centered": st.booleans(),
    "lr_decay": st.sampled_from([0.0, 1e-3, 0.1]),
    "initial_accumulator_value": st.sampled_from([0.0, 0.1, 1.0]),
    "momentum_decay": st.sampled_from([4e-3, 0.0, 1.0]) | st.floats(0, 1),
    "rho": st.sampled_from([0.9, 0.95]) | st.floats(0.5, 0.999),
    "threshold": st.sampled_from([5.0, 4.0, 6.0]),
    "etas": st.tuples(st.sampled_from([0.5]) | st.floats(0.1, 0.9), st.sampled_from([1.2]) | st.floats(1.05, 2.0)),
    "step_sizes": st.sampled_from([(1e-6, 50.0), (1e-3, 1.0), (0.0, 10.0), (1e-4, 1e-2)]),
}


@st.composite
def hyperparameters(draw: st.DrawFn, names: Iterable[str]) -> dict[str, Any]:
    """A valid set of the named hyperparameters (lr excluded), e.g. nesterov only with momentum."""
    hyper = {n: draw(HYPER_STRATEGIES[n], label=n) for n in sorted(names) if n in HYPER_STRATEGIES and n != "lr"}
    if hyper.get("nesterov"):
        if hyper.get("momentum", 0) <= 0 or hyper.get("dampening", 0) != 0:
            hyper["nesterov"] = False
    return hyper


#: Gradient magnitudes whose squares stay normal in each dtype (beyond them
#: g**2 under- or overflows and a comparison measures the dtype, not the rule).
MAGNITUDES = {
    "float64": (TINY, HUGE),
    "float32": (1e-15, 1e15),
    "float16": (1e-2, 16.0),
    "bfloat16": (1e-15, 1e15),
}


def gradient_magnitudes(dtype: str, hyper: Mapping[str, Any], steps: int) -> tuple[float, float]:
    r"""The range of nonzero gradient magnitudes for a case in ``dtype`` with ``hyper``.

    A second moment holds :math:`(1-\beta_2)\beta_2^{t-1}g^2` of a gradient
    seen :math:`t` steps ago, which must stay a normal number
    (:mod:`optspec.conformance.representable`): the floor is
    :math:`\sqrt{\mathrm{tiny}\cdot 2^4/((1-\beta)\beta^{T-1})}`, rounded up to a
    power of ten so that few distinct ranges are drawn.
    """
    low, high = MAGNITUDES[dtype]
    decay = [b for b in (hyper.get("betas", (0.0, None))[1], hyper.get("alpha"), hyper.get("rho")) if b is not None]
    for beta in decay:
        weight = (1 - beta) * beta ** max(steps - 1, 0)
        if weight > 0:
            floor = np.sqrt(normal_range(dtype).low / weight)
            low = max(low, float(10.0 ** np.ceil(np.log10(floor))))
    return low, max(high, low)


@st.composite
def random_cases(draw: st.DrawFn, supports: frozenset[str], dtype: str = "float64",
                 max_steps: int = 10) -> Case:
    """A case over the hyperparameters in ``supports`` (a subject's :attr:`~SubjectInfo.supports`).

    Its values stay inside ``dtype``'s range: gradients by
    :func:`gradient_magnitudes`, and ``eps`` among the values the dtype holds.
    """
    tensor_shapes = draw(shapes(), label="shapes")
    steps = draw(st.integers(1, max_steps), label="steps")
    hyper = draw(hyperparameters(supports - {"convention"}), label="hyper")
    if "eps" in hyper and hyper["eps"] < normal_range(dtype).tiny:
        hyper["eps"] = draw(st.sampled_from([e for e in EPS_VALUES if e >= normal_range(dtype).tiny]),
                            label="eps")
    if "betas" in hyper and any(beta_near_one(b, dtype) for b in hyper["betas"]):
        # A subject that holds beta in its dtype (Keras) would have a bias correction of 0:
        # such a beta is redrawn from the plain values of its own range that the dtype keeps below 1.
        hyper["betas"] = tuple(
            draw(st.sampled_from([v for v in values if not beta_near_one(v, dtype)]), label=f"beta{i}")
            if beta_near_one(beta, dtype) else beta
            for i, (beta, values) in enumerate(zip(hyper["betas"], BETA_VALUES), start=1))
    params0 = [draw(parameters(s)) for s in tensor_shapes]
    magnitudes = gradient_magnitudes(dtype, hyper, steps)
    grads = [draw(gradient_stream(s, steps, magnitudes)) for s in tensor_shapes]
    lr = draw(HYPER_STRATEGIES["lr"], label="lr")
    lrs = draw(schedule(steps, lr), label="schedule")
    restore_at = draw(st.one_of(st.none(), st.integers(1, steps - 1)) if steps > 1 else st.none(),
                      label="restore_at")
    return Case(params0, grads, lrs, hyper, restore_at)
