"""Tests for trainer/md_embedding.py."""

import keras
from keras import ops
import numpy as np
import pytest
import tensorflow as tf

from trainer import md_embedding as md
from trainer.md_embedding import MDEmbedding
from trainer.qr_embedding import QREmbedding
from trainer.qr_embedding_test import assert_gradients_reach_every_variable
from trainer.qr_embedding_test import assert_save_load_round_trip


def _np(x):
    return ops.convert_to_numpy(x)


class TestBlockBoundaries:
    # Prefix masses of these counts: 0, 40, 60, 70, 80, 90, 95, 100.
    COUNTS = [40, 20, 10, 10, 10, 5, 5]

    def test_equal_mass_two_blocks(self):
        # Target 50 lies between prefixes 40 (cut 1) and 60 (cut 2), both 10
        # away; ties keep the smaller head block.
        assert md.block_boundaries_equal_mass(self.COUNTS, 2) == [0, 1, 7]

    def test_equal_mass_pushes_coinciding_cuts_apart(self):
        # Targets 25, 50, 75 -> nearest cuts 1, 1, 3 (75 ties 70/80 -> 3).
        # Id 0 alone exceeds a quarter of the mass, so cut 2 moves to 2.
        assert md.block_boundaries_equal_mass(self.COUNTS, 4) == [0, 1, 2, 3, 7]

    def test_equal_mass_uniform_counts_gives_equal_rows(self):
        assert md.block_boundaries_equal_mass([3] * 12, 3) == [0, 4, 8, 12]

    def test_equal_mass_blocks_are_never_empty(self):
        rng = np.random.default_rng(1)
        counts = np.sort(rng.zipf(1.3, 500))[::-1]
        for blocks in (1, 2, 5, 17, 500):
            offsets = md.block_boundaries_equal_mass(counts, blocks)
            assert offsets[0] == 0 and offsets[-1] == 500
            assert len(offsets) == blocks + 1
            assert all(b > a for a, b in zip(offsets, offsets[1:]))

    @pytest.mark.parametrize(
        "counts,blocks", [([0, 0, 0], 2), ([5, 4], 3), ([3, -1], 1), ([3, 2], 0)]
    )
    def test_equal_mass_rejects_impossible_input(self, counts, blocks):
        with pytest.raises(ValueError):
            md.block_boundaries_equal_mass(counts, blocks)

    def test_fractions(self):
        # Cumulative 0.5 and 0.8 of 10 rows -> cuts 5 and 8.
        assert md.block_boundaries_from_fractions(10, [0.5, 0.3, 0.2]) == [0, 5, 8, 10]

    def test_fractions_keep_every_block_non_empty(self):
        # Both cuts round to 3; they are pushed back to 1 and 2.
        assert md.block_boundaries_from_fractions(3, [0.98, 0.01, 0.01]) == [0, 1, 2, 3]

    @pytest.mark.parametrize("fractions", [[0.5, 0.4], [1.2, -0.2], []])
    def test_bad_fractions_raise(self, fractions):
        with pytest.raises(ValueError):
            md.block_boundaries_from_fractions(10, fractions)

    def test_sizes(self):
        assert md.block_boundaries_from_counts(10, [2, 3, 5]) == [0, 2, 5, 10]

    @pytest.mark.parametrize("sizes", [[2, 3, 4], [0, 10], []])
    def test_bad_sizes_raise(self, sizes):
        with pytest.raises(ValueError):
            md.block_boundaries_from_counts(10, sizes)

    def test_popularity_counts_missing_rows_as_zero(self):
        # Blocks [0, 2) and [2, 6) over 4 counted rows plus 2 OOV rows:
        # (40 + 20) / 2 = 30 and (10 + 10 + 0 + 0) / 4 = 5.
        assert md.block_popularity([40, 20, 10, 10], [0, 2, 6]) == [30.0, 5.0]


