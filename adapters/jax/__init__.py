"""JAX: optax transformations, plugins, the compiled spec (``jax.jit``) and its optax AdamW.

x64 is enabled on import, so that float64 is real.
"""

from optspec.adapters.caches import cache_folder
from optspec.adapters.frameworks import Framework


def _configure(jax) -> None:
    """x64 on; and, unless the user keeps compilations elsewhere, XLA's compilations kept between runs in
    optspec's cache (:mod:`optspec.adapters.caches`): each set of hyperparameters and shapes a certification
    runs is one compilation, seconds in all, which JAX then reads back instead (keyed by the program, JAX's
    version and the device)."""
    jax.config.update("jax_enable_x64", True)
    if jax.config.jax_compilation_cache_dir is None and (folder := cache_folder("jax")) is not None:
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


FRAMEWORK = Framework(name="jax", modules=("jax", "optax"), extra="jax", native_convention="optax",
                      configure=_configure, fork_safe=True, shardings=("mesh",),
                      sharding_requires={"orbax.checkpoint": "saves and restores a mesh's optimizer state"})
