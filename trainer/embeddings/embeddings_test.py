"""Tests for trainer/embeddings.py (factory and memory report)."""

import json
import math

import keras
from keras import ops
import numpy as np
import pytest

from components import features
from trainer import embeddings
from trainer import md_embedding as md
from trainer import model as model_lib
from trainer import model_config
from trainer import qr_embedding as qr
from trainer.embeddings import build_embedding
from trainer.embeddings import embedding_memory_report
from trainer.md_embedding import MDEmbedding
from trainer.qr_embedding import QREmbedding


def _built(layer):
    if isinstance(layer, keras.layers.Embedding):
        layer.build((None,))
    else:
        layer.build()
    return layer


def _zipf_counts(vocab_size, seed=0):
    counts = np.random.default_rng(seed).zipf(1.4, vocab_size)
    return sorted(counts.tolist(), reverse=True)


# Prefix masses 0, 40, 60, 70, 80, 90, 95, 100; one OOV bucket -> input_dim 8.
SMALL_COUNTS = [40, 20, 10, 10, 10, 5, 5]


class TestFull:
    def test_plain_embedding(self):
        layer = _built(build_embedding({"type": "full"}, [5, 3, 1], 2, 4, "f"))
        assert type(layer) is keras.layers.Embedding
        assert (layer.input_dim, layer.output_dim, layer.name) == (5, 4, "f")
        assert layer.count_params() == 5 * 4


class TestQR:
    def test_default_buckets(self):
        # input_dim = 998 + 2 = 1000, m = ceil(sqrt(1000)) = 32,
        # quotient rows ceil(1000 / 32) = 32.
        layer = _built(build_embedding({"type": "qr"}, [1] * 998, 2, 16, "f"))
        assert isinstance(layer, QREmbedding)
        assert layer.num_buckets == 32
        assert layer.count_params() == (32 + 32) * 16

    @pytest.mark.parametrize("k,op", [(2, "mult"), (2, "concat"), (3, "add")])
    def test_explicit_options_pass_through(self, k, op):
        spec = {"type": "qr", "num_buckets": 12, "num_partitions": k, "operation": op}
        layer = _built(build_embedding(spec, [1] * 140, 4, 6, "f"))
        assert (layer.num_buckets, layer.num_partitions, layer.operation) == (12, k, op)
        assert layer.count_params() == qr.qr_param_count(144, 6, 12, k, op)

    def test_threshold_falls_back_to_plain_table(self):
        # input_dim = 10 + 1 = 11: a plain table at threshold 11, QR below.
        spec = {"type": "qr", "threshold": 11}
        plain = build_embedding(spec, [1] * 10, 1, 4, "f")
        assert type(plain) is keras.layers.Embedding
        assert _built(plain).count_params() == 11 * 4
        compressed = build_embedding(dict(spec, threshold=10), [1] * 10, 1, 4, "f")
        assert isinstance(compressed, QREmbedding)

    def test_compression_k2_matches_closed_form(self):
        # n = 10000, c = 4: m + n / m = n / c = 2500 has the root
        # m = (2500 + sqrt(2500**2 - 4 * 10000)) / 2 = 2495.996.
        n, d, c = 10000, 16, 4.0
        layer = build_embedding({"type": "qr", "compression": c}, [1] * (n - 2), 2, d, "f")
        closed_form = (n / c + math.sqrt((n / c) ** 2 - 4 * n)) / 2
        assert abs(layer.num_buckets - closed_form) <= 1
        ratio = n * d / qr.qr_param_count(n, d, layer.num_buckets)
        assert ratio == pytest.approx(c, rel=0.01)

    @pytest.mark.parametrize(
        "n,k,op,c",
        [
            (5000, 3, "mult", 20.0),
            (5000, 2, "concat", 8.0),
            (5000, 3, "concat", 30.0),
            (45_237, 2, "concat", 4.0),
            (499_975, 2, "concat", 4.0),
            (943, 2, "mult", 3.0),
        ],
    )
    def test_compression_is_never_exceeded_and_nothing_larger_fits(self, n, k, op, c):
        d = 12
        m = embeddings.qr_buckets_for_compression(n, d, c, k, op)
        budget = n * d / c
        chosen = qr.qr_param_count(n, d, m, k, op)
        assert chosen <= budget
        # No valid base uses more of the budget (exhaustive over the range).
        assert not any(
            chosen < qr.qr_param_count(n, d, b, k, op) <= budget
            for b in range(qr.default_num_buckets(n, k), n)
        )

    def test_budget_is_a_ceiling_not_the_nearest_ratio(self):
        # n = 499,975 at 16-d "concat", ratio 4: the nearest ratio overshot the
        # budget by 8 params (the large benchmark set's qr_16x row).
        n, d, c = 499_975, 16, 4.0
        m = embeddings.qr_buckets_for_compression(n, d, c, 2, "concat")
        assert qr.qr_param_count(n, d, m, 2, "concat") <= n * d / c
        assert qr.qr_param_count(n, d, m + 1, 2, "concat") > n * d / c

    def test_unreachable_compression_gives_maximum_compression(self):
        m = embeddings.qr_buckets_for_compression(10000, 16, 1e6)
        assert m == qr.default_num_buckets(10000)

    @pytest.mark.parametrize(
        "spec",
        [
            {"type": "qr", "compression": 1.0},
            {"type": "qr", "compression": 4.0, "num_buckets": 40},
            {"type": "qr", "num_buckets": 18},  # 18**2 < 943
        ],
    )
    def test_bad_specs_raise(self, spec):
        with pytest.raises(ValueError):
            build_embedding(spec, [1] * 940, 3, 8, "f")


