"""MLX optimizers for the tests: a hidden defect in MLX's own AdamW."""

from __future__ import annotations

import mlx.optimizers as optim


class AdamWDecayAfter(optim.AdamW):
    """MLX's AdamW, but the decay multiplies the parameter the Adam step already moved (``decay_point=after``)."""

    def apply_single(self, gradient, parameter, state):
        lr = self.learning_rate.astype(gradient.dtype)
        moved = optim.Adam.apply_single(self, gradient, parameter, state)
        return moved * (1 - lr * self.weight_decay)
