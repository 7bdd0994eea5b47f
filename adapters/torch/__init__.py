"""PyTorch: ``torch.optim`` optimizers (for-loop, foreach, fused), plugins, the compiled spec and its AdamW."""

from optspec.adapters.frameworks import Framework

#: PyPI's torch is the CUDA build (several GB); ``2.13.0+cpu`` from PyTorch's index sorts above it.
FRAMEWORK = Framework(name="torch", modules=("torch",), extra="torch",
                      pip_options="--extra-index-url https://download.pytorch.org/whl/cpu", fork_safe=True,
                      lazy_modules=("torch._dynamo",), shardings=("fsdp2", "zero1", "ddp"),
                      launcher="torchrun")
