"""Tests for trainer/embeddings/full.py."""

import keras

from trainer.embeddings import build_embedding


def test_plain_embedding():
    layer = build_embedding({"type": "full"}, [5, 3, 1], 2, 4, "f")
    layer.build((None,))
    assert type(layer) is keras.layers.Embedding
    assert (layer.input_dim, layer.output_dim, layer.name) == (5, 4, "f")
    assert layer.count_params() == 5 * 4
