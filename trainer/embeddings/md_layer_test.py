"""Tests for trainer/embeddings/md_layer.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from trainer.embeddings.md import MDTable
from trainer.embeddings.md import md_param_count
from trainer.embeddings.md_layer import MDEmbedding
from trainer.embeddings.qr import QRTable
from trainer.embeddings.qr_layer import QREmbedding
from trainer.embeddings.qr_layer_test import assert_gradients_reach_every_variable
from trainer.embeddings.qr_layer_test import assert_save_load_round_trip


def _np(x):
    return ops.convert_to_numpy(x)


def _built(layer):
    layer.build()
    return layer


class TestLayer:
    OFFSETS = [0, 5, 20, 63]  # 60 vocabulary ids + 3 OOV buckets

    def test_one_block_equals_plain_embedding(self):
        layer = _built(MDEmbedding([0, 40], [8], 8))
        plain = keras.layers.Embedding(40, 8)
        plain.build((None,))
        plain.set_weights(layer.get_weights())
        ids = np.arange(40)
        assert layer.tables() == [{"name": "block_0", "rows": 40, "dim": 8}]
        np.testing.assert_array_equal(_np(layer(ids)), _np(plain(ids)))

    def test_output_is_block_row_times_projection(self):
        layer = _built(MDEmbedding(self.OFFSETS, [8, 4, 2], 8))
        tables = {w.path.split("/")[-1]: _np(w) for w in layer.weights}
        ids = np.random.default_rng(0).permutation(63)
        out = _np(layer(ids))
        for row, i in zip(out, ids, strict=False):
            b = int(np.searchsorted(self.OFFSETS, i, side="right")) - 1
            expected = tables[f"block_{b}_embeddings"][i - self.OFFSETS[b]]
            if b > 0:
                expected = expected @ tables[f"block_{b}_projection"]
            np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-7)

    def test_param_count_with_and_without_projections(self):
        # Block 0 is full width: no projection.  Blocks 1, 2 project to 8.
        layer = _built(MDEmbedding(self.OFFSETS, [8, 4, 2], 8))
        expected = 5 * 8 + 15 * 4 + 43 * 2 + 4 * 8 + 2 * 8
        assert layer.count_params() == expected
        assert md_param_count([5, 15, 43], [8, 4, 2], 8) == expected
        assert sum(t["rows"] * t["dim"] for t in layer.tables()) == expected
        full = _built(MDEmbedding(self.OFFSETS, [8, 8, 8], 8))
        assert full.count_params() == 63 * 8

    def test_nested_rows_are_zero_padded_and_cost_no_projection(self):
        layer = _built(MDEmbedding(self.OFFSETS, [8, 4, 2], 8, projection="nested"))
        tables = {w.path.split("/")[-1]: _np(w) for w in layer.weights}
        assert sorted(tables) == [f"block_{b}_embeddings" for b in range(3)]
        ids = np.random.default_rng(0).permutation(63)
        for row, i in zip(_np(layer(ids)), ids, strict=False):
            b = int(np.searchsorted(self.OFFSETS, i, side="right")) - 1
            d = [8, 4, 2][b]
            np.testing.assert_array_equal(
                row[:d], tables[f"block_{b}_embeddings"][i - self.OFFSETS[b]]
            )
            np.testing.assert_array_equal(row[d:], 0.0)
        expected = 5 * 8 + 15 * 4 + 43 * 2
        assert layer.count_params() == expected
        assert md_param_count([5, 15, 43], [8, 4, 2], 8, "nested") == expected
        assert [t["name"] for t in layer.tables()] == ["block_0", "block_1", "block_2"]

    def test_nested_tail_qr_is_padded(self):
        layer = _built(
            MDEmbedding(self.OFFSETS, [8, 4, 2], 8, projection="nested", tail_qr={"num_buckets": 7})
        )
        tail_ids = np.arange(20, 63)
        out = _np(layer(tail_ids))
        np.testing.assert_allclose(out[:, :2], _np(layer._tail(tail_ids - 20)), rtol=1e-6)
        np.testing.assert_array_equal(out[:, 2:], 0.0)

    def test_tail_qr_replaces_last_table(self):
        layer = _built(MDEmbedding(self.OFFSETS, [8, 4, 2], 8, tail_qr={"num_buckets": 7}))
        # Tail: 43 ids, m = 7 -> remainder 7 rows, quotient ceil(43/7) = 7.
        expected = 5 * 8 + 15 * 4 + 4 * 8 + (7 + 7) * 2 + 2 * 8
        assert layer.count_params() == expected
        assert sum(t["rows"] * t["dim"] for t in layer.tables()) == expected
        assert [t["name"] for t in layer.tables()] == [
            "block_0",
            "block_1",
            "block_1_projection",
            "block_2_qr_remainder",
            "block_2_qr_quotient",
            "block_2_projection",
        ]

    def test_tail_qr_output_is_qr_vector_times_projection(self):
        layer = _built(MDEmbedding(self.OFFSETS, [8, 4, 2], 8, tail_qr={"num_buckets": 7}))
        tail_ids = np.arange(20, 63)
        tail = layer._tail
        projection = [_np(w) for w in layer.weights if w.path.endswith("block_2_projection")][0]
        expected = _np(tail(tail_ids - 20)) @ projection
        np.testing.assert_allclose(_np(layer(tail_ids)), expected, rtol=1e-5, atol=1e-7)

    def test_ids_in_one_block_only_and_unit_axis(self):
        layer = MDEmbedding(self.OFFSETS, [8, 4, 2], 8)
        head = np.array([0, 3, 4])
        out = _np(layer(head[:, None]))
        assert out.shape == (3, 8)
        np.testing.assert_array_equal(out, _np(layer(head)))

    def test_oov_id_gives_finite_vector(self):
        layer = MDEmbedding(self.OFFSETS, [8, 4, 2], 8, tail_qr={"num_buckets": 7})
        out = _np(layer(np.array([62, 60, 0])))
        assert out.shape == (3, 8) and np.all(np.isfinite(out))

    @pytest.mark.parametrize("tail_qr", [None, {"num_buckets": 7}])
    @pytest.mark.parametrize("projection", ["learned", "nested"])
    def test_gradients_reach_every_table_and_projection(self, tail_qr, projection):
        layer = MDEmbedding(self.OFFSETS, [8, 4, 2], 8, projection=projection, tail_qr=tail_qr)
        assert_gradients_reach_every_variable(layer, np.arange(63))
        tables = 3 if tail_qr is None else 4
        projections = 2 if projection == "learned" else 0
        assert len(layer.trainable_variables) == tables + projections

    def test_xla_matches_eager(self):
        layer = MDEmbedding(self.OFFSETS, [8, 4, 2], 8, tail_qr={"num_buckets": 7})
        ids = tf.constant(np.random.default_rng(2).integers(0, 63, 100))
        np.testing.assert_allclose(
            _np(tf.function(layer, jit_compile=True)(ids)), _np(layer(ids)), rtol=1e-6
        )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {
                "tail_qr": {"num_buckets": 7, "operation": "add"},
                "embeddings_regularizer": keras.regularizers.L2(1e-4),
            },
            {
                "embeddings_initializer": keras.initializers.RandomNormal(seed=3),
                "projection_initializer": "orthogonal",
            },
            {"projection": "nested", "tail_qr": {"num_buckets": 7}},
        ],
    )
    def test_save_load_round_trip(self, kwargs, tmp_path):
        layer = MDEmbedding(self.OFFSETS, [8, 4, 2], 8, **kwargs)
        loaded = assert_save_load_round_trip(layer, np.arange(63), tmp_path)
        assert loaded.tables() == layer.tables()
        assert loaded.get_config() == layer.get_config()

    @pytest.mark.parametrize(
        "args,kwargs",
        [
            (([0, 5, 5, 63], [8, 4, 2], 8), {}),
            (([1, 5, 63], [8, 4], 8), {}),
            (([0, 5, 63], [8, 16], 8), {}),
            (([0, 5, 63], [8], 8), {}),
            (([], [], 8), {}),
            (([0, 5, 63], [8, 4], 8), {"tail_qr": {"input_dim": 58}}),
            (([0, 5, 63], [8, 4], 8), {"projection": "identity"}),
        ],
    )
    def test_bad_arguments_raise(self, args, kwargs):
        with pytest.raises(ValueError):
            MDEmbedding(*args, **kwargs)

    def test_tail_qr_inherits_regularizer(self):
        regularizer = keras.regularizers.L2(1e-3)
        layer = MDEmbedding(
            self.OFFSETS,
            [8, 4, 2],
            8,
            tail_qr={"num_buckets": 7},
            embeddings_regularizer=regularizer,
        )
        assert isinstance(layer._tail, QREmbedding)
        assert layer._tail.embeddings_regularizer is regularizer


@pytest.mark.parametrize(
    "table",
    [
        MDTable((0, 5, 20, 63), (8, 4, 2), 8),
        MDTable((0, 5, 20, 63), (8, 4, 2), 8, "nested"),
        MDTable((0, 5, 20, 63), (6, 4, 2), 8, "learned", QRTable(43, 2, 7, 2, "concat")),
        MDTable((0, 63), (8,), 8, "nested", QRTable(63, 8, 4, 3, "mult")),
    ],
)
def test_the_layer_holds_the_parameters_its_table_counts(table):
    layer = _built(table.layer("f"))
    assert layer.count_params() == table.params
    assert (layer.block_offsets, layer.block_dims) == (list(table.offsets), list(table.dims))
