"""tf-keras (Keras 2 on TensorFlow 2): ``tf_keras.optimizers``, ``tf_keras.optimizers.legacy`` and plugins.

Keras 2 is still what many TensorFlow code bases train with (``tf.keras``
where ``TF_USE_LEGACY_KERAS=1``, and transformers' TF optimizers).  Its
arrays are TensorFlow's, through the ``tensorflow`` adapter's.  Subjects run
in float32 by default, as Keras 3's: the legacy optimizers hold their
hyperparameters in float32 variables, and the others pass β through a float32
constant (``tf.cast`` of a Python float) into the bias correction, so in
float64 they are rejected (``docs/DEVIATIONS.md``).
"""

import importlib

from optspec.adapters.frameworks import Framework
from optspec.adapters.tensorflow import FRAMEWORK as TENSORFLOW


def _version(tf_keras) -> str:
    return f"{tf_keras.__version__} on tensorflow {importlib.import_module('tensorflow').__version__}"


FRAMEWORK = Framework(name="tf_keras", modules=("tf_keras",), extra="tf-keras", default_dtype="float32",
                      native_convention="keras", describe_version=_version,
                      environment={"TF_CPP_MIN_LOG_LEVEL": "2"}, import_noise=TENSORFLOW.import_noise)
