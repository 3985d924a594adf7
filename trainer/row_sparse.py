"""Row-sparse training of id-indexed tables: a step costs the batch, not the vocabulary.

Two pieces, both needed:

- ``lookup(table, ids)`` reads rows through the ``tf.Variable``'s own sparse
  read (ResourceGather). ``keras.ops.take`` on a Keras variable reads the
  whole variable densely first; a dense read followed by a scatter update of
  the same variable in one step makes TensorFlow copy the whole variable.
  The sparse read's gradient is a ``tf.IndexedSlices`` of the looked-up rows.
- ``RowSparseAdam`` applies such a gradient to those rows only: their first
  and second moments and their values (the "lazy" Adam of TF Addons'
  LazyAdam and of TorchRec/FBGEMM's fused row-wise optimizers). Keras 3's
  Adam turns the sparse gradient dense (``gradient - m``) and updates every
  row of the table and both its moment tables on every step. Dense
  gradients (projections, the rating head) get Keras' Adam unchanged.

Rows not in a batch keep their moments as they were, rather than decaying
them towards zero as dense Adam does; that is the known difference of lazy
Adam, and why ``benchmarks.quality`` compares both.
"""

import keras
import tensorflow as tf


def backing_variable(variable):
    """The ``tf.Variable`` behind a Keras 3 variable (or the variable itself)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def lookup(table, ids):
    """Rows ``ids`` of ``table`` (a Keras variable), read sparsely; ids of any shape."""
    return tf.gather(backing_variable(table), ids)


@keras.saving.register_keras_serializable(package="memrec")
class RowSparseAdam(keras.optimizers.Adam):
    """Adam whose update for a gradient of some rows touches those rows only.

    Same arguments as ``keras.optimizers.Adam``; ``amsgrad`` and weight decay
    are dense by nature and refused, so nothing silently scans a table.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("RowSparseAdam has no amsgrad (its running maximum is per row)")
        if self.weight_decay:
            raise ValueError("RowSparseAdam has no weight decay (it would shrink every row)")

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = (
            tf.cast(learning_rate, dtype)
            * tf.sqrt(1 - tf.pow(beta_2, step))
            / (1 - tf.pow(beta_1, step))
        )
        # A row looked up several times in the batch gets the sum of its gradients.
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, dtype), positions, tf.shape(rows)[0]
        )
        index = self._get_variable_index(variable)
        m = backing_variable(self._momentums[index])
        v = backing_variable(self._velocities[index])
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        step_rows = alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon)
        backing_variable(variable).scatter_sub(tf.IndexedSlices(step_rows, rows))
