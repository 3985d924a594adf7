"""preprocessing_fn run by TF-Transform's Beam implementation on tiny data."""

import pytest
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from components import features
from conftest import raw_row


def test_ids_are_ranked_by_train_frequency(tiny_transform):
    _, _, train = tiny_transform
    users = [row[features.USER_INDEX] for row in train]
    movies = [row[features.MOVIE_INDEX] for row in train]
    # user_b (3 rows) -> 0, user_a (2) -> 1, user_c (1) -> 2.
    assert users == [0, 0, 0, 1, 1, 2]
    # movie_x (4 rows) -> 0, movie_y (2) -> 1.
    assert movies == [0, 0, 0, 1, 1, 0]


def test_ids_unseen_in_train_map_to_the_oov_bucket(tiny_transform):
    (transform_fn, metadata), work, _ = tiny_transform
    unseen = [raw_row("user_new", "movie_y", 3.0), raw_row("user_c", "movie_new", 1.0)]
    with tft_beam.Context(temp_dir=work + "/tmp-unseen"):
        transformed, _ = ((unseen, metadata), transform_fn) | tft_beam.TransformDataset()
    output = tft.TFTransformOutput(work)
    user_vocab = output.vocabulary_size_by_name(features.USER_VOCABULARY)
    movie_vocab = output.vocabulary_size_by_name(features.MOVIE_VOCABULARY)
    assert (user_vocab, movie_vocab) == (3, 2)
    assert transformed[0][features.USER_INDEX] == user_vocab  # the OOV bucket
    assert transformed[1][features.MOVIE_INDEX] == movie_vocab
    assert transformed[1][features.USER_INDEX] == 2  # user_c is known


def test_rating_passes_through_as_float_label(tiny_transform):
    _, _, train = tiny_transform
    assert [r[features.LABEL] for r in train] == pytest.approx([4.0, 4.0, 4.0, 2.0, 2.0, 5.0])


def test_vocabulary_files_store_frequencies(tiny_transform):
    from trainer import task

    _, work, _ = tiny_transform
    output = tft.TFTransformOutput(work)
    assert task.read_vocabulary_counts(output, features.USER_VOCABULARY).tolist() == [3, 2, 1]
    assert task.read_vocabulary_counts(output, features.MOVIE_VOCABULARY).tolist() == [4, 2]
