"""torch's own SGD, Adagrad and RMSprop, each with one hidden defect that its own preset must reject.

================================  ==================================================================
subject                           the defect
================================  ==================================================================
``SGDDampedFirstStep``            the first momentum buffer is :math:`(1-\\tau)g_1`, not :math:`g_1`
                                  (the buffer starts at zero): visible only with dampening
``AdagradZeroStart``              the sum starts at 0 whatever ``initial_accumulator_value`` says
``RMSpropSwappedAlpha``           :math:`v_t = (1-\\alpha)v_{t-1} + \\alpha g_t^2`: α and 1−α swapped
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
