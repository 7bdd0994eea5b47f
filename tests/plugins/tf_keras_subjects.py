"""tf-keras optimizers for the tests: hidden defects in Keras 2's own Adam, legacy and new."""

from __future__ import annotations

import tensorflow as tf
import tf_keras


class LegacyAdamEpsilonCorrected(tf_keras.optimizers.legacy.Adam):
    r"""The legacy Adam with ε added to :math:`\sqrt{\hat v}` (torch's placement), not to :math:`\sqrt{v}`:
    ``var -= lr * m_hat / (sqrt(v_hat) + eps)`` (``epsilon=corrected``)."""

    def _resource_apply_dense(self, grad, var, apply_state=None):
        dtype = var.dtype.base_dtype
        t = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = (tf.cast(self._get_hyper(name, dtype), dtype) for name in ("beta_1", "beta_2"))
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m_t = m.assign(beta_1 * m + (1 - beta_1) * grad)
        v_t = v.assign(beta_2 * v + (1 - beta_2) * tf.square(grad))
        m_hat, v_hat = m_t / (1 - tf.pow(beta_1, t)), v_t / (1 - tf.pow(beta_2, t))
        return var.assign_sub(self._decayed_lr(dtype) * m_hat / (tf.sqrt(v_hat) + self.epsilon))


class AdamWDecayAfter(tf_keras.optimizers.AdamW):
    """tf-keras' AdamW, but the decay multiplies the parameter the Adam step already moved
    (``decay_point=after``)."""

    def _apply_weight_decay(self, variables):
        pass

    def update_step(self, gradient, variable):
        super().update_step(gradient, variable)
        lr = tf.cast(self.learning_rate, variable.dtype)
        variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype) * lr)
