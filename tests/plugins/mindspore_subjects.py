"""MindSpore optimizers for the tests: an AdamW of the experimental family whose decay skips the learning rate."""

from __future__ import annotations

import mindspore.experimental.optim as experimental
from mindspore import ops


class AdamWDecayWithoutLr(experimental.AdamW):
    """MindSpore's experimental AdamW, but each step first multiplies the parameters by ``1 - weight_decay``
    and runs the step without decay: the decay is not scaled by the learning rate (``decay_scale=none``)."""

    def construct(self, gradients):
        for group in self.param_groups:
            for parameter in group["params"]:
                ops.assign(parameter, parameter * (1 - group["weight_decay"]))
        saved = [group["weight_decay"] for group in self.param_groups]
        for group in self.param_groups:
            group["weight_decay"] = 0.0
        try:
            return super().construct(gradients)
        finally:
            for group, decay in zip(self.param_groups, saved):
                group["weight_decay"] = decay
