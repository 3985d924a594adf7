"""Row-sparse lookups and RowSparseAdam: only looked-up rows change, as Adam would change them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import row_sparse


def _table(rows=6, dim=3, seed=0):
    values = np.random.default_rng(seed).normal(size=(rows, dim)).astype("float32")
    return keras.Variable(values, name="table"), values


def _step(optimizer, table, ids, upstream):
    with tf.GradientTape() as tape:
        vectors = row_sparse.lookup(table, tf.constant(ids))
        loss = tf.reduce_sum(vectors * upstream)
    (gradient,) = tape.gradient(loss, [table])
    optimizer.apply([gradient], [table])
    return gradient


def test_a_lookup_reads_rows_and_its_gradient_names_only_those_rows():
    table, values = _table()
    np.testing.assert_array_equal(row_sparse.lookup(table, tf.constant([4, 1])), values[[4, 1]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(row_sparse.lookup(table, tf.constant([[4], [1]])))
    (gradient,) = tape.gradient(loss, [table])
    assert isinstance(gradient, tf.IndexedSlices)
    assert sorted(gradient.indices.numpy().ravel().tolist()) == [1, 4]


def test_rows_outside_the_batch_and_their_moments_do_not_change():
    table, values = _table()
    optimizer = row_sparse.RowSparseAdam(learning_rate=0.1)
    upstream = np.ones((2, 3), "float32")
    _step(optimizer, table, [0, 2], upstream)
    after_first = table.numpy()
    _step(optimizer, table, [2, 5], upstream)
    after = table.numpy()
    untouched = [1, 3, 4]
    np.testing.assert_array_equal(after[untouched], values[untouched])
    np.testing.assert_array_equal(after[0], after_first[0])  # not in the second batch
    assert not np.allclose(after[[2, 5]], values[[2, 5]])
    m, v = optimizer._momentums[0].numpy(), optimizer._velocities[0].numpy()  # pylint: disable=protected-access
    assert not m[untouched].any() and not v[untouched].any()


def test_with_every_row_in_every_batch_it_is_adam():
    sparse_table, values = _table(rows=4)
    dense_table = keras.Variable(values.copy(), name="dense")
    sparse_adam = row_sparse.RowSparseAdam(learning_rate=0.05, beta_2=0.99, epsilon=1e-4)
    adam = keras.optimizers.Adam(learning_rate=0.05, beta_2=0.99, epsilon=1e-4)
    rng = np.random.default_rng(1)
    for _ in range(5):
        # Each row once, plus row 2 again: duplicates add up as in a dense gradient.
        ids = [3, 0, 2, 1, 2]
        upstream = rng.normal(size=(5, 3)).astype("float32")
        gradient = _step(sparse_adam, sparse_table, ids, upstream)
        assert isinstance(gradient, tf.IndexedSlices)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(tf.convert_to_tensor(dense_table), ids) * upstream)
        adam.apply([tf.convert_to_tensor(tape.gradient(loss, [dense_table])[0])], [dense_table])
    np.testing.assert_allclose(sparse_table.numpy(), dense_table.numpy(), rtol=1e-5, atol=1e-6)


def test_dense_gradients_get_keras_adam_unchanged():
    a = keras.Variable(np.ones(3, "float32"))
    b = keras.Variable(np.ones(3, "float32"))
    gradient = tf.constant([0.5, -1.0, 2.0])
    row_sparse.RowSparseAdam(learning_rate=0.1).apply([gradient], [a])
    keras.optimizers.Adam(learning_rate=0.1).apply([gradient], [b])
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_it_serializes_with_its_settings_and_refuses_dense_options():
    optimizer = row_sparse.RowSparseAdam(learning_rate=0.004, beta_2=0.99, epsilon=1e-4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is row_sparse.RowSparseAdam
    assert restored.get_config()["beta_2"] == 0.99
    with pytest.raises(ValueError, match="weight decay"):
        row_sparse.RowSparseAdam(weight_decay=0.01)
    with pytest.raises(ValueError, match="amsgrad"):
        row_sparse.RowSparseAdam(amsgrad=True)
