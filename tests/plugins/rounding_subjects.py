"""torch AdamWs (torch's convention) that step in float32 and store bfloat16 parameters, each rounded its own
way: stochastically (up with probability the dropped 16 bits over 2^16, written here from that definition),
by truncation (a "stochastic" rounding that never rounds away from zero), or to nearest."""

from __future__ import annotations

import math

import torch


class StochasticRoundingAdamW(torch.optim.Optimizer):
    rounding = "stochastic"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def load_state_dict(self, state_dict):
        """As torch's, but the float32 state stays float32 (torch casts it to the parameters' bfloat16)."""
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        for index, saved in state_dict["state"].items():
            self.state[params[index]].update({k: v.clone() for k, v in saved.items() if torch.is_tensor(v)})

    @staticmethod
    def _moments(state: dict, g: torch.Tensor, beta1: float, beta2: float) -> tuple[int, torch.Tensor, torch.Tensor]:
        """The step count and float32 moments after this step's gradient ``g`` (created at the first)."""
        if not state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, torch.zeros_like(g), torch.zeros_like(g)
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        return state["step"], m, v

    def _stored(self, exact: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if dtype != torch.bfloat16 or self.rounding == "nearest":
            return exact.to(dtype)
        bits = exact.view(torch.int32)
        dropped = bits & 0xFFFF
        away = torch.randint(0, 1 << 16, bits.shape, dtype=torch.int32) < dropped
        if self.rounding == "truncate":
            away = torch.zeros_like(away)
        kept = (bits & -65536) + away.to(torch.int32) * 65536
        return kept.view(torch.float32).to(torch.bfloat16)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                t, m, v = self._moments(self.state[p], p.grad.float(), beta1, beta2)
                denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
                self._apply(p, self.state[p], m, denominator, group["lr"] / (1 - beta1**t),
                            group["lr"] * group["weight_decay"])
        return None

    def _apply(self, p: torch.Tensor, state: dict, m: torch.Tensor, denominator: torch.Tensor, step_size: float,
               decay: float) -> None:
        """Steps ``p`` by ``-step_size * m / denominator`` after a decay by ``decay`` (lr * weight decay), in
        float32, and stores the result rounded its way."""
        exact = p.float().mul_(1 - decay)
        exact.addcdiv_(m, denominator, value=-step_size)
        p.copy_(self._stored(exact, p.dtype))


class TruncatingAdamW(StochasticRoundingAdamW):
    rounding = "truncate"


class NearestAdamW(StochasticRoundingAdamW):
    rounding = "nearest"


class KahanScratchAdamW(StochasticRoundingAdamW):
    """Kahan-compensated bfloat16 parameters, the compensation kept in a buffer and the gradient used as scratch
    for it (as torch-optimi's ``kahan_sum``)."""

    def _apply(self, p, state, m, denominator, step_size, decay):
        comp = state.setdefault("kahan_comp", torch.zeros_like(p))
        p.mul_(1 - decay)
        update = -step_size * m / denominator
        comp.add_(update.to(comp.dtype))
        p.grad.copy_(p)
        p.add_(comp)
        comp.add_(p.grad.sub_(p))


class KahanAdamW(StochasticRoundingAdamW):
    """Kahan-compensated bfloat16 parameters: the whole step (decay and update, in float32) is added to the
    compensation ``kahan_comp`` (bfloat16), the compensation to the parameters, and what that rounding left
    out is kept in the compensation; the scratch is a tensor of its own."""

    carries = True  # False: the compensation is dropped after each step
    decay_outside = False  # True: the decay applied to the bfloat16 parameters outside it, as torch-optimi's

    def _apply(self, p, state, m, denominator, step_size, decay):
        comp = state.setdefault("kahan_comp", torch.zeros_like(p))
        if self.decay_outside:
            p.mul_(1 - decay)
        delta = -step_size * m / denominator
        if not self.decay_outside:
            delta -= decay * p.float()
        comp.add_(delta.to(comp.dtype))
        before = p.clone()
        p.add_(comp)
        comp.add_(before.sub_(p)) if self.carries else comp.zero_()


class KahanDroppingAdamW(KahanAdamW):
    carries = False


class KahanDecayOutsideAdamW(KahanAdamW):
    decay_outside = True
