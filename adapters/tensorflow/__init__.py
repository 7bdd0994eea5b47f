"""TensorFlow with Keras 3: Keras optimizers, plugins, the spec's TF namespace, the compiled spec, its Keras AdamW.

Keras gets the TensorFlow backend, and TF's C++ logging is kept to errors;
the absl lines that TensorFlow's import writes to stderr whatever that
setting (the oneDNN notice) are dropped.
Subjects run in float32 by default: Keras drifts in float64 through
tensorflow#35938 (``docs/DEVIATIONS.md``).  Keras on another backend (a
``KERAS_BACKEND`` set before optspec runs) is refused, not relabelled.
"""

import os

from optspec.adapters.errors import SetupError
from optspec.adapters.frameworks import Framework


def _require_tensorflow_backend(tensorflow) -> None:
    """Keras must run on TensorFlow: a certificate of Keras on another backend labelled tensorflow is wrong."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise SetupError(f"--framework tensorflow certifies Keras on the TensorFlow backend, but Keras runs on "
                         f"{backend} here (KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')!r}): unset "
                         "KERAS_BACKEND or set it to tensorflow")


FRAMEWORK = Framework(name="tensorflow", modules=("tensorflow", "keras"), extra="tensorflow",
                      default_dtype="float32", native_convention="keras", configure=_require_tensorflow_backend,
                      environment={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"},
                      import_noise=(r"WARNING: All log messages before absl::InitializeLog\(\) is called",
                                    r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] ",
                                    # the second line of the CPU-features notice, where TF_CPP_MIN_LOG_LEVEL
                                    # was not yet set when a plugin imported TensorFlow
                                    r"To enable the following instructions: .* rebuild TensorFlow with the ",
                                    # the full `tensorflow` build (tf-keras requires it) on a machine without CUDA
                                    r"E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit"))
