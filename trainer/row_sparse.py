"""Row-sparse training of id-indexed tables: a step costs the batch, not the vocabulary.

Two pieces, both needed:

- ``lookup(table, ids)`` reads rows through the ``tf.Variable``'s own sparse
  read (ResourceGather). ``keras.ops.take`` on a Keras variable reads the
  whole variable densely first; a dense read followed by a scatter update of
  the same variable in one step makes TensorFlow copy the whole variable.
  The sparse read's gradient is a ``tf.IndexedSlices`` of the looked-up rows.
- ``RowSparseAdam`` applies such a gradient to those rows only: their first
  and second moments and their values. Keras 3's Adam turns the sparse
  gradient dense (``gradient - m``) and updates every row of the table and
  both its moment tables on every step. Dense gradients (projections, the
  rating head) get Keras' Adam unchanged.

Under dense Adam a row sitting out a step still moves (its first moment
decays but is not zero) and its moments decay. Skipping that, as the "lazy"
Adam of TF Addons and TorchRec/FBGEMM does, moves a rarely seen id a tenth
as far per gradient, which cost accuracy on the data sets of mostly rare ids
(``benchmarks/results/row_updates.json``). ``RowSparseAdam`` catches a row up
in closed form when it is next looked up, and ``CatchUp`` catches every row
up before each evaluation, so the trained table is dense Adam's at a
batch's cost per step.
"""

import weakref

import keras
import tensorflow as tf