class TestMD:
    def test_equal_mass_blocks_and_alpha_dims(self):
        # Two equal-mass blocks: [0, 1) and [1, 8) (the OOV row joins the
        # tail).  Popularity 40 / 1 = 40 and 60 / 7; alpha 0.5 and base 16:
        # 16 * sqrt((60 / 7) / 40) = 7.41 -> 7.
        layer = _built(
            build_embedding({"type": "md", "blocks": 2, "alpha": 0.5}, SMALL_COUNTS, 1, 16, "f")
        )
        assert isinstance(layer, MDEmbedding)
        assert layer.block_offsets == [0, 1, 8]
        assert layer.block_dims == [16, 7]
        assert layer.count_params() == 1 * 16 + 7 * 7 + 7 * 16

    def test_defaults(self):
        counts = _zipf_counts(300)
        layer = build_embedding({"type": "md"}, counts, 3, 16, "f")
        offsets = md.block_boundaries_equal_mass(counts, 4)
        offsets[-1] = 303
        assert layer.block_offsets == offsets
        assert layer.block_dims == md.alpha_power_dims(
            md.block_popularity(counts, offsets), 0.3, 16
        )

    @pytest.mark.parametrize(
        "key,value,offsets",
        [
            ("block_sizes", [2, 5], [0, 2, 8]),  # sums to vocab: OOV appended
            ("block_sizes", [2, 6], [0, 2, 8]),  # sums to input_dim
            ("block_fractions", [0.3, 0.7], [0, 2, 8]),  # rint(0.3 * 7) = 2
        ],
    )
    def test_explicit_blocking(self, key, value, offsets):
        layer = build_embedding(
            {"type": "md", key: value, "dims": [16, 4]}, SMALL_COUNTS, 1, 16, "f"
        )
        assert layer.block_offsets == offsets
        assert layer.block_dims == [16, 4]

    def test_explicit_dims_set_block_count(self):
        layer = _built(build_embedding({"type": "md", "dims": [8, 4, 2]}, SMALL_COUNTS, 1, 8, "f"))
        # Equal-mass targets 33.3 and 66.7: the nearest prefix masses are 40
        # (cut 1) and 70 (cut 3, 3.3 away vs 6.7 for 60).
        assert layer.block_offsets == [0, 1, 3, 8]
        assert layer.count_params() == 1 * 8 + 2 * 4 + 5 * 2 + 4 * 8 + 2 * 8

    def test_param_budget(self):
        counts, budget = _zipf_counts(500), 3000
        layer = _built(
            build_embedding(
                {
                    "type": "md",
                    "blocks": 3,
                    "alpha": 0.5,
                    "param_budget": budget,
                    "round_to_power_of_two": True,
                    "min_dim": 2,
                },
                counts,
                2,
                32,
                "f",
            )
        )
        rows = np.diff(layer.block_offsets).tolist()
        expected = md.alpha_power_dims_for_budget(
            rows,
            md.block_popularity(counts, layer.block_offsets),
            0.5,
            32,
            budget,
            round_to_power_of_two=True,
            min_dim=2,
        )
        assert layer.block_dims == expected
        assert layer.count_params() <= budget

    def test_tail_qr(self):
        counts = _zipf_counts(200)
        layer = _built(
            build_embedding(
                {"type": "md", "blocks": 3, "dims": [16, 8, 4], "tail_qr": {"operation": "add"}},
                counts,
                2,
                16,
                "f",
            )
        )
        lo, hi = layer.block_offsets[2], layer.block_offsets[3]
        rows = np.diff(layer.block_offsets).tolist()
        assert layer.tail_qr == {"num_buckets": None, "num_partitions": 2, "operation": "add"}
        assert layer._tail.num_buckets == qr.default_num_buckets(hi - lo)
        expected = (
            rows[0] * 16
            + rows[1] * 8
            + 8 * 16
            + qr.qr_param_count(hi - lo, 4, None, 2, "add")
            + 4 * 16
        )
        assert layer.count_params() == expected

    def test_tail_qr_within_budget(self):
        counts, budget = _zipf_counts(2000), 4000
        layer = _built(
            build_embedding(
                {"type": "md", "blocks": 3, "alpha": 0.6, "param_budget": budget, "tail_qr": {}},
                counts,
                2,
                32,
                "f",
            )
        )
        assert layer.count_params() <= budget
        assert isinstance(layer._tail, QREmbedding)

    @pytest.mark.parametrize("tail_qr", [None, {}])
    def test_fill_budget_spends_more_but_never_exceeds(self, tail_qr):
        counts, budget = _zipf_counts(2000), 6000
        spec = {"type": "md", "blocks": 8, "alpha": 0.3, "param_budget": budget, "tail_qr": tail_qr}
        plain = _built(build_embedding(spec, counts, 1, 16, "f"))
        filled = _built(build_embedding(dict(spec, fill_budget=True), counts, 1, 16, "f"))
        assert plain.count_params() < filled.count_params() <= budget
        assert all(f >= p for f, p in zip(filled.block_dims, plain.block_dims))
        assert filled.block_dims == sorted(filled.block_dims, reverse=True)

    def test_nested_projection_spends_the_budget_on_rows(self):
        counts, budget = _zipf_counts(2000), 6000
        spec = {
            "type": "md",
            "blocks": 4,
            "alpha": 0.3,
            "param_budget": budget,
            "fill_budget": True,
        }
        learned = _built(build_embedding(spec, counts, 1, 32, "f"))
        nested = _built(build_embedding(dict(spec, projection="nested"), counts, 1, 32, "f"))
        assert nested.projection == "nested"
        assert not any("projection" in t["name"] for t in nested.tables())
        assert nested.count_params() <= budget

        def row_params(layer):
            return sum(
                t["params"]
                for t in embedding_memory_report({"f": layer}, 32)["features"]["f"]["tables"]
                if "projection" not in t["name"]
            )

        # What learned projections cost goes to wider rows instead.
        assert row_params(nested) > row_params(learned)

    def test_max_dim_caps_every_block_and_fill_spends_below_it(self):
        # A gentle power law: every equal-mass block holds many rows.
        counts, budget = [int(5000 / (i + 1) ** 0.7) for i in range(2000)], 12000
        spec = {
            "type": "md",
            "blocks": 4,
            "alpha": 0.3,
            "param_budget": budget,
            "projection": "nested",
            "fill_budget": True,
        }
        free = build_embedding(spec, counts, 1, 32, "f")
        cap = free.block_dims[0] - 6
        capped = _built(build_embedding(dict(spec, max_dim=cap), counts, 1, 32, "f"))
        assert capped.block_dims[0] == cap and capped.output_dim == 32
        assert capped.block_dims == sorted(capped.block_dims, reverse=True)
        assert capped.count_params() <= budget
        # The head's lost width goes to the blocks below it.
        assert sum(capped.block_dims[1:]) > sum(free.block_dims[1:])

    @pytest.mark.parametrize(
        "spec,match",
        [
            ({"projection": "identity"}, "projection"),
            ({"dims": [8, 4], "max_dim": 8}, "dims"),
            ({"blocks": 2, "max_dim": 17}, "max_dim"),
            ({"blocks": 2, "max_dim": 4, "base_dim": 8}, "base_dim"),
            ({"dims": [8, 4], "alpha": 0.5}, "dims"),
            ({"base_dim": 8, "param_budget": 100}, "exclusive"),
            ({"blocks": 2, "block_sizes": [2, 5]}, "exclusive"),
            ({"blocks": 2, "base_dim": 32}, "base_dim"),
            ({"block_sizes": [2, 4]}, "sum"),
            ({"dims": [8, 4, 2], "blocks": 2}, "dims"),
            ({"tail_qr": {"collisions": 4}}, "collisions"),
            ({"blocks": 2, "param_budget": 10}, "too small"),
        ],
    )
    def test_bad_specs_raise(self, spec, match):
        with pytest.raises(ValueError, match=match):
            build_embedding({"type": "md", **spec}, SMALL_COUNTS, 1, 16, "f")


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"type": "sparse"}, "allowed"),
        ({}, "allowed"),
        ({"type": "qr", "buckets": 3}, r"'buckets'.*num_buckets"),
        ({"type": "full", "alpha": 0.3}, "alpha"),
    ],
)
def test_unknown_type_or_key_raises(spec, match):
    with pytest.raises(ValueError, match=match):
        build_embedding(spec, [3, 2, 1], 1, 4, "f")


