"""preprocessing_fn run by TF-Transform's Beam implementation on tiny data."""

import tempfile

import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import schema_utils

from components import features
from components import preprocessing

RAW_SPEC = {
    features.USER_ID: tf.io.FixedLenFeature([1], tf.string),
    features.MOVIE_ID: tf.io.FixedLenFeature([1], tf.string),
    features.RATING: tf.io.FixedLenFeature([1], tf.float32),
}


def _row(user, movie, rating):
    return {
        features.USER_ID: [user.encode()],
        features.MOVIE_ID: [movie.encode()],
        features.RATING: [rating],
    }


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """Analyses a train set where user_b > user_a > user_c by frequency."""
    train = (
        [_row("user_b", "movie_x", 4.0)] * 3
        + [_row("user_a", "movie_y", 2.0)] * 2
        + [_row("user_c", "movie_x", 5.0)]
    )
    unseen = [_row("user_new", "movie_y", 3.0), _row("user_c", "movie_new", 1.0)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    work = str(tmp_path_factory.mktemp("tft"))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=work)):
        (transformed_train, _), transform_fn = (
            train,
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn)
        transformed_unseen, _ = ((unseen, metadata), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(work)
    return transformed_train, transformed_unseen, tft.TFTransformOutput(work)


def test_ids_are_ranked_by_train_frequency(transformed):
    train, _, _ = transformed
    index_of = {}
    for raw, out in zip(["user_b"] * 3 + ["user_a"] * 2 + ["user_c"], train):
        index_of.setdefault(raw, out[features.USER_INDEX])
    assert index_of == {"user_b": 0, "user_a": 1, "user_c": 2}
    # movie_x (4 rows) outranks movie_y (2 rows).
    assert train[0][features.MOVIE_INDEX] == 0
    assert train[3][features.MOVIE_INDEX] == 1


def test_ids_unseen_in_train_map_to_the_oov_bucket(transformed):
    _, unseen, output = transformed
    user_vocab = output.vocabulary_size_by_name(features.USER_VOCABULARY)
    movie_vocab = output.vocabulary_size_by_name(features.MOVIE_VOCABULARY)
    assert (user_vocab, movie_vocab) == (3, 2)
    assert unseen[0][features.USER_INDEX] == user_vocab  # the OOV bucket
    assert unseen[1][features.MOVIE_INDEX] == movie_vocab
    assert unseen[1][features.USER_INDEX] == 2  # user_c is known


def test_rating_passes_through_as_float_label(transformed):
    train, _, _ = transformed
    assert [r[features.LABEL] for r in train] == pytest.approx([4.0, 4.0, 4.0, 2.0, 2.0, 5.0])


def test_vocabulary_files_store_frequencies(transformed):
    from trainer import task  # pylint: disable=g-import-not-at-top

    _, _, output = transformed
    assert task.read_vocabulary_counts(output, features.USER_VOCABULARY) == [3, 2, 1]
    assert task.read_vocabulary_counts(output, features.MOVIE_VOCABULARY) == [4, 2]
