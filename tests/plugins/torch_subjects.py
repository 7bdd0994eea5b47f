"""torch drop-ins for AdamW: a faithful one, and ones with exactly one deviation each."""

from __future__ import annotations

import math
import os
import pathlib
import re
import signal
import warnings

import torch


class ReferenceAdamW(torch.optim.Optimizer):
    """A plain re-implementation of torch's AdamW; ``deviation`` names one defect to inject."""

    deviation: str | None = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))
        for group in self.param_groups:  # lr_0 of each group, for the paper's schedule-scaled decay
            group.setdefault("initial_lr", group["lr"])

    @torch.no_grad()
    def step(self, closure=None):
        d = self.deviation
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["maximize"] and d != "ignore_maximize":
                    g = -g
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float64)
                    moment_dtype = torch.bfloat16 if d == "bf16_second_moment" else p.dtype
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=moment_dtype)
                    state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = int(state["step"].item())
                if d == "l2":
                    g = g + wd * p
                elif d == "decay_unscaled":
                    p.mul_(1 - wd)
                elif d == "schedule_decay":
                    p.mul_(1 - lr / group["initial_lr"] * wd)
                elif d == "previous_lr_decay":  # the decay reads the lr the schedule set one step before
                    p.mul_(1 - state.get("previous_lr", lr) * wd)
                    state["previous_lr"] = lr
                elif d != "decay_after":
                    p.mul_(1 - lr * wd)
                if d == "mutate_grad":
                    p.grad.mul_(0.5)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.copy_(v * beta2 + (1 - beta2) * g.to(v.dtype) * g.to(v.dtype))
                tb = t - 1 if d == "bias_off_by_one" and t > 1 else t + 1 if d == "bias_one_early" else t
                bc1, bc2 = (1.0, 1.0) if d == "no_bias_correction" else (1 - beta1**tb, 1 - beta2**tb)
                if d == "beta2_bias_lag" and t > 1:  # only the second moment's correction lags
                    bc2 = 1 - beta2 ** (t - 1)
                second = v.to(p.dtype)
                if group["amsgrad"]:
                    if d == "amsgrad_corrected":
                        torch.maximum(state["max_exp_avg_sq"], second / bc2, out=state["max_exp_avg_sq"])
                        second = state["max_exp_avg_sq"] * bc2
                    else:
                        torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
                        second = state["max_exp_avg_sq"]
                if d == "epsilon_hat":
                    p.addcdiv_(m, second.sqrt() + eps, value=-lr * math.sqrt(bc2) / bc1)
                elif d == "epsilon_inside":
                    p.addcdiv_(m, (second / bc2 + eps).sqrt(), value=-lr / bc1)
                elif d == "epsilon_clamp":  # heavyball: max(sqrt(v_hat), eps) in place of sqrt(v_hat) + eps
                    p.addcdiv_(m, (second.sqrt() / math.sqrt(bc2)).clamp(min=eps), value=-lr / bc1)
                elif d == "constant_in_root":  # a 1e-15 inside the root as well as eps outside it
                    p.addcdiv_(m, (second / bc2 + 1e-15).sqrt() + eps, value=-lr / bc1)
                elif d == "nan":
                    p.fill_(float("nan"))
                elif d == "raises" and t == 2:
                    raise RuntimeError("kernel launch failed")
                elif d == "hangs" and t == 2:
                    while True:
                        pass
                elif d == "segfaults" and t == 3:
                    os.kill(os.getpid(), signal.SIGSEGV)
                elif d == "hangs_in_c" and t == 3:  # C code that holds the GIL: no signal handler runs
                    if marker := os.environ.get("OPTSPEC_TEST_HANG_MARKER"):
                        pathlib.Path(marker).touch()  # tells a test the worker is in the hang
                    re.match(r"(a+)+$", "a" * 64 + "b")
                else:
                    p.addcdiv_(m, second.sqrt() / math.sqrt(bc2) + eps, value=-lr / bc1)
                if d == "decay_after":
                    p.mul_(1 - lr * wd)
        return None


class Float64Internals(ReferenceAdamW):
    """Computes in float64 internally and rounds back: differs from torch only in rounding."""

    internal = torch.float64

    @torch.no_grad()
    def step(self, closure=None):
        originals = {}
        for group in self.param_groups:
            for p in group["params"]:
                originals[p] = (p.data, p.grad)
                p.data = p.data.to(self.internal)
                p.grad = p.grad.to(self.internal)
                for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                    if key in self.state[p]:
                        self.state[p][key] = self.state[p][key].to(self.internal)
        super().step()
        for p, (data, grad) in originals.items():
            data.copy_(p.data.to(data.dtype))
            p.data, p.grad = data, grad
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                self.state[p][key] = self.state[p][key].to(data.dtype)
        return None


