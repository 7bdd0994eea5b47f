"""``AdamW``: a ``torch.optim.Optimizer`` whose step is the compiled spec.

It is a drop-in for ``torch.optim.AdamW`` (the optspec plugin contract):
param groups may override any hyperparameter, a schedule sets
``param_groups[i]["lr"]``, and the state (``step``, ``exp_avg``,
``exp_avg_sq``, ``max_exp_avg_sq``) has torch's own keys, so a
``torch.optim.AdamW`` checkpoint loads into it and back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from optspec.adapters.compiled import runtime_scalars
from optspec.adapters.spec_backed import checked_hyperparameters
from optspec.adapters.torch.compiled import torch_inplace_step


class AdamW(torch.optim.Optimizer):
    r"""AdamW (``rule="adamw"``) or Adam with an L2 penalty (``rule="adam"``), computed by the spec.

    The update is :func:`spec.adam.adamw_step` (or ``adam_step``) in
    ``convention``, compiled by :func:`optspec.adapters.torch.compiled.torch_inplace_step`
    into one loop per tensor that writes the parameter and state in place.
    With ``convention="paper"`` the decay is :math:`\eta_t\lambda`,
    :math:`\eta_t = \mathrm{lr}_t/\mathrm{lr}_0`, where :math:`\mathrm{lr}_0` is
    the group's ``initial_lr`` (set by torch's schedulers, else the lr of the
    first step).  ``compile=False`` runs the same spec eagerly.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False,
                 *, convention: Any = "torch", rule: str = "adamw", compile: bool = True) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, convention=convention)
        self.rule, self.compile = rule, compile
        _check(rule, defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _check(self.rule, self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])
            static = (self.rule, group["convention"], bool(group["amsgrad"]), bool(group["maximize"]))
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self._state_of(param, group)
                scalars = torch.tensor(runtime_scalars(float(state["step"]), group["lr"], group["initial_lr"],
                                                       group["betas"], group["eps"], group["weight_decay"]),
                                       dtype=torch.float64, device=param.device)
                update = torch_inplace_step(*static, dynamic=True, compile=self.compile,
                                            cache_key=(param.dtype, param.device.type))
                tensors = [param, param.grad, state["exp_avg"], state["exp_avg_sq"],
                           state.get("max_exp_avg_sq", _unused_maximum(param))]
                _step_flat(update, tensors, scalars)
                state["step"] += 1
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads ``state_dict``, this optimizer's or ``torch.optim.AdamW``'s (whose groups lack ``convention``)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def _state_of(self, param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state


def _step_flat(update: Callable[..., None], tensors: list[torch.Tensor], scalars: torch.Tensor) -> None:
    """``update`` on 1-d views of ``tensors`` (parameter, gradient, state): the step is elementwise.

    One compiled function then serves every shape of a dtype and device:
    dynamo specializes sizes of 0 and 1 even with ``dynamic=True``, so stepping
    the tensors as they are would compile once per pattern of unit dimensions
    and soon hit its recompile limit.  Flat views also keep 0-d tensors away
    from an inductor miscompile of in-place 0-d updates (torch 2.13).  A
    tensor that is not contiguous is stepped as a contiguous copy and copied
    back.
    """
    flat = [t.reshape(-1) for t in tensors]  # a view when contiguous
    update(*flat, scalars)
    for index in (0, 2, 3, 4):  # the parameter and the state are written; the gradient is not
        if not tensors[index].is_contiguous():
            tensors[index].copy_(flat[index].view(tensors[index].shape))


def _unused_maximum(param: torch.Tensor) -> torch.Tensor:
    """A 0-d stand-in for the AMSGrad maximum when amsgrad is off (the spec returns it unchanged)."""
    return torch.zeros((), dtype=param.dtype, device=param.device)


def _check(rule: str, group: dict[str, Any]) -> None:
    checked_hyperparameters(rule, group["convention"], group["lr"], betas=tuple(group["betas"]), eps=group["eps"],
                            weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                            maximize=group["maximize"])
