"""PyTorch: ``torch.optim`` optimizers (for-loop, foreach, fused) and plugins."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from optspec import spec
from optspec.adapters import ranks
from optspec.adapters.batching import Member
from optspec.adapters.driver import Dtypes, QuantizedState, Session, SubjectInfo, tensor_dtypes
from optspec.adapters.namespaces import asarray, to_numpy
from optspec.adapters.plugins import Capabilities
from optspec.adapters.torch import quantized_state
from optspec.adapters.translation import Translation

#: torch's names are the spec's.
TRANSLATIONS: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": Translation.same_names("momentum", "dampening", "weight_decay", "nesterov", "maximize"),
        "adagrad": Translation.same_names("lr_decay", "weight_decay", "initial_accumulator_value", "eps",
                                          "maximize"),
        "rmsprop": Translation.same_names("alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
        "adam": Translation.same_names("betas", "eps", "weight_decay", "amsgrad", "maximize"),
        "adamw": Translation.same_names("betas", "eps", "weight_decay", "amsgrad", "maximize"),
        "adamax": Translation.same_names("betas", "eps", "weight_decay", "maximize"),
        "nadam": Translation.same_names("betas", "eps", "weight_decay", "momentum_decay", "maximize"),
        "radam": Translation.same_names("betas", "eps", "weight_decay", "maximize"),
        "adadelta": Translation.same_names("rho", "eps", "weight_decay", "maximize"),
        "lion": Translation.same_names("betas", "weight_decay", "maximize"),
        "rprop": Translation.same_names("etas", "step_sizes", "maximize"),
    }
)


#: The per-parameter state entry a torch kernel keeps its Kahan compensation in: torch-optimi 0.3.3's
#: (``optimi/adam.py:96-106``: ``state["kahan_comp"]``, zeros like the parameter where it is bfloat16 or float16).
KAHAN_COMPENSATION = "kahan_comp"


class TorchSession(Session):
    """A ``torch.optim.Optimizer``; the schedule sets ``param_groups[i]["lr"]``.

    With ``groups`` (a batch), each group holds one member's tensors and
    keyword arguments, and a step takes one learning rate per group.
    """

    def __init__(self, cls: type, kwargs: Mapping[str, Any], params0: Sequence[np.ndarray],
                 lr0: float, dtype: Dtypes, device: str | None,
                 groups: Sequence[tuple[int, Mapping[str, Any]]] | None = None) -> None:
        self.dtypes, self.device = tensor_dtypes(dtype, len(params0)), device
        self.placement = ranks.new_placement()
        self.tensors = [torch.nn.Parameter(asarray("torch", p, d, device)) for p, d in zip(params0, self.dtypes)]
        if self.placement is not None:  # a rank of a sharded run
            self.tensors = self.placement.place(self.tensors)
            cls = self.placement.optimizer(cls)
        if groups is None:
            self.optimizer = cls(self.tensors, lr=lr0, **kwargs)
            return
        param_groups, start = [], 0
        for count, group_kwargs in groups:
            param_groups.append({"params": self.tensors[start:start + count], **group_kwargs})
            start += count
        self.optimizer = cls(param_groups, lr=lr0, **kwargs)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        fed = [asarray("torch", g, d, self.device) for g, d in zip(grads, self.dtypes)]
        if self.placement is not None:
            fed = [self.placement.gradient(p, g) for p, g in zip(self.tensors, fed)]
        return fed

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        for param, grad in zip(self.tensors, grads):
            param.grad = grad
        groups = self.optimizer.param_groups
        rates = [float(lr)] * len(groups) if np.ndim(lr) == 0 else np.asarray(lr, np.float64)
        for group, rate in zip(groups, rates):
            if torch.is_tensor(group["lr"]):  # torchao keeps lr as a tensor, read inside a compiled step
                group["lr"].fill_(float(rate))
            else:
                group["lr"] = float(rate)
        self.optimizer.step()

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self.tensors]  # a DTensor gives this rank's shard

    def whole_params(self) -> list[np.ndarray]:
        if self.placement is not None:
            return [to_numpy(self.placement.whole(p)).reshape(shape)
                    for p, shape in zip(self.tensors, self.placement.shapes)]
        return self.params()

    def state(self) -> dict[str, np.ndarray]:
        return {
            f"{i}.{name}": to_numpy(value)
            for i, p in enumerate(self.tensors)
            for name, value in self._state().get(p, {}).items()
            if torch.is_tensor(value)
        }

    def quantized_state(self) -> list[list[QuantizedState]]:
        held = self._state()
        return [quantized_state.read(held.get(p, {})) for p in self.tensors]

    def compensation(self) -> list[np.ndarray | None]:
        held = self._state()
        kept = [held.get(p, {}).get(KAHAN_COMPENSATION) for p in self.tensors]
        # optimi keeps a 1-element placeholder for a parameter it does not compensate
        return [to_numpy(c) if torch.is_tensor(c) and c.shape == p.shape else None for c, p in zip(kept, self.tensors)]

    def storage(self) -> list[Any]:
        # a tensor subclass of quantized state (torchao's) reads as the parameter's dtype: its codes say what it holds
        return [*self.tensors, *(getattr(value, "codes", value) for p in self.tensors
                                 for value in self._state().get(p, {}).values() if torch.is_tensor(value))]

    def _state(self) -> Mapping[Any, Mapping[str, Any]]:
        """The per-parameter state this process holds (under ZeRO, its local optimizer's)."""
        return getattr(self.optimizer, "optim", self.optimizer).state

    def save(self) -> Any:
        if self.placement is not None:
            return self.placement.save(self.optimizer)
        return copy.deepcopy(self.optimizer.state_dict())

    def restore(self, saved: Any) -> None:
        self.optimizer.load_state_dict(saved)


def builder(cls: type, translation: Translation, extra: Mapping[str, Any] | None = None):
    """A ``SubjectInfo.build`` for optimizer class ``cls``."""

    def build(params0, hyper, lrs, dtype, device) -> TorchSession:
        kwargs = {**translation.kwargs(hyper), **(extra or {})}
        return TorchSession(cls, kwargs, params0, lrs[0] if lrs else 0.0, dtype, device)

    return build


def batch_builder(cls: type, translation: Translation, extra: Mapping[str, Any] | None = None):
    """A ``SubjectInfo.build_batch``: one param group per member, constructed with its own first lr."""

    def build_batch(members: Sequence[Member], steps: int, dtype: str, device: str | None) -> TorchSession:
        params0 = [p for m in members for p in m.params0]
        groups = [(len(m.params0), {**translation.kwargs(m.hyper), "lr": m.lrs[0]}) for m in members]
        return TorchSession(cls, dict(extra or {}), params0, members[0].lrs[0], dtype, device, groups)

    return build_batch


_FORMS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}

