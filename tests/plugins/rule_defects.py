"""torch's own SGD, Adagrad, RMSprop and Adamax, each with one hidden defect that its own preset must reject.

================================  ==================================================================
subject                           the defect
================================  ==================================================================
``SGDDampedFirstStep``            the first momentum buffer is :math:`(1-\\tau)g_1`, not :math:`g_1`
                                  (the buffer starts at zero): visible only with dampening
``AdagradZeroStart``              the sum starts at 0 whatever ``initial_accumulator_value`` says
``RMSpropSwappedAlpha``           :math:`v_t = (1-\\alpha)v_{t-1} + \\alpha g_t^2`: α and 1−α swapped
``AdamaxEpsilonAtDivision``       :math:`u_t = \\max(\\beta_2 u_{t-1}, |g_t|)`, divided by as :math:`u_t+\\epsilon`:
                                  ε in Keras' place, not inside the maximum
================================  ==================================================================
"""

from __future__ import annotations

import contextlib

import torch


class SGDDampedFirstStep(torch.optim.SGD):
    """torch's SGD whose momentum buffer exists (as zeros) before the first step, so it is damped."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and group["momentum"] != 0 and "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return super().step(closure)


class AdagradZeroStart(torch.optim.Adagrad):
    """torch's Adagrad with every sum reset to 0 after construction."""

    def __init__(self, params, *args, **kwargs) -> None:
        super().__init__(params, *args, **kwargs)
        for state in self.state.values():
            state["sum"].zero_()


class RMSpropSwappedAlpha(torch.optim.RMSprop):
    """torch's RMSprop stepping with ``alpha`` replaced by ``1 - alpha``."""

    @torch.no_grad()
    def step(self, closure=None):
        with contextlib.ExitStack() as restore:
            for group in self.param_groups:
                restore.callback(group.__setitem__, "alpha", group["alpha"])
                group["alpha"] = 1 - group["alpha"]
            return super().step(closure)


class AdamaxEpsilonAtDivision(torch.optim.Adamax):
    """torch's Adamax (L2 decay, bias-corrected first moment) with ε added to the norm at the division."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_inf=torch.zeros_like(p))
                state["step"] += 1
                grad = -p.grad if group["maximize"] else p.grad
                grad = grad.add(p, alpha=group["weight_decay"])
                state["exp_avg"].lerp_(grad, 1 - beta1)
                torch.maximum(state["exp_inf"].mul_(beta2), grad.abs(), out=state["exp_inf"])
                clr = group["lr"] / (1 - beta1 ** state["step"].item())
                p.addcdiv_(state["exp_avg"], state["exp_inf"] + group["eps"], value=-clr)
