"""TensorFlow tensors: tf-keras steps ``tf.Variable`` objects, so its arrays are the ``tensorflow`` adapter's."""

from optspec.adapters.tensorflow.arrays import asarray, devices, dtype, namespace

__all__ = ["asarray", "devices", "dtype", "namespace"]