class Float32Internals(Float64Internals):
    """Computes in float32 whatever its parameters' dtype, as bitsandbytes' ``p.float()`` does, and keeps
    its state in the parameters' dtype."""

    internal = torch.float32


class Float32State(Float32Internals):
    """Computes in float32 and keeps its state there, whatever its parameters' dtype."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step()
        for state in self.state.values():
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                state[key] = state[key].to(torch.float32)
        return None


def _defective(name: str) -> type:
    return type(f"AdamW_{name}", (ReferenceAdamW,), {"deviation": name})


DEVIATIONS = (
    "l2", "decay_after", "no_bias_correction", "epsilon_hat", "epsilon_inside", "decay_unscaled",
    "bias_off_by_one", "amsgrad_corrected", "bf16_second_moment", "ignore_maximize",
)
#: Real-world defects that no convention knob names: a diagnosis must not put them down to precision.
UNNAMED_DEFECTS = ("epsilon_clamp", "constant_in_root", "beta2_bias_lag", "bias_off_by_one", "bias_one_early",
                   "previous_lr_decay")
for _name in (*DEVIATIONS, *UNNAMED_DEFECTS, "nan", "raises", "hangs", "mutate_grad", "schedule_decay", "segfaults", "hangs_in_c"):
    globals()[f"AdamW_{_name}"] = _defective(_name)


class NotAnOptimizer:
    pass


class RefusesAmsgrad(ReferenceAdamW):
    """Raises at construction on ``amsgrad=True``, as DeepSpeed's CPU Adam does (deepspeed/ops/adam/cpu_adam.py)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        if amsgrad:
            raise ValueError("this Adam does not support amsgrad")
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class UnknownKeywordsRefused(ReferenceAdamW):
    """Takes ``**kwargs`` and raises on any key it does not know, so neither amsgrad nor maximize can be given."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, **kwargs):
        if kwargs:
            raise TypeError(f"unknown arguments {sorted(kwargs)}")
        super().__init__(params, lr, betas, eps, weight_decay)


class NoFloat64Kernel(ReferenceAdamW):
    """Steps float32 (and narrower) parameters only, as kernels without a float64 path do."""

    @torch.no_grad()
    def step(self, closure=None):
        if any(p.dtype == torch.float64 for group in self.param_groups for p in group["params"]):
            raise RuntimeError("no kernel for Double")
        return super().step(closure)


class Warns(ReferenceAdamW):
    """Warns at construction, as HF transformers' legacy AdamW does."""

    def __init__(self, params, **kwargs):
        warnings.warn("this optimizer is deprecated", FutureWarning, stacklevel=2)
        super().__init__(params, **kwargs)


class RejectsEverything(ReferenceAdamW):
    def __init__(self, params, **kwargs):
        raise ValueError("unsupported argument betas")


def adamw_without_flags(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """A factory function, not a class, whose signature has no amsgrad or maximize (as HF's legacy AdamW)."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class SwallowsAmsgrad(ReferenceAdamW):
    """Takes ``**kwargs`` and runs without AMSGrad whatever it is given (as bitsandbytes' 32-bit AdamW)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         maximize=kwargs.get("maximize", False))


class TensorLR(torch.optim.AdamW):
    """Keeps every group's lr as a tensor and refuses a float in its place (as torchao does)."""

    def __init__(self, params, lr=1e-3, **kwargs):
        super().__init__(params, lr=lr, foreach=False, **kwargs)
        for group in self.param_groups:
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float64)

    @torch.no_grad()
    def step(self, closure=None):
        if not all(torch.is_tensor(group["lr"]) for group in self.param_groups):
            raise TypeError("lr must stay a tensor: fill it in place")
        return super().step(closure)


class Options(ReferenceAdamW):
    """Requires a vendor option, as DeepSpeed's ``adamw_mode``: AdamW only with ``adamw_mode=True``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False, *, adamw_mode):
        if adamw_mode is not True:
            raise ValueError("this test subject is AdamW only with adamw_mode=True")
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


def adamw_without_decay(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, maximize=False):
    """torch's AdamW with its weight decay switched off, from a factory that takes no ``weight_decay``."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=0.0, amsgrad=amsgrad,
                             maximize=maximize)


def adamw_hiding_decay(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, maximize=False):
    """torch's AdamW with a weight decay of 0.05 that its factory does not take: no value it plausibly has."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=0.05, amsgrad=amsgrad,
                             maximize=maximize)