class TestAlphaRule:
    def test_hand_computed_dims(self):
        # 64 * 0.1 ** 0.5 = 20.24 -> 20 and 64 * 0.01 ** 0.5 = 6.4 -> 6.
        assert md.alpha_power_dims([100, 10, 1], 0.5, 64) == [64, 20, 6]

    def test_power_of_two_rounding(self):
        # 20.24 is nearer 16 than 32; 6.4 is nearer 8 than 4.
        assert md.alpha_power_dims([100, 10, 1], 0.5, 64, round_to_power_of_two=True) == [64, 16, 8]

    def test_min_dim_floor_and_alpha_zero(self):
        assert md.alpha_power_dims([100, 10, 1], 0.5, 64, min_dim=8) == [64, 20, 8]
        assert md.alpha_power_dims([100, 10, 1], 0.0, 64) == [64, 64, 64]

    def test_rounds_half_up(self):
        # 9 * 0.25 ** 0.5 = 4.5 -> 5 (Python's round() would give 4).
        assert md.alpha_power_dims([1, 0.25], 0.5, 9) == [9, 5]

    def test_head_need_not_be_first(self):
        # alpha = 1: dims proportional to popularity 4 : 8 : 1 over base 16.
        assert md.alpha_power_dims([4, 8, 1], 1.0, 16) == [8, 16, 2]

    def test_matches_dlrm_size_form_for_equal_mass_blocks(self):
        # Equal mass F per block makes p_i = F / n_i, so the popularity rule
        # equals DLRM's d_i = d0 * (n_min / n_i) ** alpha.
        rows, mass, alpha, d0 = [10, 40, 200, 1000], 1000.0, 0.4, 64
        popularity = [mass / n for n in rows]
        dlrm = [int(np.floor(d0 * (min(rows) / n) ** alpha + 0.5)) for n in rows]
        assert md.alpha_power_dims(popularity, alpha, d0) == dlrm

    @pytest.mark.parametrize(
        "args", [([0, 0], 0.5, 8), ([1, -1], 0.5, 8), ([1, 1], -0.5, 8), ([], 0.5, 8)]
    )
    def test_bad_inputs_raise(self, args):
        with pytest.raises(ValueError):
            md.alpha_power_dims(*args)

    # Rows [10, 100, 1000], popularity [100, 10, 1], alpha 0.5, output_dim 16:
    # base b gives dims [b, b / 3.162, b / 10] rounded, and the cost is
    # tables 10*b + 100*d1 + 1000*d2 plus 16*d for each d < 16.
    #   b = 16: [16, 5, 2]  -> 160 + 500 + 2000 + 80 + 32        = 2772
    #   b = 15: [15, 5, 2]  -> 150 + 500 + 2000 + 240 + 80 + 32  = 3002
    #   b = 14: [14, 4, 1]  -> 140 + 400 + 1000 + 224 + 64 + 16  = 1844
    #   b = 1:  [1, 1, 1]   -> 10 + 100 + 1000 + 3 * 16          = 1158
    BUDGET_CASE = dict(
        block_rows=[10, 100, 1000], block_popularity=[100, 10, 1], alpha=0.5, output_dim=16
    )

    def test_param_count_formula(self):
        rows = self.BUDGET_CASE["block_rows"]
        assert md.md_param_count(rows, [16, 5, 2], 16) == 2772
        assert md.md_param_count(rows, [15, 5, 2], 16) == 3002
        assert md.md_param_count(rows, [14, 4, 1], 16) == 1844

    def test_budget_picks_widest_head_that_fits(self):
        assert md.alpha_power_dims_for_budget(**self.BUDGET_CASE, param_budget=2772) == [16, 5, 2]
        # b = 15 costs more than b = 16 (its head needs a projection), so one
        # parameter less than 2772 drops all the way to b = 14.
        assert md.alpha_power_dims_for_budget(**self.BUDGET_CASE, param_budget=2771) == [14, 4, 1]

    def test_budget_with_power_of_two_rounding(self):
        # b = 16 -> [16, 4, 2]: 160 + 400 + 2000 + 64 + 32 = 2656.
        assert md.alpha_power_dims_for_budget(
            **self.BUDGET_CASE, param_budget=2656, round_to_power_of_two=True
        ) == [16, 4, 2]

    def test_widen_spends_the_leftover_budget(self):
        rows, out = self.BUDGET_CASE["block_rows"], self.BUDGET_CASE["output_dim"]

        def cost(dims):
            return md.md_param_count(rows, dims, out)

        fitted = md.alpha_power_dims_for_budget(**self.BUDGET_CASE, param_budget=2771)
        assert fitted == [14, 4, 1] and cost(fitted) == 1844
        widened = md.widen_to_budget(fitted, cost, out, 2771)
        # Worked by hand: the head reaches 16 (dropping its projection), the
        # middle block grows while +116 fits, the tail's +1,016 never does.
        assert widened == [16, 13, 1]
        assert cost(widened) == 2684 <= 2771
        assert all(w >= f for w, f in zip(widened, fitted))
        assert widened == sorted(widened, reverse=True)
        for i in range(len(widened)):
            wider = widened[:i] + [widened[i] + 1] + widened[i + 1 :]
            ceiling = out if i == 0 else widened[i - 1]
            assert wider[i] > ceiling or cost(wider) > 2771

    def test_widen_rejects_dims_over_budget(self):
        with pytest.raises(ValueError, match="exceed"):
            md.widen_to_budget([16, 5, 2], lambda d: 2772, 16, 2771)

    def test_budget_too_small_raises(self):
        with pytest.raises(ValueError, match="too small"):
            md.alpha_power_dims_for_budget(**self.BUDGET_CASE, param_budget=1157)
        assert md.alpha_power_dims_for_budget(**self.BUDGET_CASE, param_budget=1158) == [1, 1, 1]


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
        for row, i in zip(out, ids):
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
        assert md.md_param_count([5, 15, 43], [8, 4, 2], 8) == expected
        assert sum(t["rows"] * t["dim"] for t in layer.tables()) == expected
        full = _built(MDEmbedding(self.OFFSETS, [8, 8, 8], 8))
        assert full.count_params() == 63 * 8

    def test_nested_rows_are_zero_padded_and_cost_no_projection(self):
        layer = _built(MDEmbedding(self.OFFSETS, [8, 4, 2], 8, projection="nested"))
        tables = {w.path.split("/")[-1]: _np(w) for w in layer.weights}
        assert sorted(tables) == [f"block_{b}_embeddings" for b in range(3)]
        ids = np.random.default_rng(0).permutation(63)
        for row, i in zip(_np(layer(ids)), ids):
            b = int(np.searchsorted(self.OFFSETS, i, side="right")) - 1
            d = [8, 4, 2][b]
            np.testing.assert_array_equal(
                row[:d], tables[f"block_{b}_embeddings"][i - self.OFFSETS[b]]
            )
            np.testing.assert_array_equal(row[d:], 0.0)
        expected = 5 * 8 + 15 * 4 + 43 * 2
        assert layer.count_params() == expected
        assert md.md_param_count([5, 15, 43], [8, 4, 2], 8, "nested") == expected
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
