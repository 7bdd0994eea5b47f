"""Cases: a gradient stream over several tensors with a schedule and hyperparameters.

Hypothesis draws random cases (:func:`random_cases`); :data:`NAMED_CASES` are a
few discriminating steps that separate the conventions deliberately.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st

from adapters.driver import SubjectInfo
from conformance import strategies as cs


@dataclasses.dataclass
class Case:
    """One certification case; arrays are float64 before rounding to the subject's dtype."""

    params0: list[np.ndarray]
    grads: list[np.ndarray]
    lrs: list[float]
    hyper: dict[str, Any]
    restore_at: int | None = None
    label: str = "random"

    @property
    def steps(self) -> int:
        return len(self.lrs)

    def describe(self) -> str:
        shapes = ", ".join(str(p.shape) for p in self.params0)
        hyper = ", ".join(f"{k}={v!r}" for k, v in sorted(self.hyper.items()))
        restore = f", state restored after step {self.restore_at}" if self.restore_at else ""
        return f"{self.label}: {self.steps} steps on shapes [{shapes}], lr={self.lrs}, {hyper}{restore}"


#: Gradient magnitudes whose squares stay normal in each dtype (beyond them
#: g**2 under- or overflows and a comparison measures the dtype, not the rule).
MAGNITUDES = {
    "float64": (cs.TINY, cs.HUGE),
    "float32": (1e-15, 1e15),
    "float16": (1e-2, 1e2),
    "bfloat16": (1e-15, 1e15),
}


@st.composite
def random_cases(draw: st.DrawFn, supports: frozenset[str], dtype: str = "float64",
                 max_steps: int = 10) -> Case:
    """A case over the hyperparameters in ``supports`` (a subject's :attr:`~SubjectInfo.supports`)."""
    tensor_shapes = draw(cs.shapes(), label="shapes")
    steps = draw(st.integers(1, max_steps), label="steps")
    params0 = [draw(cs.parameters(s)) for s in tensor_shapes]
    grads = [draw(cs.gradient_stream(s, steps, MAGNITUDES[dtype])) for s in tensor_shapes]
    lr = draw(cs.HYPER_STRATEGIES["lr"], label="lr")
    lrs = draw(cs.schedule(steps, lr), label="schedule")
    hyper = draw(cs.hyperparameters(supports - {"convention"}), label="hyper")
    restore_at = draw(st.one_of(st.none(), st.integers(1, steps - 1)) if steps > 1 else st.none(),
                      label="restore_at")
    return Case(params0, grads, lrs, hyper, restore_at)


def _named(label: str, steps: int, hyper: Mapping[str, Any], *, grad_scale: float = 1.0,
           decreasing: bool = False, zeros: bool = False, restore_at: int | None = None) -> Case:
    rng = np.random.default_rng(sum(map(ord, label)))
    shapes = [(3,), (2, 2)]
    params0 = [rng.normal(size=s) + np.sign(rng.normal(size=s)) for s in shapes]
    grads = []
    for shape in shapes:
        g = rng.normal(size=(steps, *shape)) * grad_scale
        if decreasing:
            g *= np.geomspace(1.0, 1e-3, steps).reshape((steps,) + (1,) * len(shape))
        if zeros:
            g[::2] = 0.0
        grads.append(g)
    lrs = [0.1 * (0.5 if t % 2 else 1.0) * (1 + t / steps) for t in range(steps)]
    return Case(params0, grads, lrs, dict(hyper), restore_at, label=label)


#: Discriminating cases: each separates one knob by a wide margin.  Tiny
#: gradients against a large ε split the ε placements; a varying schedule with
#: large lr·λ splits the decay scales and points; early steps (bias
#: corrections far from 1) split bias correction; shrinking gradients make the
#: AMSGrad maximum matter.
NAMED_CASES: tuple[Case, ...] = (
    _named("epsilon-placement", 6, {"eps": 1e-3, "weight_decay": 0.1}, grad_scale=1e-3),
    _named("decay-scale-and-point", 6, {"eps": 1e-8, "weight_decay": 0.5}),
    _named("bias-correction", 3, {"eps": 1e-8, "weight_decay": 0.0, "betas": (0.9, 0.999)}),
    _named("amsgrad", 8, {"eps": 1e-8, "amsgrad": True, "weight_decay": 0.0}, decreasing=True),
    _named("maximize", 4, {"maximize": True, "weight_decay": 0.1}),
    _named("exact-zeros-and-resume", 8, {"eps": 1e-6, "weight_decay": 0.1}, zeros=True, restore_at=4),
)


def restricted(case: Case, subject: SubjectInfo) -> Case:
    """``case`` without the hyperparameters that ``subject`` cannot express."""
    return dataclasses.replace(case, hyper={k: v for k, v in case.hyper.items() if k in subject.supports})


def named_cases_for(subject: SubjectInfo) -> list[Case]:
    """The named cases whose hyperparameters the subject can express.

    The ``amsgrad`` and ``maximize`` cases exist only to exercise that flag, so
    they are dropped for a subject without it.
    """
    return [
        restricted(case, subject)
        for case in NAMED_CASES
        if case.label not in ("amsgrad", "maximize") or case.label in subject.supports
    ]
