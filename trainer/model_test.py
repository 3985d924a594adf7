"""The two seed variants build with the parameter counts their formulas give."""

import json
import math

import keras
import numpy as np

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
    config = model_config.SEED_BASELINE.replace(init_at_mean_rating=True, use_biases=True)
    model = model_lib.build_model(config, USER_COUNTS, MOVIE_COUNTS, mean_rating=3.6)
    ids = {features.USER_INDEX: np.array([[0], [5]]), features.MOVIE_INDEX: np.array([[1], [7]])}
    # Embeddings start near zero, so the dot product barely moves the output.
    np.testing.assert_allclose(model(ids).numpy().ravel(), [3.6, 3.6], atol=0.02)


def test_row_l2_penalises_only_the_looked_up_rows():
    layer = model_lib.RowL2(0.5)
    vectors = keras.ops.convert_to_tensor([[1.0, 2.0], [0.0, 3.0]])
    layer(vectors)
    # 0.5 * mean(1 + 4, 9) = 3.5
    np.testing.assert_allclose(float(layer.losses[0]), 3.5)


def test_model_config_round_trips_through_json():
    config = model_config.SEED_QR_MD.replace(epochs=9)
    assert model_config.ModelConfig.from_dict(json.loads(config.to_json())) == config
