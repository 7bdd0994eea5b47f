"""JAX: optax transformations, plugins, the compiled spec (``jax.jit``) and its optax AdamW.

x64 is enabled on import, so that float64 is real.
"""

from optspec.adapters.frameworks import Framework


def _enable_x64(jax) -> None:
    jax.config.update("jax_enable_x64", True)


FRAMEWORK = Framework(name="jax", modules=("jax", "optax"), extra="jax", native_convention="optax",
                      configure=_enable_x64, fork_safe=True, shardings=("mesh",),
                      sharding_requires={"orbax.checkpoint": "saves and restores a mesh's optimizer state"})