def test_regularizer_and_initializer_reach_every_type():
    regularizer = keras.regularizers.L2(1e-3)
    initializer = keras.initializers.Constant(0.5)
    for spec in ({"type": "full"}, {"type": "qr"}, {"type": "md", "blocks": 2, "dims": [4, 4]}):
        layer = build_embedding(
            spec, SMALL_COUNTS, 1, 4, "f", regularizer=regularizer, initializer=initializer
        )
        out = ops.convert_to_numpy(layer(np.arange(8)))
        expected = 0.25 if spec["type"] == "qr" else 0.5  # qr: 0.5 * 0.5
        np.testing.assert_allclose(out, expected)
        assert len(layer.losses) >= 1


def _three_features():
    counts = _zipf_counts(400)
    return {
        "user": build_embedding({"type": "full"}, counts, 1, 8, "user_emb"),
        "item": build_embedding({"type": "qr", "num_partitions": 3}, counts, 1, 8, "item_emb"),
        "genre": build_embedding(
            {"type": "md", "blocks": 3, "alpha": 0.5, "tail_qr": {"num_buckets": 20}},
            counts,
            1,
            8,
            "genre_emb",
        ),
    }


def test_memory_report():
    layers = {name: _built(layer) for name, layer in _three_features().items()}
    report = embedding_memory_report(layers, 8)
    json.dumps(report)  # must be JSON-serialisable
    for name, layer in layers.items():
        entry = report["features"][name]
        assert entry["input_dim"] == 401
        assert entry["params"] == layer.count_params()
        assert entry["params"] == sum(t["params"] for t in entry["tables"])
        assert all(
            t["params"] == t["rows"] * t["dim"] and t["bytes"] == 4 * t["params"]
            for t in entry["tables"]
        )
        assert entry["bytes"] == 4 * entry["params"]
        assert entry["full_params"] == 401 * 8
        assert entry["ratio_to_full"] == pytest.approx(entry["params"] / (401 * 8))
    assert report["features"]["user"]["tables"] == [
        {"name": "embeddings", "rows": 401, "dim": 8, "params": 3208, "bytes": 12832}
    ]
    assert report["features"]["user"]["ratio_to_full"] == 1.0
    total = report["total"]
    assert total["params"] == sum(l.count_params() for l in layers.values())
    assert total["full_params"] == 3 * 401 * 8
    assert total["compression"] == pytest.approx(total["full_params"] / total["params"])


