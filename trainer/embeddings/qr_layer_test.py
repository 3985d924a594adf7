"""Tests for trainer/embeddings/qr_layer.py."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from trainer.embeddings.qr import QRTable
from trainer.embeddings.qr_layer import QREmbedding


def _np(x):
    return ops.convert_to_numpy(x)


def _ceil_div(a, b):
    return -(-a // b)


def assert_gradients_reach_every_variable(layer, ids):
    # A random readout avoids accidental cancellation in sum(output).
    readout = np.random.default_rng(0).normal(size=(len(ids), layer.output_dim)).astype("float32")
    with tf.GradientTape() as tape:
        loss = ops.sum(layer(ids) * readout)
    variables = layer.trainable_variables
    assert variables
    for variable, grad in zip(variables, tape.gradient(loss, variables), strict=False):
        assert grad is not None, variable.path
        assert np.any(_np(tf.convert_to_tensor(grad)) != 0), variable.path


def assert_save_load_round_trip(layer, ids, tmp_path):
    inputs = keras.Input(shape=(1,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    before = model.predict(ids[:, None], verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = loaded.predict(ids[:, None], verbose=0)
    assert type(loaded.layers[-1]) is type(layer)
    np.testing.assert_array_equal(before, after)
    return loaded.layers[-1]


class TestTableShapes:
    def test_k2_default_buckets_is_ceil_sqrt(self):
        # ceil(sqrt(943)) = 31 because 30**2 = 900 < 943 <= 961 = 31**2.
        layer = QREmbedding(943, 8)
        assert layer.num_buckets == 31
        assert layer.tables() == [
            {"name": "remainder", "rows": 31, "dim": 8},
            {"name": "quotient", "rows": _ceil_div(943, 31), "dim": 8},
        ]

    def test_k2_quotient_has_ceil_n_over_m_rows(self):
        # m = 40: 943 // 40 = 23 full rows plus a partial one -> 24 rows.
        layer = QREmbedding(943, 8, num_buckets=40)
        assert [t["rows"] for t in layer.tables()] == [40, 24]

    def test_k3_most_significant_table_is_minimal(self):
        # m = 20: digit_1 spans min(20, ceil(943/20) = 48) = 20 values,
        # digit_2 = id // 400 spans ceil(943/400) = 3 values.
        layer = QREmbedding(943, 8, num_buckets=20, num_partitions=3)
        assert [t["rows"] for t in layer.tables()] == [20, 20, 3]
        assert [t["name"] for t in layer.tables()] == ["digit_0", "digit_1", "digit_2"]

    def test_k3_default_buckets_is_ceil_cube_root(self):
        # 9**3 = 729 < 943 <= 1000 = 10**3.
        layer = QREmbedding(943, 8, num_partitions=3)
        assert layer.num_buckets == 10
        assert [t["rows"] for t in layer.tables()] == [10, 10, 10]

    def test_concat_splits_output_dim_first_tables_wider(self):
        # 10 = 3 * 3 + 1: the first 10 % 3 = 1 table gets 4 columns.
        layer = QREmbedding(943, 10, num_partitions=3, operation="concat")
        assert [t["dim"] for t in layer.tables()] == [4, 3, 3]
        assert sum(t["dim"] for t in layer.tables()) == 10

    @pytest.mark.parametrize(
        "n,m,k,op",
        [
            (943, None, 2, "mult"),
            (943, 40, 2, "add"),
            (943, 31, 2, "concat"),
            (943, None, 3, "mult"),
            (943, 20, 3, "add"),
            (1000, None, 3, "concat"),
            (100, 3, 5, "mult"),
        ],
    )
    def test_param_count_matches_formula(self, n, m, k, op):
        d = 12
        layer = QREmbedding(n, d, num_buckets=m, num_partitions=k, operation=op)
        layer.build()
        base = layer.num_buckets
        rows = [min(base, _ceil_div(n, base**j)) for j in range(k)]
        dims = [d // k + (j < d % k) for j in range(k)] if op == "concat" else [d] * k
        expected = sum(r * c for r, c in zip(rows, dims, strict=False))
        assert layer.count_params() == expected
        assert QRTable(n, d, base, k, op).params == expected
        assert sum(t["rows"] * t["dim"] for t in layer.tables()) == expected


class TestValidation:
    def test_too_few_buckets_for_vocab_raises(self):
        # 18**2 = 324 < 943: two base-18 digits cannot tell 943 ids apart.
        with pytest.raises(ValueError, match="collide"):
            QREmbedding(943, 8, num_buckets=18)

    @pytest.mark.parametrize(
        "kwargs,match",
        [
            ({"num_buckets": 1}, ">= 2"),
            ({"num_buckets": 943}, "< input_dim"),
            ({"num_partitions": 1}, "num_partitions"),
            ({"operation": "max"}, "operation"),
            ({"operation": "concat", "num_partitions": 3, "output_dim": 2}, "concat"),
        ],
    )
    def test_bad_arguments_raise(self, kwargs, match):
        kwargs = {"input_dim": 943, "output_dim": 8, **kwargs}
        with pytest.raises(ValueError, match=match):
            QREmbedding(**kwargs)


@pytest.mark.parametrize(
    "n,m,k",
    [
        (943, 31, 2),
        (943, 40, 2),
        (943, 942, 2),
        (961, 31, 2),
        (943, 10, 3),
        (943, 20, 3),
        (1000, 10, 3),
        (17, 2, 5),
        (100, 3, 5),
    ],
)
def test_every_id_maps_to_a_distinct_valid_tuple(n, m, k):
    # With "concat" and output_dim = k every table is one column wide; set row
    # r of each table to r and the output *is* the digit tuple the layer used.
    layer = QREmbedding(n, k, num_buckets=m, num_partitions=k, operation="concat")
    layer.build()
    layer.set_weights([np.arange(t["rows"], dtype="float32")[:, None] for t in layer.tables()])
    digits = _np(layer(np.arange(n))).astype(np.int64)
    assert len({tuple(row) for row in digits}) == n
    rows = np.array([t["rows"] for t in layer.tables()])
    assert np.all(digits >= 0) and np.all(digits < rows)
    # Mixed-radix decoding gives back the id.
    np.testing.assert_array_equal(digits @ (m ** np.arange(k)), np.arange(n))


@pytest.mark.parametrize(
    "op,combine",
    [
        ("mult", np.multiply),
        ("add", np.add),
        ("concat", lambda a, b: np.concatenate([a, b], axis=-1)),
    ],
)
def test_k2_output_matches_hand_computation(op, combine):
    n, m = 50, 8
    layer = QREmbedding(n, 6, num_buckets=m, operation=op)
    ids = np.arange(n)
    out = _np(layer(ids))
    remainder, quotient = [_np(w) for w in layer.get_weights()]
    np.testing.assert_allclose(out, combine(remainder[ids % m], quotient[ids // m]), rtol=1e-6)


def test_k3_add_matches_hand_computation():
    n, m = 60, 4
    layer = QREmbedding(n, 5, num_buckets=m, num_partitions=3, operation="add")
    ids = np.arange(n)
    out = _np(layer(ids))
    t0, t1, t2 = layer.get_weights()
    expected = t0[ids % m] + t1[(ids // m) % m] + t2[ids // (m * m)]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_default_mult_init_matches_plain_embedding_variance(k):
    # keras.layers.Embedding draws uniform(-0.05, 0.05): variance 0.05**2 / 3.
    # A product of k independent zero-mean factors of variance s has variance
    # s**k, and the default picks s = (0.05**2 / 3) ** (1 / k).
    layer = QREmbedding(20000, 64, num_partitions=k)
    out = _np(layer(np.arange(20000)))
    target = 0.05**2 / 3
    assert abs(out.mean()) < 0.05 * math.sqrt(target)
    assert out.var() == pytest.approx(target, rel=0.1)


def test_seeded_user_initializer_gives_tables_distinct_values():
    # m = 31 and ceil(961 / 31) = 31: both tables are 31 x 4.
    layer = QREmbedding(961, 4, embeddings_initializer=keras.initializers.RandomNormal(seed=7))
    layer.build()
    remainder, quotient = layer.get_weights()
    assert remainder.shape == quotient.shape
    assert not np.allclose(remainder, quotient)


@pytest.mark.parametrize("k,op", [(2, "mult"), (2, "add"), (2, "concat"), (3, "mult")])
def test_gradients_reach_every_table(k, op):
    layer = QREmbedding(200, 6, num_partitions=k, operation=op)
    assert_gradients_reach_every_variable(layer, np.arange(200))


def test_oov_id_gives_finite_vector():
    # 50 vocabulary ids + 3 OOV buckets: the last OOV bucket is id 52.
    layer = QREmbedding(53, 8)
    out = _np(layer(np.array([52, 50, 0])))
    assert out.shape == (3, 8)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"operation": "mult"},
        {"operation": "concat", "num_partitions": 3, "num_buckets": 7},
        {
            "operation": "add",
            "embeddings_initializer": keras.initializers.RandomNormal(stddev=0.1),
            "embeddings_regularizer": keras.regularizers.L2(1e-4),
        },
    ],
)
def test_save_load_round_trip(kwargs, tmp_path):
    layer = QREmbedding(300, 8, **kwargs)
    loaded = assert_save_load_round_trip(layer, np.arange(300), tmp_path)
    assert loaded.tables() == layer.tables()
    assert loaded.get_config() == layer.get_config()
