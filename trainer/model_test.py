"""The two seed variants build with the parameter counts their formulas give."""

import json
import math

import keras
import numpy as np
import pytest

from components import features
from trainer import model as model_lib
from trainer import model_config

USERS, MOVIES = 943, 1682  # MovieLens-100K's vocabulary sizes
USER_COUNTS = list(range(USERS, 0, -1))
MOVIE_COUNTS = list(range(MOVIES, 0, -1))


def test_seed_baseline_is_two_full_64d_tables_and_a_global_bias():
    model = model_lib.build_model(model_config.SEED_BASELINE, USER_COUNTS, MOVIE_COUNTS)
    # +1 row each for the out-of-vocabulary bucket.
    assert model.count_params() == (USERS + 1) * 64 + (MOVIES + 1) * 64 + 1


def test_seed_qr_md_counts_follow_the_qr_and_md_formulas():
    model = model_lib.build_model(model_config.SEED_QR_MD, USER_COUNTS, MOVIE_COUNTS)
    users = USERS + 1
    m = math.ceil(math.sqrt(users))
    qr_params = (m + math.ceil(users / m)) * 64
    movies = MOVIES + 1
    head = round(movies * 400 / 3706)
    torso = round(movies * 1300 / 3706)
    tail = movies - head - torso
    md_params = head * 64 + torso * 32 + tail * 16 + 32 * 64 + 16 * 64
    layers = model_lib.embedding_layers(model)
    assert layers[features.USER_ID].count_params() == qr_params
    assert layers[features.MOVIE_ID].count_params() == md_params
    assert model.count_params() == qr_params + md_params + 1


def test_biases_add_one_scalar_per_id():
    config = model_config.SEED_BASELINE.replace(use_biases=True)
    model = model_lib.build_model(config, USER_COUNTS, MOVIE_COUNTS)
    assert model_lib.bias_parameter_count(model) == (USERS + 1) + (MOVIES + 1) + 1


def test_untrained_model_predicts_the_mean_rating_when_asked():
    # Seeded: the tables' initial draw otherwise depends on every test before.
    keras.utils.set_random_seed(0)
    config = model_config.SEED_BASELINE.replace(init_at_mean_rating=True, use_biases=True)
    model = model_lib.build_model(config, USER_COUNTS, MOVIE_COUNTS, mean_rating=3.6)
    ids = {features.USER_INDEX: np.array([[0], [5]]), features.MOVIE_INDEX: np.array([[1], [7]])}
    # Embeddings start near zero (uniform +-0.05): a 64-d dot product has a
    # std of about 0.007, which 5 * sigmoid turns into about 0.009 of rating;
    # 0.05 is over five of those, a 2.5 start would be far outside.
    np.testing.assert_allclose(model(ids).numpy().ravel(), [3.6, 3.6], atol=0.05)


def test_row_l2_penalises_only_the_looked_up_rows():
    layer = model_lib.RowL2(0.5)
    vectors = keras.ops.convert_to_tensor([[1.0, 2.0], [0.0, 3.0]])
    layer(vectors)
    # 0.5 * mean(1 + 4, 9) = 3.5
    np.testing.assert_allclose(float(layer.losses[0]), 3.5)


def test_model_config_round_trips_through_json():
    config = model_config.SEED_QR_MD.replace(epochs=9)
    assert model_config.ModelConfig.from_dict(json.loads(config.to_json())) == config


def test_row_l2_per_id_spreads_a_fixed_penalty_over_each_ids_lookups():
    # Id 0 was seen 4 times in training, id 1 once; the OOV row counts as once.
    layer = model_lib.RowL2(0.1, l2_per_id=2.0, counts=[4, 1])
    vectors = keras.ops.convert_to_tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    layer(vectors, keras.ops.convert_to_tensor([[0], [1], [2]]))
    # Coefficients 0.1 + 2/4, 0.1 + 2/1, 0.1 + 2/1 on squared norms 1, 1, 2.
    np.testing.assert_allclose(float(layer.losses[0]), (0.6 + 2.1 + 2 * 2.1) / 3, rtol=1e-6)


def test_row_l2_per_id_needs_the_ids():
    layer = model_lib.RowL2(0.0, l2_per_id=1.0, counts=[3, 2])
    with np.testing.assert_raises(ValueError):
        layer(keras.ops.convert_to_tensor([[1.0, 0.0]]))


def test_model_with_per_id_l2_saves_and_reloads(tmp_path):
    config = model_config.preset("full").replace(l2_per_id=5.0, bias_l2_per_id=1.0)
    model = model_lib.build_model(config, USER_COUNTS, MOVIE_COUNTS, mean_rating=3.5)
    ids = {features.USER_INDEX: np.array([[0], [900]]), features.MOVIE_INDEX: np.array([[1], [7]])}
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded(ids).numpy(), model(ids).numpy(), rtol=1e-6)
    penalty = reloaded.get_layer("user_l2")
    # The per-id weights come back with the model, not from the counts.
    np.testing.assert_allclose(penalty.inverse_counts([0, USERS - 1]).numpy(), [1 / USERS, 1.0])


