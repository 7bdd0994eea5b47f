"""MLX (``mlx[cpu]`` on Linux, Metal on Apple silicon): ``mlx.optimizers`` and plugins.

Subjects run in float32 by default, MLX's own: its GPU has no float64.  Its
AdamW and Adam skip bias correction unless ``bias_correction=True``, which
is BERT's rule (``docs/DEVIATIONS.md``).
"""

from optspec.adapters.frameworks import Framework

FRAMEWORK = Framework(name="mlx", modules=("mlx.core", "mlx.optimizers"), extra="mlx", default_dtype="float32",
                      native_convention="bert")
