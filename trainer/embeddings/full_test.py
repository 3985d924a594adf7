"""Tests for trainer/embeddings/full.py and full_layer.py."""

import keras
import numpy as np
import tensorflow as tf

from trainer.embeddings import build_embedding
from trainer.embeddings.full_layer import RowEmbedding


def test_plain_embedding_is_keras_embedding_read_row_sparsely():
    layer = build_embedding({"type": "full"}, [5, 3, 1], 2, 4, "f")
    layer.build((None,))
    assert type(layer) is RowEmbedding and isinstance(layer, keras.layers.Embedding)
    assert (layer.input_dim, layer.output_dim, layer.name) == (5, 4, "f")
    assert layer.count_params() == 5 * 4
    ids = np.array([[4], [0], [4]])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(ids)), layer.embeddings.numpy()[ids]
    )
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids))
    (gradient,) = tape.gradient(loss, layer.trainable_weights)
    assert isinstance(gradient, tf.IndexedSlices)  # the rows looked up, not the table
    restored = RowEmbedding.from_config(layer.get_config())
    assert (restored.input_dim, restored.output_dim) == (5, 4)
