"""TensorFlow with Keras 3: Keras optimizers, plugins, the spec's TF namespace, the compiled spec, its Keras AdamW.

Keras gets the TensorFlow backend, and TF's C++ logging is kept to errors;
the absl lines that TensorFlow's import writes to stderr whatever that
setting (the oneDNN notice) are dropped.
Subjects run in float32 by default: Keras drifts in float64 through
tensorflow#35938 (``docs/DEVIATIONS.md``).
"""

from optspec.adapters.frameworks import Framework

FRAMEWORK = Framework(name="tensorflow", modules=("tensorflow", "keras"), extra="tensorflow",
                      default_dtype="float32", native_convention="keras",
                      environment={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"},
                      import_noise=(r"WARNING: All log messages before absl::InitializeLog\(\) is called",
                                    r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] "))
