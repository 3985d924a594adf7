"""Tests for trainer/embeddings/__init__.py: parsing, resolving tables together,
what a vocabulary changes or cannot meet, and the layers' reload."""

import json
import logging

import keras
import numpy as np
import pytest
from keras import ops

from components import features
from trainer import embeddings
from trainer import model as model_lib
from trainer import model_config
from trainer.embeddings import build_embedding
from trainer.embeddings import build_tables
from trainer.embeddings.md import MDSpec
from trainer.embeddings.md import MDTable
from trainer.embeddings.memory_test import three_features
from trainer.embeddings.qr import QRSpec
from trainer.embeddings.spec import Vocabulary

# Prefix masses 0, 40, 60, 70, 80, 90, 95, 100; one OOV bucket -> input_dim 8.
SMALL_COUNTS = [40, 20, 10, 10, 10, 5, 5]


def test_a_json_spec_parses_into_its_techniques_typed_spec():
    spec = embeddings.parse({"type": "md", "blocks": 2, "tail_qr": {"operation": "add"}}, 16)
    assert spec == MDSpec(blocks=2, tail_qr=QRSpec(operation="add"))
    assert embeddings.parse(spec, 16) is spec
    assert sorted(embeddings.TECHNIQUES) == ["full", "hash", "md", "qr"]


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"type": "sparse"}, "allowed"),
        ({"type": ["md"]}, "allowed"),
        ({}, "allowed"),
        ({"type": "qr", "buckets": 3}, r"'buckets'.*num_buckets"),
        ({"type": "full", "alpha": 0.3}, "alpha"),
    ],
)
def test_unknown_type_or_key_raises(spec, match):
    with pytest.raises(ValueError, match=match):
        build_embedding(spec, [3, 2, 1], 1, 4, "f")


def test_a_spec_error_names_the_table():
    with pytest.raises(embeddings.SpecError, match=r"^user_embedding: unknown key 'bukets'"):
        build_embedding({"type": "qr", "bukets": 3}, SMALL_COUNTS, 1, 16, "user_embedding")


@pytest.mark.parametrize(
    "spec, fragment",
    [
        (
            {"type": "md", "block_sizes": [2, 4]},
            (
                "user_embedding: block_sizes [2, 4] sum to 6, but the table has 8 rows "
                "(7 ids + 1 OOV): they must sum to 7 or 8"
            ),
        ),
        (
            {"type": "qr", "num_buckets": 2},
            (
                "user_embedding: num_buckets=2 with num_partitions=2 gives 4 distinct QR rows, "
                "fewer than the table's 8 rows (7 ids + 1 OOV), so ids would collide: use "
                "num_buckets >= 3 or leave it unset"
            ),
        ),
        (
            {"type": "md", "blocks": 2, "param_budget": 5},
            "user_embedding: param_budget=5 is too small",
        ),
        ({"type": "md"}, "user_embedding: empty vocabulary and no OOV buckets"),
    ],
)
def test_what_the_vocabulary_cannot_honour_is_one_line_naming_the_table(spec, fragment):
    counts, num_oov = (SMALL_COUNTS, 1) if "empty" not in fragment else ([], 0)
    with pytest.raises(embeddings.SpecVocabularyError) as caught:
        build_embedding(spec, counts, num_oov, 16, "user_embedding")
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("spec", [{"type": "qr"}, {"type": "md", "blocks": 3}])
def test_an_empty_vocabulary_gets_a_plain_table_and_says_so(spec):
    table = build_tables({"f": spec}, {"f": Vocabulary.of([], 1)}, 4)["f"]
    assert table == embeddings.full.PlainTable(1, 4, notes=table.notes)
    assert table.notes == ("the vocabulary is empty: a plain table of 1 row",)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_default_preset_on_one_id_uses_one_block_and_says_so():
    spec = model_config.PRESETS[model_config.DEFAULT_MODEL].user_embedding
    records, logger = _Records(), logging.getLogger("trainer.embeddings")
    logger.addHandler(records)
    try:
        layer = build_embedding(spec, [7], 1, 16, "user_embedding")
    finally:
        logger.removeHandler(records)
    assert layer.block_offsets == [0, 2]
    note = "4 MD blocks asked for, but the vocabulary has 1 id: 1 block"
    assert layer.adaptations == (note,)
    assert records.messages == [f"user_embedding: {note}"]


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


