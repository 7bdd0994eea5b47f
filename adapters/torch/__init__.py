"""PyTorch: ``torch.optim`` optimizers (for-loop, foreach, fused), plugins, the compiled spec and its AdamW."""

from optspec.adapters.frameworks import Framework

FRAMEWORK = Framework(name="torch", modules=("torch",), extra="torch")
