"""The spec-backed optimizers in the paper's convention (schedule-coupled decay), as plugins."""

from __future__ import annotations

from optspec.adapters import is_available

if is_available("torch"):
    from optspec.adapters.torch import optimizer as spec_torch

    class PaperTorchAdamW(spec_torch.AdamW):
        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, convention="paper", **kwargs)

if is_available("jax"):
    from optspec.adapters.jax import optimizer as spec_optax

    def paper_optax_adamw(*args, **kwargs):
        return spec_optax.adamw(*args, convention="paper", **kwargs)

if is_available("tensorflow"):
    from optspec.adapters.tensorflow import optimizer as spec_keras

    class PaperKerasAdamW(spec_keras.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, convention="paper", **kwargs)
