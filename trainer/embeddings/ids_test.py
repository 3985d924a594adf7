"""Tests for trainer/embeddings/ids.py."""

import keras
import numpy as np
from keras import ops

from trainer.embeddings import ids


def test_a_trailing_unit_axis_is_dropped_from_ids_and_their_shape():
    assert tuple(ids.prepare_ids(np.arange(6)[:, None], 6).shape) == (6,)
    assert tuple(ids.prepare_ids(np.arange(6).reshape(2, 3), 6).shape) == (2, 3)
    assert ids.ids_output_shape((None, 1), 8) == (None, 8)
    assert ids.ids_output_shape((None, 3), 8) == (None, 3, 8)


def test_ids_are_int32_below_2_31_rows():
    assert ops.convert_to_numpy(ids.prepare_ids(np.array([3.0]), 10)).dtype == np.int32
    assert ops.convert_to_numpy(ids.prepare_ids(np.array([3]), 2**31)).dtype == np.int64


def test_per_table_initializer_offsets_a_seed_and_keeps_the_rest():
    seeded = keras.initializers.RandomNormal(stddev=0.3, seed=7)
    copies = [ids.per_table_initializer(seeded, i) for i in range(2)]
    assert [c.get_config()["seed"] for c in copies] == [7, 8]
    assert all(c.get_config()["stddev"] == 0.3 for c in copies)
    first, second = (ops.convert_to_numpy(c((4, 4))) for c in copies)
    assert not np.allclose(first, second)


def test_deserialized_restores_initializers_and_regularizers_only():
    config = {
        "embeddings_initializer": keras.initializers.serialize(keras.initializers.Zeros()),
        "embeddings_regularizer": keras.regularizers.serialize(keras.regularizers.L2(0.5)),
        "projection_initializer": None,
        "output_dim": 4,
    }
    restored = ids.deserialized(config, *[k for k in config if k != "output_dim"])
    assert isinstance(restored["embeddings_initializer"], keras.initializers.Zeros)
    assert isinstance(restored["embeddings_regularizer"], keras.regularizers.L2)
    assert restored["projection_initializer"] is None and restored["output_dim"] == 4
