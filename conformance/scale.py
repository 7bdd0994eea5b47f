r"""``certify --size N``: a subject on one tensor of N elements, against the compiled spec in its own dtype.

A float64 reference of 1e7 elements over 100 steps would take minutes, so at
scale two checks share the work:

- **step by step, every element:** the spec compiled for the subject's
  framework (:class:`adapters.compiled.CompiledStep`) runs in the subject's
  dtype on the very arrays the subject is fed.  Each of the two is within
  :math:`B^{(T)}_t` of the exact trajectory (:mod:`optspec.conformance.tolerance`), so
  they may differ by :math:`2B^{(T)}_t`.  :math:`B^{(T)}_t` accumulates the one-step bounds along
  the compiled reference, with :math:`M_t` from a third run of the rule on
  :math:`|g|` without decay, exactly as for small cases.  The L2 feedback term
  of ``adam`` with weight decay is not modelled at scale;
- **float64 spot checks:** ``samples`` elements drawn at random are checked
  with the full small-case model (:func:`conformance.check.check_trajectory`)
  against the float64 spec on NumPy, which also supplies the evidence.

The case: one flat tensor with per-element gradient scales from 1e-3 to 10,
about 1% exact zeros per step (at positions drawn with replacement), a
warm-up and cosine schedule, and weight decay 0.1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from optspec import adapters, spec
from optspec.adapters.compiled import CompiledStep, as_numpy
from optspec.adapters.driver import SubjectInfo, Trajectory, heartbeat
from optspec.conformance import tolerance
from optspec.conformance.cases import Case
from optspec.conformance.certify import reproduce_command
from optspec.conformance.check import check_trajectory
from optspec.conformance.expectation import Expectation
from optspec.conformance.reference import explicit_hyperparameters
from optspec.conformance.verdict import Certificate, CheckOutcome, Failure, certificate

#: Hyperparameters of the scale case (the subject's defaults fill the rest).
SCALE_HYPER = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False, "maximize": False}


def schedule(steps: int, peak: float = 1e-3) -> list[float]:
    """Linear warm-up over the first tenth, then cosine decay to a tenth of ``peak``."""
    warm = max(1, steps // 10)
    return [peak * (t + 1) / warm if t < warm else
            peak * (0.1 + 0.45 * (1 + math.cos(math.pi * (t - warm) / max(1, steps - warm))))
            for t in range(steps)]


class _ElementBounds:
    """:math:`B^{(T)}_t` of every element along the compiled reference, and the worst error against it.

    Kept in float64, and updated block by block (``BLOCK`` elements) so that
    the dozen temporaries of each update stay in cache.
    """

    BLOCK = 65536

    def __init__(self, theta0: np.ndarray, dtype: str, betas: tuple[float, float]) -> None:
        self.dtype, self.betas = dtype, betas
        self.bound = np.zeros_like(theta0)
        self.previous = theta0.copy()
        self.previous_update = np.zeros_like(theta0)
        self.magnitude_before = np.zeros_like(theta0)

    def step(self, t: int, carry: float, got: np.ndarray, expected: np.ndarray, magnitude: np.ndarray
             ) -> tuple[int, float, float]:
        r"""Accumulates step ``t``; returns the element whose error is the largest multiple of its bound.

        The one-step bound takes :math:`M_t` as the largest of the reference's
        own step, the step of the :math:`|g|` run (``magnitude``) and the
        previous one scaled by ``carry`` (:math:`2\,\mathrm{lr}_t/\mathrm{lr}_{t-1}`).
        Returns (element, its |error|, its bound :math:`B^{(T)}_t`); a
        non-finite result where the reference is finite counts as an infinite
        error.
        """
        best = (-1.0, 0, 0.0, 0.0)
        for start in range(0, len(self.bound), self.BLOCK):
            block = slice(start, start + self.BLOCK)
            now = expected[block].astype(np.float64)
            before = self.previous[block]
            magnitude_now = magnitude[block].astype(np.float64)
            update = np.abs(magnitude_now - self.magnitude_before[block])
            parts = np.maximum(np.abs(now - before), update)
            if carry:
                np.maximum(parts, carry * self.previous_update[block], out=parts)
            bound = self.bound[block]
            bound += tolerance.one_step_bound(before, parts, t, self.dtype, self.betas)
            error = np.abs(got[block].astype(np.float64) - now)
            error[~np.isfinite(error) & np.isfinite(now)] = np.inf
            ratio = error / bound
            ratio[np.isnan(ratio)] = 0.0  # both non-finite: the reference itself overflowed here
            at = int(np.argmax(ratio))
            if not ratio[at] <= best[0]:
                best = (float(ratio[at]), start + at, float(error[at]), float(bound[at]))
            before[...] = now
            self.previous_update[block] = update
            self.magnitude_before[block] = magnitude_now
        return best[1], best[2], best[3]


def _compile_before_the_subject(framework: str, rule: str, fed: Callable[[np.ndarray], Any], size: int,
                                lrs: list[float], device: str | None, convention: Any,
                                *hypers: dict[str, Any]) -> None:
    """Two steps of a throwaway compiled spec with each of ``hypers``, before the subject's first heartbeat.

    The compiled spec compiles at its first steps; a heartbeat covers the subject's step and the
    reference's together, so a compilation slower than ``--time-limit`` (a loaded machine) would be
    taken for the subject's hang.  Here it falls in the worker's start-up allowance, and the
    compilations are shared with the instances that check the subject.
    """
    zeros = np.zeros(size, np.float32)
    for hyper in hypers:
        warm = CompiledStep(framework, rule, fed(zeros), device=device, convention=convention, **hyper)
        for lr in lrs[:2]:
            warm.step(fed(zeros), lr)


def certify_at_scale(subject: SubjectInfo, *, size: int, steps: int = 100,
                     convention: str | spec.Knobs | None = None,
                     dtype: str = "float32", device: str | None = None, seed_value: int = 0,
                     samples: int = 1000, progress: Callable[[str], None] | None = None) -> Certificate:
    """Certifies ``subject`` on one tensor of ``size`` elements over ``steps`` steps (see the module docstring)."""
    if not spec.get_rule(subject.rule).compiles:
        raise adapters.SetupError(f"--size certifies Adam-family subjects; {subject.name} implements {subject.rule}")
    if size < 1 or steps < 1:
        raise adapters.SetupError(f"--size and --steps must be positive (got {size} and {steps})")
    expectation = Expectation.of(subject, convention)
    convention = expectation.convention
    device = adapters.namespaces.check_device(subject.framework, device)
    framework = subject.framework
    rng = np.random.default_rng(seed_value)
    hyper = explicit_hyperparameters(subject, {k: v for k, v in SCALE_HYPER.items() if k in subject.supports})
    lrs = schedule(steps)
    betas = tuple(hyper.get("betas", (0.9, 0.999)))
    scales = (10.0 ** rng.uniform(-3, 1, size)).astype(np.float32)
    sampled = np.sort(rng.choice(size, size=min(samples, size), replace=False))

    def fed(values: np.ndarray) -> Any:
        return adapters.asarray(framework, values, dtype, device)

    param0 = fed(rng.standard_normal(size, dtype=np.float32))
    theta0 = adapters.to_numpy(param0).astype(np.float64)
    spec_hyper = {k: v for k, v in hyper.items() if k != "lr"}
    magnitude_hyper = {**spec_hyper, "weight_decay": 0.0, "maximize": False}
    _compile_before_the_subject(framework, subject.rule, fed, size, lrs, device, convention,
                                spec_hyper, magnitude_hyper)
    reference = CompiledStep(framework, subject.rule, param0, device=device, convention=convention, **spec_hyper)
    magnitude = CompiledStep(framework, subject.rule, fed(np.zeros(size, np.float32)), device=device,
                             convention=convention, **magnitude_hyper)
    started = time.perf_counter()
    label = f"scale ({size} elements)"
    heartbeat(label, 0)
    try:
        session = subject.build([theta0], hyper, lrs, dtype, device)
    except Exception as exc:
        raise adapters.SubjectError(f"{subject.name} raised at construction: {adapters.one_line(exc)}") from None
    bounds = _ElementBounds(theta0, dtype, betas)
    worst, failure = 0.0, None
    per_step: list[tuple[float, float]] = []
    spot_params, spot_grads = [], []
    xp = adapters.namespace(framework, device)
    for t, lr in enumerate(lrs, start=1):
        heartbeat(label, t)
        drawn = rng.standard_normal(size, dtype=np.float32)
        drawn *= scales
        drawn[rng.integers(0, size, rng.binomial(size, 0.01))] = 0.0
        grad = fed(drawn)
        grad_as_fed = adapters.to_numpy(grad)  # rounded to the subject's dtype
        try:
            session.step(session.feed([grad_as_fed]), lr, t - 1)
            got = session.params()[0]
        except Exception as exc:
            raise adapters.SubjectError(f"{subject.name} raised at step {t}: {adapters.one_line(exc)}") from None
        reference.step(grad, lr)
        magnitude.step(xp.abs(grad), lr)
        carry = 2 * lr / lrs[t - 2] if t > 1 and lrs[t - 2] > 0 else 0.0
        expected = as_numpy(reference)
        at, error, bound = bounds.step(t, carry, got, expected, as_numpy(magnitude))
        per_step.append((error, 2 * bound))
        ratio = math.inf if not math.isfinite(error) else error / (2 * bound)
        worst = max(worst, ratio)
        if failure is None and ratio > 1:
            failure = (t, at, float(got[at]), float(expected[at]))
        spot_params.append(got[sampled].astype(np.float64))
        spot_grads.append(grad_as_fed[sampled].astype(np.float64))
        if progress and (t % max(1, steps // 10) == 0):
            progress(f"{subject.name}: step {t}/{steps} at size {size} ({time.perf_counter() - started:.1f} s)")
    case = Case(params0=[theta0[sampled]], grads=[np.stack(spot_grads)], lrs=lrs, hyper=hyper,
                label=f"scale: {size} elements, {len(sampled)} sampled")
    spot = check_trajectory(subject, case, case.params0, case.grads, Trajectory(params=[np.stack(spot_params)]),
                            convention=convention, dtype=dtype)
    checks = {
        "scale_step": CheckOutcome(passed=failure is None, worst_error_over_bound=worst),
        "one_step": CheckOutcome(passed=spot.passed or spot.check != "one_step",
                                 worst_error_over_bound=spot.worst.get("one_step", 0.0)),
        "trajectory": CheckOutcome(passed=spot.passed or spot.check != "trajectory",
                                   worst_error_over_bound=spot.worst.get("trajectory", 0.0),
                                   worst_ulps=spot.worst_ulps),
    }
    evidence = None
    if failure is not None or not spot.passed:
        common = {"hint": spot.hint, "case": case.describe(), "hyperparameters": hyper, "learning_rates": lrs,
                  "reproduce_cli": reproduce_command(subject, expectation, dtype=dtype, seed=seed_value,
                                                     size=size, steps=steps)}
        if failure is not None:
            t, element, got_value, expected_value = failure
            evidence = Failure(
                check="scale_step", step=t, error_and_bound_per_step=per_step,
                detail=(f"element {element} at step {t}: got {float(got_value)!r}, the compiled spec in "
                        f"{dtype} gives {float(expected_value)!r}, |error| {abs(got_value - expected_value):.3g} "
                        f"> 2 x bound {per_step[t - 1][1]:.3g}"), **common)
        else:
            evidence = Failure(check=spot.check, step=spot.step, detail=f"float64 spot check: {spot.failure}",
                               error_and_bound_per_step=spot.per_step, ulps=spot.worst_ulps, **common)
    return certificate(subject, expectation, dtype=dtype, device=device, seed=seed_value, cases_run=1,
                       checks=checks, failure=evidence, per_case_worst=[worst])

