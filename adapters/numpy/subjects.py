"""NumPy: the spec itself, driven as a subject (the reference's own self-check)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from optspec import spec
from optspec.adapters.driver import Session, SubjectInfo


class SpecSession(Session):
    def __init__(self, rule: str, params0: Sequence[np.ndarray], hyper: Mapping[str, Any],
                 lrs: Sequence[float], dtype: str) -> None:
        self.rule = spec.get_rule(rule)
        given = {k: v for k, v in hyper.items() if k != "convention"}
        self.hyper = self.rule.hyperparameters(hyper.get("convention"), **given)
        if self.rule.takes_initial_lr and lrs:
            self.hyper["initial_lr"] = lrs[0]
        self.dtype = np.dtype(dtype)
        self.tensors = [np.asarray(p, dtype=self.dtype).copy() for p in params0]
        self.states = [self.rule.init_state(xp, p, self.hyper) for p in self.tensors]

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [np.asarray(g, dtype=self.dtype).copy() for g in grads]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        for i, grad in enumerate(grads):
            self.tensors[i], self.states[i] = self.rule.step(
                xp, self.tensors[i], grad, self.states[i], lr=lr, **self.hyper
            )

    def params(self) -> list[np.ndarray]:
        return [p.copy() for p in self.tensors]

    def state(self) -> dict[str, np.ndarray]:
        return {
            f"{i}.{name}": np.asarray(value)
            for i, st in enumerate(self.states)
            for name, value in st._asdict().items()
        }

    def storage(self) -> list[Any]:
        return [*self.tensors, *(np.asarray(v) for st in self.states for v in st)]

    def save(self) -> Any:
        return copy.deepcopy(self.states)

    def restore(self, saved: Any) -> None:
        self.states = copy.deepcopy(saved)


def _subject(rule: str) -> SubjectInfo:
    defaults = spec.get_rule(rule).defaults
    return SubjectInfo(
        name=f"spec.{rule}",
        framework="numpy",
        rule=rule,
        convention=spec.get_rule(rule).default_preset,
        supports=frozenset(k for k in defaults if k != "lr") | (
            {"convention"} if spec.get_rule(rule).takes_convention else set()
        ),
        build=lambda params0, hyper, lrs, dtype, device: SpecSession(rule, params0, hyper, lrs, dtype),
    )


SUBJECTS: tuple[SubjectInfo, ...] = tuple(_subject(r) for r in spec.RULES)