def test_layers_train_save_and_reload(tmp_path):
    tables = three_features()
    inputs = {name: keras.Input(shape=(), dtype="int64", name=name) for name in tables}
    merged = keras.layers.Concatenate()([tables[name](inputs[name]) for name in tables])
    model = keras.Model(inputs, keras.layers.Dense(1)(merged))
    ids = {name: np.random.default_rng(i).integers(0, 401, 64) for i, name in enumerate(tables)}
    # On a GPU Keras' jit_compile="auto" turns XLA on; force it here so the
    # CPU run exercises the same train step.
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    history = model.fit(ids, np.ones((64, 1)), epochs=2, batch_size=32, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    before = model.predict(ids, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(before, loaded.predict(ids, verbose=0))


# --- two tables resolved together ---------------------------------------------

USERS = list(range(943, 0, -1))
MOVIES = [int(5000 / (i + 1) ** 0.7) + 1 for i in range(1682)]


def _pair(user, movie, width=16):
    vocabularies = {"user": Vocabulary.of(USERS, 1), "movie": Vocabulary.of(MOVIES, 1)}
    return build_tables({"user": user, "movie": movie}, vocabularies, width)


def test_nested_md_users_at_base_16_meet_movies_at_base_8_in_8_dims():
    """The reported ``base_dim=16 exceeds max_dim=8``, from the command line's JSON."""
    settings = json.loads(
        '{"embedding_dim": 16,'
        ' "user_embedding": {"type": "md", "base_dim": 16, "projection": "nested"},'
        ' "movie_embedding": {"type": "md", "base_dim": 8, "projection": "nested"}}'
    )
    config = model_config.ModelConfig.from_dict(settings)
    layers = model_lib.id_embeddings(config, USERS, MOVIES)
    users, movies = layers[features.USER_ID], layers[features.MOVIE_ID]
    assert max(users.block_dims) == max(movies.block_dims) == 8
    assert users.output_dim == movies.output_dim == 16
    # The same spec alone keeps its 16-wide head.
    alone = build_tables({"u": settings["user_embedding"]}, {"u": Vocabulary.of(USERS, 1)}, 16)
    assert max(alone["u"].dims) == 16


def test_a_capped_table_is_the_one_its_capped_spec_builds():
    user = {"type": "md", "blocks": 4, "alpha": 0.3, "compression": 2.0, "fill_budget": True}
    movie = {"type": "md", "blocks": 3, "alpha": 0.5, "base_dim": 5}
    tables = _pair({**user, "projection": "nested"}, {**movie, "projection": "nested"})
    assert max(tables["user"].dims) == 5
    assert max(_pair({**user, "projection": "nested"}, {"type": "full"})["user"].dims) > 5
    alone = _pair({**user, "projection": "nested", "max_dim": 5}, {"type": "full"})
    assert tables["user"] == alone["user"]


@pytest.mark.parametrize(
    "movie",
    [
        {"type": "md", "blocks": 3, "base_dim": 5, "projection": "learned"},  # no padding
        {"type": "full"},
        {"type": "qr"},
    ],
)
def test_only_tables_that_both_pad_are_cut(movie):
    user = {"type": "md", "blocks": 4, "base_dim": 12, "projection": "nested"}
    assert max(_pair(user, movie)["user"].dims) == 12


def test_explicit_dims_are_never_cut():
    tables = _pair(
        {"type": "md", "dims": [12, 6], "projection": "nested"},
        {"type": "md", "blocks": 3, "base_dim": 5, "projection": "nested"},
    )
    assert isinstance(tables["user"], MDTable) and tables["user"].dims == (12, 6)


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
    layers = model_lib.embedding_layers(model)
    report = embeddings.embedding_memory_report(layers, config.embedding_dim)
    for feature, counts in ((features.USER_ID, user_counts), (features.MOVIE_ID, movie_counts)):
        assert report["features"][feature]["input_dim"] == len(counts) + features.NUM_OOV_BUCKETS
