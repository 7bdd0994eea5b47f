"""PyTorch: ``torch.optim`` optimizers (for-loop, foreach, fused) and plugins."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from adapters.driver import Session, SubjectInfo
from adapters.namespaces import asarray, to_numpy
from adapters.translation import TORCH, Translation


class TorchSession(Session):
    """A ``torch.optim.Optimizer``; the schedule sets ``param_groups[i]["lr"]``."""

    def __init__(self, cls: type, kwargs: Mapping[str, Any], params0: Sequence[np.ndarray],
                 lr0: float, dtype: str, device: str | None) -> None:
        self.dtype, self.device = dtype, device
        self.tensors = [torch.nn.Parameter(asarray("torch", p, dtype, device)) for p in params0]
        self.optimizer = cls(self.tensors, lr=lr0, **kwargs)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray("torch", g, self.dtype, self.device) for g in grads]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        for param, grad in zip(self.tensors, grads):
            param.grad = grad
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self.tensors]

    def state(self) -> dict[str, np.ndarray]:
        return {
            f"{i}.{name}": to_numpy(value)
            for i, p in enumerate(self.tensors)
            for name, value in self.optimizer.state.get(p, {}).items()
            if torch.is_tensor(value)
        }

    def save(self) -> Any:
        return copy.deepcopy(self.optimizer.state_dict())

    def restore(self, saved: Any) -> None:
        self.optimizer.load_state_dict(saved)


def builder(cls: type, translation: Translation, extra: Mapping[str, Any] | None = None):
    """A ``SubjectInfo.build`` for optimizer class ``cls``."""

    def build(params0, hyper, lrs, dtype, device) -> TorchSession:
        kwargs = {**translation.kwargs(hyper), **(extra or {})}
        return TorchSession(cls, kwargs, params0, lrs[0] if lrs else 0.0, dtype, device)

    return build


_FORMS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def _subjects() -> tuple[SubjectInfo, ...]:
    classes = {
        "sgd": torch.optim.SGD,
        "adagrad": torch.optim.Adagrad,
        "rmsprop": torch.optim.RMSprop,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
    }
    found = []
    for rule, cls in classes.items():
        forms = [f for f in _FORMS if f != "fused" or "fused" in cls.__init__.__code__.co_varnames]
        for form in forms:
            found.append(SubjectInfo(
                name=f"torch.optim.{cls.__name__}[{form}]",
                framework="torch",
                rule=rule,
                convention="torch" if rule in ("adam", "adamw") else None,
                supports=TORCH[rule].supports,
                build=builder(cls, TORCH[rule], _FORMS[form]),
            ))
    found.append(SubjectInfo(
        name="torch.optim.Adam[decoupled_weight_decay=True]",
        framework="torch",
        rule="adamw",
        convention="torch",
        supports=TORCH["adamw"].supports,
        build=builder(torch.optim.Adam, TORCH["adamw"], {"decoupled_weight_decay": True}),
    ))
    return tuple(found)


SUBJECTS = _subjects()


def plugin(name: str, obj: Any) -> SubjectInfo:
    """A drop-in for ``torch.optim.AdamW``: ``(params, lr, betas, eps, weight_decay, amsgrad, maximize)``."""
    if not (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)):
        raise TypeError("it must be a torch.optim.Optimizer subclass")
    return SubjectInfo(name=name, framework="torch", rule="adamw", convention="torch",
                       supports=TORCH["adamw"].supports, build=builder(obj, TORCH["adamw"]))
