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


def _served(loaded, pairs):
    signature = loaded.signatures["serving_default"]
    return signature(examples=serialized_examples(pairs))["rating"].numpy()


def _direct(model, user_indexes, movie_indexes):
    inputs = {features.USER_INDEX: user_indexes, features.MOVIE_INDEX: movie_indexes}
    return model({k: np.array(v).reshape(-1, 1) for k, v in inputs.items()}).numpy().reshape(-1)


def test_serving_matches_the_in_memory_model(exported):
    model, loaded = exported
    served = _served(loaded, [("user_b", "movie_x"), ("user_a", "movie_y"), ("user_c", "movie_y")])
    # Frequency ranks from the tiny train set: user_b 0, user_a 1, user_c 2; movie_x 0, movie_y 1.
    np.testing.assert_allclose(served, _direct(model, [0, 1, 2], [0, 1, 1]), rtol=1e-6)


def test_unknown_and_empty_ids_get_the_oov_rating(exported):
    model, loaded = exported
    served = _served(
        loaded, [("user_nobody", "movie_x"), ("", "movie_x"), ("user_b", "movie_nothing")]
    )
    assert np.all(np.isfinite(served)) and np.all((served >= 0) & (served <= 5))
    oov_user, oov_movie = 3, 2  # the vocabulary sizes
    direct = _direct(model, [oov_user, oov_user, 0], [0, 0, oov_movie])
    np.testing.assert_allclose(served, direct, rtol=1e-6)


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
    # The slicing features TFMA reads, as strings in the ids' shape; the
    # rating value slices on the label itself.
    assert set(features.SLICING_FEATURES) <= set(out)
    assert out[features.MOVIE_POPULARITY_BLOCK].numpy().tolist() == [[b"head"]]
    assert out[features.USER_ACTIVITY_QUARTILE].numpy().tolist() == [[b"second 25%"]]


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
    served = _served(loaded, [("user_b", "movie_x"), ("nobody", "movie_x")])
    # user_b is the most frequent user (index 0), an unknown one the OOV index 3.
    np.testing.assert_allclose(served, _direct(model, [0, 3], [0, 0]), rtol=1e-5)


def _recommend_tf1(export_dir, user_ids, k):
    """The recommend signature on the TF1 loading path (TF Serving, Vertex AI)."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature = meta_graph.signature_def["recommend"]
        return session.run(
            {name: output.name for name, output in signature.outputs.items()},
            {signature.inputs["user_id"].name: user_ids, signature.inputs["k"].name: k},
        )


def test_recommend_lists_every_movie_by_the_rating_serving_default_gives(exported):
    _, loaded = exported
    out = loaded.signatures["recommend"](
        user_id=tf.constant(["user_b", "user_nobody"]), k=tf.constant(5)
    )
    movie_ids = out["movie_id"].numpy().astype(str)
    ratings = out["rating"].numpy()
    assert movie_ids.shape == ratings.shape == (2, 2)  # k is cut to the 2 movies there are
    for user, movies, scores in zip(["user_b", "user_nobody"], movie_ids, ratings, strict=False):
        assert sorted(movies) == ["movie_x", "movie_y"]
        assert scores[0] >= scores[1]
        served = loaded.signatures["serving_default"](
            examples=serialized_examples([(user, m) for m in movies])
        )["rating"].numpy()
        np.testing.assert_allclose(scores, served, rtol=1e-6)


# Every preset, and biases absent or compressed: the two sides must meet as the model does.
SIDE_CONFIGS = {
    **model_config.PRESETS,
    "no_biases": model_config.FULL.replace(embedding_dim=8, use_biases=False),
    "hashed_biases": model_config.FULL.replace(
        embedding_dim=8,
        user_bias={"type": "hash", "num_buckets": 2},
        movie_bias={"type": "hash", "num_buckets": 2},
    ),
}


@pytest.mark.parametrize("name", list(SIDE_CONFIGS))
def test_recommend_rates_every_pair_as_serving_default_does(tiny_transform, tmp_path, name):
    _, work, _ = tiny_transform
    model = model_lib.build_model(SIDE_CONFIGS[name], user_counts=[3, 2, 1], movie_counts=[4, 2])
    # Trained-looking weights: a fresh model's zero biases would hide a missing one.
    rng = np.random.default_rng(0)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))
    export_dir = str(tmp_path / "export")
    export.export_serving_model(model, tft.TFTransformOutput(work), export_dir)
    loaded = tf.saved_model.load(export_dir)
    users = ["user_a", "user_b", "user_c", "user_nobody"]
    out = loaded.signatures["recommend"](user_id=tf.constant(users), k=tf.constant(2))
    for user, movies, ratings in zip(
        users, out["movie_id"].numpy().astype(str), out["rating"].numpy(), strict=True
    ):
        served = _served(loaded, [(user, movie) for movie in movies])
        np.testing.assert_allclose(ratings, served, rtol=1e-5, atol=1e-5)
        assert ratings[0] >= ratings[1]


def test_recommend_excluding_leaves_out_the_seen_movies(exported):
    _, loaded = exported
    out = loaded.signatures["recommend_excluding"](
        user_id=tf.constant(["user_a", "user_c"]),
        k=tf.constant(1),
        exclude=tf.constant([["movie_x", "movie_unknown"], ["movie_y", ""]]),
    )
    assert out["movie_id"].numpy().astype(str).tolist() == [["movie_y"], ["movie_x"]]


def test_recommend_serves_on_the_tf1_loading_path(tiny_transform, tmp_path):
    _, work, _ = tiny_transform
    model = model_lib.build_model(
        model_config.SEED_BASELINE.replace(embedding_dim=4, use_biases=True),
        user_counts=[3, 2, 1],
        movie_counts=[4, 2],
    )
    export_dir = str(tmp_path / "export")
    export.export_serving_model(model, tft.TFTransformOutput(work), export_dir)
    tf1 = _recommend_tf1(export_dir, [b"user_b"], 2)
    tf2 = tf.saved_model.load(export_dir).signatures["recommend"](
        user_id=tf.constant(["user_b"]), k=tf.constant(2)
    )
    assert tf1["movie_id"].tolist() == tf2["movie_id"].numpy().tolist()
    np.testing.assert_allclose(tf1["rating"], tf2["rating"].numpy(), atol=1e-6)
