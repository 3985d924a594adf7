"""The exported SavedModel: raw ids in, the in-memory model's ratings out."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from conftest import serialized_examples
from trainer import export
from trainer import model as model_lib
from trainer import model_config


@pytest.fixture(scope="module")
def exported(tiny_transform, tmp_path_factory):
    _, work, _ = tiny_transform
    output = tft.TFTransformOutput(work)
    model = model_lib.build_model(
        model_config.SEED_BASELINE.replace(embedding_dim=4, use_biases=True),
        user_counts=[3, 2, 1],
        movie_counts=[4, 2],
    )
    export_dir = str(tmp_path_factory.mktemp("export"))
    export.export_serving_model(model, output, export_dir)
    return model, tf.saved_model.load(export_dir)


def test_serving_matches_the_in_memory_model(exported):
    model, loaded = exported
    pairs = [("user_b", "movie_x"), ("user_a", "movie_y"), ("user_c", "movie_y")]
    served = loaded.signatures["serving_default"](examples=serialized_examples(pairs))[
        "rating"
    ].numpy()
    # Frequency ranks from the tiny train set: user_b 0, user_a 1, user_c 2; movie_x 0, movie_y 1.
    direct = model(
        {
            features.USER_INDEX: np.array([[0], [1], [2]]),
            features.MOVIE_INDEX: np.array([[0], [1], [1]]),
        }
    ).numpy()
    np.testing.assert_allclose(served, direct.reshape(-1), rtol=1e-6)


def test_unknown_and_empty_ids_get_the_oov_rating(exported):
    model, loaded = exported
    pairs = [("user_nobody", "movie_x"), ("", "movie_x"), ("user_b", "movie_nothing")]
    served = loaded.signatures["serving_default"](examples=serialized_examples(pairs))[
        "rating"
    ].numpy()
    assert np.all(np.isfinite(served)) and np.all((served >= 0) & (served <= 5))
    oov_user, oov_movie = 3, 2  # the vocabulary sizes
    direct = model(
        {
            features.USER_INDEX: np.array([[oov_user], [oov_user], [0]]),
            features.MOVIE_INDEX: np.array([[0], [0], [oov_movie]]),
        }
    ).numpy()
    np.testing.assert_allclose(served, direct.reshape(-1), rtol=1e-6)


def test_missing_feature_is_a_clear_error(exported):
    _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="movie_id"):
        loaded.signatures["serving_default"](
            examples=serialized_examples([("user_b", "")], features=("user_id",))
        )


def test_transform_features_signature_gives_the_integer_ids(exported):
    _, loaded = exported
    example = tf.train.Example()
    example.features.feature["user_id"].bytes_list.value.append(b"user_a")
    example.features.feature["movie_id"].bytes_list.value.append(b"movie_x")
    example.features.feature["rating"].float_list.value.append(4.0)
    out = loaded.signatures["transform_features"](
        examples=tf.constant([example.SerializeToString()])
    )
    assert out[features.USER_INDEX].numpy().ravel().tolist() == [1]
    assert out[features.MOVIE_INDEX].numpy().ravel().tolist() == [0]
    assert out[features.LABEL].numpy().ravel().tolist() == [4.0]


def test_the_export_carries_its_vocabularies(tiny_transform, tmp_path):
    # The Transform output is gone when the model is served elsewhere: the
    # vocabularies must travel inside the SavedModel's assets.
    import shutil

    _, work, _ = tiny_transform
    transform_copy = tmp_path / "transform"
    shutil.copytree(work, transform_copy)
    model = model_lib.build_model(
        model_config.SEED_BASELINE.replace(embedding_dim=4, use_biases=True),
        user_counts=[3, 2, 1],
        movie_counts=[4, 2],
    )
    export_dir = tmp_path / "export"
    export.export_serving_model(model, tft.TFTransformOutput(str(transform_copy)), str(export_dir))
    shutil.rmtree(transform_copy)

    assert {p.name for p in (export_dir / "assets").iterdir()} >= {
        features.USER_VOCABULARY,
        features.MOVIE_VOCABULARY,
    }
    loaded = tf.saved_model.load(str(export_dir))
    served = loaded.signatures["serving_default"](
        examples=serialized_examples([("user_b", "movie_x"), ("nobody", "movie_x")])
    )["rating"].numpy()
    # user_b is the most frequent user (index 0), an unknown one the OOV index 3.
    expected = (
        model(
            {
                features.USER_INDEX: np.array([[0], [3]]),
                features.MOVIE_INDEX: np.array([[0], [0]]),
            }
        )
        .numpy()
        .ravel()
    )
    np.testing.assert_allclose(served, expected, rtol=1e-5)
