"""torch AdamWs that keep m and v as 8-bit blockwise codes, in bitsandbytes' layout, written here from its
description (dequantize, update in float32, re-quantize to the nearest code): a faithful one, and one per
defect.

The state of a parameter of at least ``MIN_SIZE`` elements is ``state1``/``qmap1``/``absmax1`` (m, the
signed dynamic map) and ``state2``/``qmap2``/``absmax2`` (v, the unsigned one), as
``bitsandbytes.optim.AdamW8bit`` holds it; a smaller one keeps float32 ``exp_avg``/``exp_avg_sq``.
"""

from __future__ import annotations

import math

import torch

MIN_SIZE = 4096


def dynamic_map(signed: bool) -> torch.Tensor:
    """bitsandbytes' dynamic map (``create_dynamic_map``), 7 exponent bits of 8."""
    data = []
    for i in range(7):
        items = 2**i + 1 if signed else 2 ** (i + 1) + 1
        grid = torch.linspace(0.1, 1, items, dtype=torch.float32)
        means = (grid[:-1] + grid[1:]) / 2.0
        data += (10 ** (i - 6) * means).tolist() + ((-(10 ** (i - 6)) * means).tolist() if signed else [])
    data += [0.0, 1.0] + [0.0] * (256 - len(data) - 2)
    return torch.tensor(sorted(data), dtype=torch.float32)


class Blockwise8bitAdamW(torch.optim.Optimizer):
    """AdamW (torch's convention) with 8-bit blockwise m and v; the class attributes inject one defect each."""

    block_size = 256
    min_size: int | None = MIN_SIZE  # None: float32 state at every size
    signed_second_moment = False  # v quantized with the signed map
    stale_scale = False  # each block's scale kept from the first step
    codes_before_update = False  # stores the codes of the state this step started from

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.signed, self.unsigned = dynamic_map(True), dynamic_map(False)

    def _quantize(self, x: torch.Tensor, code: torch.Tensor, absmax: torch.Tensor | None):
        flat = x.reshape(-1)
        blocks = [flat[k:k + self.block_size] for k in range(0, flat.numel(), self.block_size)]
        scale = absmax if absmax is not None else torch.stack([b.abs().max() for b in blocks])
        scaled = torch.cat([b / s if s > 0 else torch.zeros_like(b) for b, s in zip(blocks, scale)])
        codes = torch.bucketize(scaled.clamp(-1, 1), (code[:-1] + code[1:]) / 2).to(torch.uint8)
        return codes.reshape(x.shape), scale

    def _dequantize(self, codes: torch.Tensor, code: torch.Tensor, absmax: torch.Tensor) -> torch.Tensor:
        scale = absmax.repeat_interleave(self.block_size)[:codes.numel()]
        return (code[codes.reshape(-1).long()] * scale).reshape(codes.shape)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad.float(), self.state[p]
                quantized = self.min_size is not None and p.numel() >= self.min_size
                if not state:
                    state["step"] = 0
                    if quantized:
                        second = self.signed if self.signed_second_moment else self.unsigned
                        blocks = -(-p.numel() // self.block_size)
                        for n, code in ((1, self.signed), (2, second)):
                            state[f"state{n}"] = torch.full(p.shape, int(torch.argmin(code.abs())), dtype=torch.uint8)
                            state[f"qmap{n}"], state[f"absmax{n}"] = code, torch.zeros(blocks)
                    else:
                        state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(g), torch.zeros_like(g)
                state["step"] += 1
                t = state["step"]
                if quantized:
                    m = self._dequantize(state["state1"], state["qmap1"], state["absmax1"])
                    v = self._dequantize(state["state2"], state["qmap2"], state["absmax2"])
                    before = (state["state1"].clone(), state["absmax1"].clone(),
                              state["state2"].clone(), state["absmax2"].clone())
                else:
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                p32 = p.float().mul_(1 - lr * wd)
                p32.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
                p.copy_(p32)
                if quantized:
                    for n, value in ((1, m), (2, v)):
                        keep = state[f"absmax{n}"] if self.stale_scale and t > 1 else None
                        state[f"state{n}"], state[f"absmax{n}"] = self._quantize(value, state[f"qmap{n}"], keep)
                    if self.codes_before_update:
                        state["state1"], state["absmax1"], state["state2"], state["absmax2"] = before
        return None


class Block128(Blockwise8bitAdamW):
    block_size = 128


class SignedSecondMoment(Blockwise8bitAdamW):
    signed_second_moment = True


class StaleScale(Blockwise8bitAdamW):
    stale_scale = True


class CodesBeforeUpdate(Blockwise8bitAdamW):
    codes_before_update = True


class FloatStateAdamW(Blockwise8bitAdamW):
    """The same kernel with its state in float32 at every size: the float counterpart a benchmark compares."""

    min_size = None


class CodesBeyondItsCodebook(Blockwise8bitAdamW):
    """A hostile one: its first moment's codebook has 16 values, and its codes run to 255."""

    def step(self, closure=None):
        for state in self.state.values():  # it steps with its whole map, and shows a 16-value one
            if "qmap1" in state:
                state["qmap1"] = self.signed
        super().step(closure)
        for state in self.state.values():
            if "qmap1" in state:
                state["qmap1"] = state["qmap1"][::16].clone()
        return None


class ScalesOfNoBlock(Blockwise8bitAdamW):
    """A hostile one: it says its blocks have no elements."""

    def step(self, closure=None):
        super().step(closure)
        for state in self.state.values():
            if "state1" in state:
                state["blocksize"] = 0
        return None