def test_per_id_l2_keeps_one_over_count_as_runs_of_equal_counts():
    counts = [9, 9, 4, 4, 4, 1, 0]  # frequency-sorted; a zero count counts as one
    starts, inverse = model_lib.count_runs(counts, vocab_size=9)
    np.testing.assert_array_equal(starts, [0, 2, 5])
    np.testing.assert_allclose(inverse, [1 / 9, 1 / 4, 1.0])
    penalty = model_lib.RowL2(0.0, l2_per_id=1.0, counts=counts, vocab_size=9)
    expected = [1 / 9, 1 / 9, 1 / 4, 1 / 4, 1 / 4, 1, 1, 1, 1]  # the last two: OOV buckets
    np.testing.assert_allclose(penalty.inverse_counts(np.arange(9)).numpy(), expected)
    unsorted = model_lib.RowL2(0.0, l2_per_id=1.0, counts=[2, 5, 2], vocab_size=4)
    np.testing.assert_allclose(unsorted.inverse_counts(np.arange(4)).numpy(), [0.5, 0.2, 0.5, 1])


def test_uniform_16x_preset_has_exactly_a_sixteenth_of_full_64d_tables():
    layers = model_lib.embedding_layers(
        model_lib.build_model(model_config.preset("uniform_16x"), USER_COUNTS, MOVIE_COUNTS)
    )
    params = sum(layer.count_params() for layer in layers.values())
    assert params * 16 == (USERS + 1 + MOVIES + 1) * 64


def test_nested_md_tables_are_cut_to_the_width_their_partner_can_meet():
    # Movies far more skewed than users: alone, their head would be widest.
    movie_counts = [int(5000 / (i + 1) ** 0.7) + 1 for i in range(MOVIES)]
    layers = model_lib.id_embeddings(model_config.preset("md_16x"), USER_COUNTS, movie_counts)
    users, movies = layers[features.USER_ID], layers[features.MOVIE_ID]
    assert users.projection == movies.projection == "nested"
    assert max(users.block_dims) == max(movies.block_dims)
    for layer in (users, movies):
        # Each table keeps a 16th of a full 64-d table, projections costing nothing.
        layer.build()
        assert layer.count_params() * 16 <= layer.input_dim * 64
        assert not any("projection" in t["name"] for t in layer.tables())
    # Uncut, the two tables' alpha rules reach different widths.
    uncut = {
        feature: model_lib.embeddings.build_embedding(
            spec, counts, features.NUM_OOV_BUCKETS, 16, feature
        )
        for feature, spec, counts in (
            (features.USER_ID, model_config.MD_16X.user_embedding, USER_COUNTS),
            (features.MOVIE_ID, model_config.MD_16X.movie_embedding, movie_counts),
        )
    }
    assert len({max(layer.block_dims) for layer in uncut.values()}) == 2


def test_md_16x_model_saves_and_reloads(tmp_path):
    model = model_lib.build_model(model_config.preset("md_16x"), USER_COUNTS, MOVIE_COUNTS, 3.5)
    ids = {
        features.USER_INDEX: np.array([[0], [900]]),
        features.MOVIE_INDEX: np.array([[1], [1600]]),
    }
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded(ids).numpy(), model(ids).numpy(), rtol=1e-6)
    assert reloaded.count_params() == model.count_params()


def test_hashed_biases_stay_inside_the_budget_and_train():
    """A one-wide hashed table per side instead of a scalar per id."""
    config = model_config.preset("md_16x").replace(
        user_bias={"type": "hash", "compression": 16}, movie_bias={"type": "hash", "num_buckets": 3}
    )
    model = model_lib.build_model(config, list(range(64, 0, -1)), [9, 7, 5, 3, 1], 3.5)
    biases = model_lib.bias_layers(model)
    assert set(biases) == {"user_id_bias", "movie_id_bias"}
    assert model_lib.bias_parameter_count(model) == 65 // 16 + 3 + 1  # + the global bias
    inputs = {"user_index": np.array([[0], [4], [64]]), "movie_index": np.array([[0], [3], [5]])}
    np.testing.assert_allclose(model.predict(inputs, verbose=0), 3.5, atol=0.5)
    history = model.fit(inputs, np.array([5.0, 1.0, 3.0]), epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_a_bias_spec_is_checked_one_wide():
    with pytest.raises(model_config.SettingError, match="user_bias"):
        model_config.preset("full").replace(user_bias={"type": "md", "dims": [2]})