def backing_variable(variable):
    """The ``tf.Variable`` behind a Keras 3 variable (or the variable itself)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def lookup(table, ids, training=None):
    """Rows ``ids`` of ``table`` (a Keras variable), read sparsely; ids of any shape.

    In training, a table that a catching-up ``RowSparseAdam`` trains has those
    rows caught up first, so the forward pass reads what dense Adam would.
    """
    variable = backing_variable(table)
    optimizer = getattr(variable, "_row_sparse_optimizer", lambda: None)()
    if training is True and optimizer is not None:
        optimizer.catch_up_rows(table, ids)
    return tf.gather(variable, ids)


@keras.saving.register_keras_serializable(package="memrec")
class RowSparseAdam(keras.optimizers.Adam):
    """Adam whose update for a gradient of some rows touches those rows only.

    Same arguments as ``keras.optimizers.Adam``, plus ``catch_up``. With it
    (the default), each row remembers the step it last changed. When a
    training step reads it (``lookup(..., training=True)``), it first gets
    what dense Adam would have done to it in the steps it sat out: its
    moments decay, and it moves along its decaying first moment, a
    geometric sum in closed form. For a rare id that coasting is most of
    what one gradient moves it. ``catch_up_all`` does the same to every row
    (``CatchUp`` calls it before each evaluation). The sum takes the step
    size of the row's last change for all of it, and treats ``epsilon`` as
    decaying with ``sqrt(v)``; both differ from dense Adam only a little
    (the step size while bias correction still moves it, ``epsilon`` where
    it is not small beside ``sqrt(v)``). The memory: one int32 per row of
    each id-indexed table.

    ``catch_up=False`` is the "lazy" Adam of TF Addons' LazyAdam and of
    TorchRec/FBGEMM's fused optimizers: rows sitting out keep their moments,
    and an id seen once moves about a tenth as far as under dense Adam.
    ``amsgrad`` and weight decay are dense by nature and refused, so nothing
    silently scans a table.
    """

    def __init__(self, *args, catch_up: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("RowSparseAdam has no amsgrad (its running maximum is per row)")
        if self.weight_decay:
            raise ValueError("RowSparseAdam has no weight decay (it would shrink every row)")
        if catch_up and self.beta_1**2 >= self.beta_2:
            # The coasting sum's ratio beta_1 / sqrt(beta_2) must be below 1.
            raise ValueError(
                f"RowSparseAdam's catch-up needs beta_1 ** 2 < beta_2, got "
                f"beta_1={self.beta_1}, beta_2={self.beta_2}"
            )
        self.catch_up = catch_up
        # Variables whose rows a training read catches up (``lookup``); a
        # Python set filled while a train step is traced, read by the update
        # traced after the reads of the same step.
        self._caught_up_on_read = set()
        self._caught_up_at = None

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Which variables get row gradients is known only when a step is
        # traced, so every table-shaped variable gets a step per row; the dense
        # ones are small.
        self._last_steps = [
            self.add_variable((int(v.shape[0]),), dtype="int32", name=f"{v.name}_last_step")
            if self.catch_up and len(v.shape) >= 2
            else None
            for v in var_list
        ]
        for variable, last_steps in zip(var_list, self._last_steps, strict=True):
            if last_steps is not None:
                # A weak reference: a variable must not keep (or checkpoint) its optimizer.
                backing_variable(variable)._row_sparse_optimizer = weakref.ref(self)

    def get_config(self):
        return {**super().get_config(), "catch_up": self.catch_up}

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        if not isinstance(gradient, tf.IndexedSlices):
            super().update_step(gradient, variable, learning_rate)
            if self._last_steps[index] is not None:
                # Every row is current after a dense update: nothing to catch up.
                last_steps = backing_variable(self._last_steps[index])
                last_steps.assign(tf.fill(tf.shape(last_steps), self._next_step()))
            return
        dtype = variable.dtype
        # A row looked up several times in the batch gets the sum of its gradients.
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, dtype), positions, tf.shape(rows)[0]
        )
        step = self._next_step()
        if self._last_steps[index] is not None and index not in self._caught_up_on_read:
            self._catch_up(index, rows, step, learning_rate, stamp=step)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        m = backing_variable(self._momentums[index])
        v = backing_variable(self._velocities[index])
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        step_rows = (
            self._alpha(learning_rate, step, dtype) * m_rows / (tf.sqrt(v_rows) + self.epsilon)
        )
        backing_variable(variable).scatter_sub(tf.IndexedSlices(step_rows, rows))

    def _next_step(self):
        """The number of the step being taken (Keras counts from 1 in ``update_step``)."""
        return tf.cast(self.iterations + 1, "int32")

    def _alpha(self, learning_rate, step, dtype):
        step = tf.cast(step, dtype)
        return (
            tf.cast(learning_rate, dtype)
            * tf.sqrt(1 - tf.pow(tf.cast(self.beta_2, dtype), step))
            / (1 - tf.pow(tf.cast(self.beta_1, dtype), step))
        )

    def _catch_up(self, index, rows, step, learning_rate, stamp):
        """What dense Adam does to ``rows`` in the steps between each row's last
        change and ``step``: their moments decay, and they coast on the first
        moment. Stamps them as changed at ``stamp``."""
        variable = self._trainable_variables[index]
        dtype = variable.dtype
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        m = backing_variable(self._momentums[index])
        v = backing_variable(self._velocities[index])
        last_steps = backing_variable(self._last_steps[index])
        m_rows = tf.gather(m, rows)
        v_rows = tf.gather(v, rows)
        last = tf.reshape(tf.gather(last_steps, rows), [-1] + [1] * (len(variable.shape) - 1))
        # Steps each row sat out: after its last change, before ``step``.
        missed = tf.cast(tf.maximum(step - 1 - last, 0), dtype)
        ratio = beta_1 / tf.sqrt(beta_2)
        coasting = ratio * (1 - tf.pow(ratio, missed)) / (1 - ratio)
        # The coasting happens mostly just after the row's last change: the
        # step size of that time, which bias correction made smaller early on.
        alpha = self._alpha(learning_rate, last + 1, dtype)
        moved = alpha * coasting * m_rows / (tf.sqrt(v_rows) + self.epsilon)
        m.scatter_update(tf.IndexedSlices(tf.pow(beta_1, missed) * m_rows, rows))
        v.scatter_update(tf.IndexedSlices(tf.pow(beta_2, missed) * v_rows, rows))
        backing_variable(variable).scatter_sub(tf.IndexedSlices(moved, rows))
        last_steps.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(rows), stamp), rows))

    def catch_up_rows(self, variable, ids):
        """Catches rows ``ids`` of ``variable`` up for the step about to be taken,
        whose update then skips its own catch-up of this variable."""
        index = self._get_variable_index(variable)
        self._caught_up_on_read.add(index)
        rows, _ = tf.unique(tf.reshape(ids, [-1]))
        step = self._next_step()
        self._catch_up(index, rows, step, self.learning_rate, stamp=step)

    def catch_up_all(self, chunk_rows: int = 1 << 20):
        """Brings every row of the row-sparse tables to the current step, a
        chunk of rows at a time so memory stays bounded by the chunk."""
        if not (self.built and self.catch_up) or self._caught_up_at == int(self.iterations):
            return
        step = self._next_step()
        learning_rate = self.learning_rate
        # Variables a dense gradient updates are stamped current every step,
        # so passing over them (they are small) changes nothing.
        for index, last_steps in enumerate(self._last_steps):
            if last_steps is None:
                continue
            rows = int(last_steps.shape[0])
            for start in range(0, rows, chunk_rows):
                chunk = tf.range(start, min(start + chunk_rows, rows), dtype="int32")
                self._catch_up(index, chunk, step, learning_rate, stamp=step - 1)
        # Until the next step every row stays caught up: a second call (the
        # epoch's end after its evaluation) need not pass over the tables.
        self._caught_up_at = int(self.iterations)


class CatchUp(keras.callbacks.Callback):
    """Catches every row up before the model is evaluated and at each epoch's
    end, so what is scored, kept by early stopping or exported is what dense
    Adam would hold. Costs one pass over the tables each time."""

    def _catch_up(self):
        optimizer = getattr(self.model, "optimizer", None)
        if isinstance(optimizer, RowSparseAdam):
            optimizer.catch_up_all()

    def on_test_begin(self, logs=None):
        self._catch_up()

    def on_epoch_end(self, epoch, logs=None):
        self._catch_up()
