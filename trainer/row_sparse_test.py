"""Row-sparse lookups and RowSparseAdam: only looked-up rows change, and after a
catch-up the table is what dense Adam would hold."""

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


def _train_on_zipf_batches(optimizer, steps, catch_up=True, rows=40, dim=3, scale=1.0):
    """Rows drawn with Zipf-like odds, a fixed upstream per row (so the gradient
    does not depend on the weights and dense Adam's trajectory is exact); the
    table's total change."""
    rng = np.random.default_rng(0)
    start = rng.normal(size=(rows, dim)).astype("float32")
    upstream = (scale * rng.normal(size=(rows, dim))).astype("float32")
    odds = 1.0 / np.arange(1, rows + 1)
    table = keras.Variable(start.copy(), name="table")
    for _ in range(steps):
        ids = rng.choice(rows, size=4, p=odds / odds.sum())
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(row_sparse.lookup(table, tf.constant(ids)) * upstream[ids])
        (gradient,) = tape.gradient(loss, [table])
        if not isinstance(optimizer, row_sparse.RowSparseAdam):
            gradient = tf.convert_to_tensor(gradient)
        optimizer.apply([gradient], [table])
    if catch_up and isinstance(optimizer, row_sparse.RowSparseAdam):
        optimizer.catch_up_all()
    return table.numpy() - start


@pytest.mark.parametrize("scale", [1.0, 1e-4])  # gradients far above epsilon, and near it
def test_after_catching_up_the_table_is_dense_adams(scale):
    settings = dict(learning_rate=0.01, beta_2=0.99, epsilon=1e-4)
    dense = _train_on_zipf_batches(keras.optimizers.Adam(**settings), 800, scale=scale)
    caught_up = _train_on_zipf_batches(row_sparse.RowSparseAdam(**settings), 800, scale=scale)
    lazy = _train_on_zipf_batches(
        row_sparse.RowSparseAdam(catch_up=False, **settings), 800, scale=scale
    )
    error = np.abs(caught_up - dense).max() / np.abs(dense).max()
    lazy_error = np.abs(lazy - dense).max() / np.abs(dense).max()
    assert error < 0.02 and lazy_error > 0.1, (error, lazy_error)


def test_catching_up_in_chunks_or_twice_is_catching_up_once():
    settings = dict(learning_rate=0.01, beta_2=0.99, epsilon=1e-4)
    whole = _train_on_zipf_batches(row_sparse.RowSparseAdam(**settings), 50)
    optimizer = row_sparse.RowSparseAdam(**settings)
    before = _train_on_zipf_batches(optimizer, 50, catch_up=False)
    table = optimizer._trainable_variables[0]  # pylint: disable=protected-access
    start = table.numpy() - before
    optimizer.catch_up_all(chunk_rows=7)
    chunked = table.numpy() - start
    optimizer.catch_up_all()
    np.testing.assert_array_equal(table.numpy() - start, chunked)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, whole)  # the catch-up moved rows


def test_a_training_read_catches_its_rows_up_first_and_other_reads_do_not():
    settings = dict(learning_rate=0.01, beta_2=0.99, epsilon=1e-4)
    reference = row_sparse.RowSparseAdam(**settings)
    _train_on_zipf_batches(reference, 50)  # caught up whole
    expected = reference._trainable_variables[0].numpy()  # pylint: disable=protected-access
    optimizer = row_sparse.RowSparseAdam(**settings)
    _train_on_zipf_batches(optimizer, 50, catch_up=False)
    table = optimizer._trainable_variables[0]  # pylint: disable=protected-access
    stale = table.numpy()
    everything = tf.range(table.shape[0])
    np.testing.assert_array_equal(row_sparse.lookup(table, everything), stale)
    read = row_sparse.lookup(table, everything, training=True).numpy()
    np.testing.assert_allclose(read, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(read, stale)


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
    assert restored.catch_up
    lazy = keras.optimizers.deserialize(
        keras.optimizers.serialize(row_sparse.RowSparseAdam(catch_up=False))
    )
    assert not lazy.catch_up
    with pytest.raises(ValueError, match="beta_1 \\*\\* 2 < beta_2"):
        row_sparse.RowSparseAdam(beta_1=0.99, beta_2=0.98)
    with pytest.raises(ValueError, match="weight decay"):
        row_sparse.RowSparseAdam(weight_decay=0.01)
    with pytest.raises(ValueError, match="amsgrad"):
        row_sparse.RowSparseAdam(amsgrad=True)


def test_fit_catches_up_before_each_evaluation_and_at_the_end():
    ids = keras.Input(shape=(1,), dtype="int32")
    table = keras.layers.Embedding(30, 2)
    model = keras.Model(ids, keras.ops.sum(table(ids), axis=-1))
    model.compile(optimizer=row_sparse.RowSparseAdam(learning_rate=0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 30, size=(64, 1)).astype("int32")
    y = rng.normal(size=(64, 1)).astype("float32")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_test_batch_begin(self, batch, logs=None):
            last = self.model.optimizer._last_steps[0].numpy()  # pylint: disable=protected-access
            seen.append((last.min(), last.max(), int(self.model.optimizer.iterations)))

    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        validation_data=(x, y),
        verbose=0,
        callbacks=[row_sparse.CatchUp(), Probe()],
    )
    assert seen and all(low == high == steps for low, high, steps in seen), seen


def _fit_a_table(optimizer, epochs=3):
    """A table fitted with ``fit`` to targets that depend on its rows (so the
    forward pass matters), ids with Zipf-like odds; its final values."""
    from trainer.embeddings.full_layer import RowEmbedding  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    ids = keras.Input(shape=(1,), dtype="int32")
    model = keras.Model(ids, keras.ops.sum(RowEmbedding(40, 2)(ids), axis=-1))
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    odds = 1.0 / np.arange(1, 41)
    x = rng.choice(40, size=(400, 1), p=odds / odds.sum()).astype("int32")
    y = np.sin(x).astype("float32")
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[row_sparse.CatchUp()],
    )
    return model.trainable_variables[0].numpy()


def test_fit_with_catch_up_follows_dense_adam():
    settings = dict(learning_rate=0.01, beta_2=0.99, epsilon=1e-4)
    dense = _fit_a_table(keras.optimizers.Adam(**settings))
    caught_up = _fit_a_table(row_sparse.RowSparseAdam(**settings))
    lazy = _fit_a_table(row_sparse.RowSparseAdam(catch_up=False, **settings))
    error = np.abs(caught_up - dense).max() / np.abs(dense).max()
    lazy_error = np.abs(lazy - dense).max() / np.abs(dense).max()
    assert error < 0.02 and lazy_error > 0.1, (error, lazy_error)


def test_a_dense_update_leaves_nothing_to_catch_up():
    table = keras.Variable(np.ones((4, 2), "float32"))
    optimizer = row_sparse.RowSparseAdam(learning_rate=0.1)
    optimizer.apply([tf.ones((4, 2))], [table])
    optimizer.apply([tf.ones((4, 2))], [table])
    after = table.numpy()
    np.testing.assert_array_equal(row_sparse.lookup(table, tf.range(4), training=True), after)