#: The state fields a torch optimizer keeps as 0-d tensors of torch's scalar dtype, whatever the parameters'
#: dtype: float32 unless the default dtype is float64 (``torch/optim/optimizer.py:210-215`` ``_get_scalar_dtype``).
#: NAdam's ``mu_product`` is one (``torch/optim/nadam.py:131-147``), multiplied in float32 at every step.
#: rule -> (the class that does so, subclasses included; the storage its subjects are held to).
_SCALAR_STATE: Mapping[str, tuple[type, Mapping[str, str]]] = MappingProxyType(
    {"nadam": (torch.optim.NAdam, MappingProxyType({"mu_product": "float32"}))})


def _scalar_state(rule: str, optimizer: Any) -> dict[str, str]:
    """The state storage of an optimizer of ``rule`` (an instance, or a class) that torch's scalar dtype sets."""
    cls, storage = _SCALAR_STATE.get(rule, (None, {}))
    found = optimizer if isinstance(optimizer, type) else type(optimizer)
    return dict(storage) if cls is not None and issubclass(found, cls) else {}

#: The fused kernels that DTensor has no sharding strategy for (``torch/distributed/tensor/_ops/_pointwise_ops.py``
#: registers those of Adam and AdamW only): the step of such a fused optimizer on ``fully_shard``'s parameters
#: raises NotImplementedError ("Operator aten._fused_sgd_.default does not have a sharding strategy registered").
_FUSED_WITHOUT_DTENSOR = {"sgd": "_fused_sgd_", "adagrad": "_fused_adagrad_"}


def _subjects() -> tuple[SubjectInfo, ...]:
    classes = {
        "sgd": torch.optim.SGD,
        "adagrad": torch.optim.Adagrad,
        "rmsprop": torch.optim.RMSprop,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "adamax": torch.optim.Adamax,
        "nadam": torch.optim.NAdam,
        "radam": torch.optim.RAdam,
        "adadelta": torch.optim.Adadelta,
        "rprop": torch.optim.Rprop,
    }
    found = []
    for rule, cls in classes.items():
        forms = [f for f in _FORMS if f != "fused" or "fused" in cls.__init__.__code__.co_varnames]
        for form in forms:
            found.append(SubjectInfo(
                name=f"torch.optim.{cls.__name__}[{form}]",
                framework="torch",
                rule=rule,
                convention="torch",
                supports=TRANSLATIONS[rule].supports,
                build=builder(cls, TRANSLATIONS[rule], _FORMS[form]),
                build_batch=batch_builder(cls, TRANSLATIONS[rule], _FORMS[form]),
                state_storage=_scalar_state(rule, cls),
                not_shardable=({"fsdp2": f"torch cannot step it on fully_shard's DTensor shards: DTensor has no "
                                         f"sharding strategy for its kernel, aten.{_FUSED_WITHOUT_DTENSOR[rule]}"}
                               if form == "fused" and rule in _FUSED_WITHOUT_DTENSOR else {}),
            ))
    found.append(SubjectInfo(
        name="torch.optim.Adam[decoupled_weight_decay=True]",
        framework="torch",
        rule="adamw",
        convention="torch",
        supports=TRANSLATIONS["adamw"].supports,
        build=builder(torch.optim.Adam, TRANSLATIONS["adamw"], {"decoupled_weight_decay": True}),
        build_batch=batch_builder(torch.optim.Adam, TRANSLATIONS["adamw"], {"decoupled_weight_decay": True}),
    ))
    return tuple(found)


SUBJECTS = _subjects()




def construct(factory: Any, kwargs: Mapping[str, Any]) -> Any:
    """``factory`` called as the certifier calls it, on a one-element parameter, with ``kwargs``."""
    return factory([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, **kwargs)


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(params, lr=..., **knobs)`` returns a ``torch.optim.Optimizer``-like object.

    It is called once on a one-element parameter, so that a constructor that
    rejects the call fails here.
    """
    probe = construct(factory, {})
    if not (hasattr(probe, "step") and hasattr(probe, "param_groups")):
        raise TypeError(f"it returned a {type(probe).__name__}, not a torch.optim.Optimizer")
    translation = TRANSLATIONS[rule]
    return SubjectInfo(name=name, framework="torch", rule=rule,
                       convention=spec.get_rule(rule).preset_or_default("torch"),
                       supports=caps.supports, fixed=caps.fixed, not_tested=caps.not_tested,
                       state_storage=_scalar_state(rule, probe),
                       build=builder(factory, translation), build_batch=batch_builder(factory, translation))
