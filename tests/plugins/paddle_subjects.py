"""Paddle optimizers for the tests: an "AdamW" that is Paddle's Adam, whose float ``weight_decay`` is L2."""

from __future__ import annotations

import paddle


class AdamWAsL2(paddle.optimizer.Adam):
    """Named AdamW, but ``weight_decay`` goes into the gradient, through the moments (Adam's L2 rule)."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, parameters=None,
                 weight_decay=0.01, amsgrad=False):
        super().__init__(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                         parameters=parameters, weight_decay=weight_decay, amsgrad=amsgrad)
