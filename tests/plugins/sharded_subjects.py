"""torch AdamWs whose defects only a sharded run shows: each conforms in one process (world size 1).

:class:`PlainAdamW` is a correct AdamW in torch's convention (decay
``θ ← θ(1 - lr·λ)`` before the step, ``ε`` added to :math:`\\sqrt{\\hat v}`,
``amsgrad`` and ``maximize`` not offered), written with elementwise tensor
methods on each DTensor parameter's local shard, as hand-written optimizers
under FSDP2 do.  The others
change one thing where a rank other than 0 runs it, but :class:`FirstDtypeOnlyAdamW`, which a model of
several dtypes shows (the sharded ``mixed-dtypes`` case).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's shard on this rank, or the tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _on_a_later_rank() -> bool:
    """Whether this process is a rank other than the first of a group of two or more."""
    return dist.is_available() and dist.is_initialized() and dist.get_rank() > 0


class PlainAdamW(torch.optim.Optimizer):
    """AdamW, torch's convention, one tensor at a time."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def bias_correction_step(self, step: int) -> int:
        return step

    def new_state(self, param: torch.Tensor) -> dict:
        # shaped as the parameter (a DTensor for a DTensor), so that a distributed checkpoint can reshard it
        return {"step": 0, "exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state.update(self.new_state(param))
                state["step"] += 1
                t = self.bias_correction_step(state["step"])
                local, grad = _local(param), _local(param.grad)
                exp_avg, exp_avg_sq = _local(state["exp_avg"]), _local(state["exp_avg_sq"])
                local.mul_(1 - group["lr"] * group["weight_decay"])
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denominator = (exp_avg_sq.sqrt() / (1 - beta2 ** t) ** 0.5).add_(group["eps"])
                local.addcdiv_(exp_avg, denominator, value=-group["lr"] / (1 - beta1 ** t))


class LaggingStepAdamW(PlainAdamW):
    """Every rank but the first takes its bias correction from a step count one behind (from step 2 on),
    as a per-rank counter that missed a step would."""

    def bias_correction_step(self, step):
        return step - 1 if _on_a_later_rank() and step > 1 else step


class GlobalShapeStateAdamW(PlainAdamW):
    """The state of a DTensor parameter is made with its global shape, then stepped with the local shard
    (NVIDIA/TransformerEngine#2424's defect): a rank whose shard is not the whole tensor fails."""

    def new_state(self, param):
        return {"step": 0, "exp_avg": torch.zeros(param.shape, dtype=param.dtype),
                "exp_avg_sq": torch.zeros(param.shape, dtype=param.dtype)}


class ShardStateLostOnResume(PlainAdamW):
    """Every rank but the first loses its state when a checkpoint is loaded (it starts again from zero)."""

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if _on_a_later_rank():
            self.state.clear()


class FirstDtypeOnlyAdamW(PlainAdamW):
    """Steps only the parameters of the first parameter's dtype, as a kernel that groups tensors by dtype
    and runs the first group alone would; the others keep their values.  A model of one dtype cannot
    show it."""

    @torch.no_grad()
    def step(self, closure=None):
        first = self.param_groups[0]["params"][0].dtype
        kept = [(p, p.grad) for group in self.param_groups for p in group["params"] if p.dtype != first]
        for param, _ in kept:
            param.grad = None
        super().step(closure)
        for param, grad in kept:
            param.grad = grad


def _record_pid() -> None:
    """Writes this process's pid into ``$OPTSPEC_TEST_RANK_PIDS`` (a directory), where a test looks for
    processes left behind."""
    import os

    if (directory := os.environ.get("OPTSPEC_TEST_RANK_PIDS")):
        with open(os.path.join(directory, str(os.getpid())), "w"):
            pass


class _FaultyRankAdamW(PlainAdamW):
    """Rank 1 meets :meth:`fault` at its second step; every process that constructs it records its pid."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _record_pid()

    def bias_correction_step(self, step):
        if step == 2 and dist.is_initialized() and dist.get_rank() == 1:
            self.fault()
        return step

    def fault(self) -> None:
        raise NotImplementedError


class CrashingRankAdamW(_FaultyRankAdamW):
    """Rank 1 kills itself (SIGKILL) at its second step, as a segmentation fault in a kernel would end it."""

    def fault(self):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class HangingRankAdamW(_FaultyRankAdamW):
    """Rank 1 never finishes its second step (it sleeps), as a rank stuck in a lock would."""

    def fault(self):
        import time

        time.sleep(3600)