def test_factory_model_save_load_round_trip(tmp_path):
    features = _three_features()
    inputs = {name: keras.Input(shape=(), dtype="int64", name=name) for name in features}
    merged = keras.layers.Concatenate()([features[name](inputs[name]) for name in features])
    model = keras.Model(inputs, keras.layers.Dense(1)(merged))
    ids = {name: np.random.default_rng(i).integers(0, 401, 64) for i, name in enumerate(features)}
    # On a GPU Keras' jit_compile="auto" turns XLA on; force it here so the
    # CPU run exercises the same train step.
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    history = model.fit(ids, np.ones((64, 1)), epochs=2, batch_size=32, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    before = model.predict(ids, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(before, loaded.predict(ids, verbose=0))


# --- what the vocabulary cannot hold ------------------------------------------


def test_spec_constants_match_the_layers():
    # embeddings.py keeps copies so that checking a spec needs no Keras import.
    assert embeddings.QR_OPERATIONS == qr.OPERATIONS
    assert embeddings.MD_PROJECTIONS == md.PROJECTIONS


@pytest.mark.parametrize("preset", sorted(model_config.PRESETS))
@pytest.mark.parametrize("user_counts, movie_counts", [([5], [5]), ([3, 2], [1]), ([1], [4, 1])])
def test_every_preset_builds_and_predicts_on_a_vocabulary_of_one_or_two(
    preset, user_counts, movie_counts
):
    """1 user, 1 movie or a handful of ratings: techniques shrink to what fits."""
    config = model_config.PRESETS[preset]
    model = model_lib.build_model(config, user_counts, movie_counts, mean_rating=3.0)
    ids = {
        features.USER_INDEX: np.array([[0], [len(user_counts)]]),  # a known id and the OOV row
        features.MOVIE_INDEX: np.array([[0], [len(movie_counts)]]),
    }
    predictions = model.predict(ids, verbose=0)
    assert predictions.shape == (2, 1) and np.isfinite(predictions).all()
    report = embedding_memory_report(model_lib.embedding_layers(model), config.embedding_dim)
    for feature, counts in ((features.USER_ID, user_counts), (features.MOVIE_ID, movie_counts)):
        assert report["features"][feature]["input_dim"] == len(counts) + features.NUM_OOV_BUCKETS


def test_default_preset_on_one_id_uses_one_block_and_says_so(caplog):
    spec = model_config.PRESETS[model_config.DEFAULT_MODEL].user_embedding
    with caplog.at_level("WARNING", logger="trainer.embeddings"):
        layer = _built(build_embedding(spec, [7], 1, 16, "user_embedding"))
    assert isinstance(layer, MDEmbedding) and layer.block_offsets == [0, 2]
    note = "4 MD blocks asked for, but the vocabulary has 1 id: 1 block"
    assert layer.adaptations == (note,)
    assert f"user_embedding: {note}" in caplog.text
    report = embedding_memory_report({"user_id": layer}, 16)
    assert report["features"]["user_id"]["adaptations"] == [note]


def test_more_md_blocks_than_ids_gives_one_block_per_id():
    counts = [50, 30, 10]
    layer = _built(build_embedding({"type": "md", "blocks": 5000}, counts, 1, 8, "f"))
    assert layer.num_blocks == 3 and layer.input_dim == 4
    assert (
        "5000 MD blocks asked for, but the vocabulary has 3 ids: 3 blocks" in layer.adaptations[0]
    )
    # Explicit dims keep their head; fractions merge their tail.
    spec = {"type": "md", "block_fractions": [0.25, 0.25, 0.25, 0.25], "dims": [8, 4, 2, 1]}
    layer = _built(build_embedding(spec, [5, 1], 1, 8, "f"))
    assert layer.block_dims == [8, 4] and layer.block_offsets == [0, 1, 3]


def test_md_tail_qr_too_small_for_its_block_is_a_plain_block():
    spec = {"type": "md", "blocks": 2, "dims": [4, 2], "tail_qr": {"operation": "mult"}}
    layer = _built(build_embedding(spec, [10, 1], 1, 4, "f"))
    assert layer.tail_qr is None and "tail_qr:" in layer.adaptations[0]
    assert "the last MD block is a plain table" in layer.adaptations[0]


@pytest.mark.parametrize(
    "spec, vocab",
    [
        ({"type": "qr"}, 1),
        ({"type": "qr", "compression": 4.0, "operation": "concat"}, 1),
        ({"type": "qr", "num_buckets": 5000}, 943),
    ],
)
def test_qr_table_no_smaller_than_a_plain_one_becomes_plain(spec, vocab):
    layer = _built(build_embedding(spec, [1] * vocab, 1, 8, "movie_embedding"))
    assert type(layer) is keras.layers.Embedding and layer.input_dim == vocab + 1
    assert (
        "too few for QR" in layer.adaptations[0] and "a plain table is used" in layer.adaptations[0]
    )


@pytest.mark.parametrize(
    "spec, fragment",
    [
        (
            {"type": "md", "block_sizes": [2, 4]},
            "user_embedding: block_sizes [2, 4] sum to 6, but the table has 8 rows "
            "(7 ids + 1 OOV): they must sum to 7 or 8",
        ),
        (
            {"type": "qr", "num_buckets": 2},
            "user_embedding: num_buckets=2 with num_partitions=2 gives 4 distinct QR rows, "
            "fewer than the table's 8 rows (7 ids + 1 OOV), so ids would collide: use "
            "num_buckets >= 3 or leave it unset",
        ),
        (
            {"type": "md", "blocks": 2, "param_budget": 5},
            "user_embedding: param_budget=5 is too small",
        ),
    ],
)
def test_what_the_vocabulary_cannot_honour_is_one_line_naming_the_table(spec, fragment):
    with pytest.raises(embeddings.SpecVocabularyError) as caught:
        build_embedding(spec, SMALL_COUNTS, 1, 16, "user_embedding")
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_spec_error_names_the_table():
    with pytest.raises(embeddings.SpecError, match=r"^user_embedding: unknown key 'bukets'"):
        build_embedding({"type": "qr", "bukets": 3}, SMALL_COUNTS, 1, 16, "user_embedding")
