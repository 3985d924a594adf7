"""preprocessing_fn run by TF-Transform's Beam implementation on tiny data."""

import pytest
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from components import features
from conftest import raw_metadata
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


# Train ratings per movie and per user, most rated first; ranks follow.
SLICING_MOVIE_COUNTS = [10, 5, 5, 4, 3, 3]
SLICING_USER_COUNTS = [8, 6, 5, 4, 3, 2, 1, 1]


@pytest.fixture(scope="module")
def slicing_transform(tmp_path_factory):
    """Analyses rows with known per-movie and per-user counts, as TFX's Transform does.

    Returns (transformed train rows with their raw rows, transformed unseen rows).
    """

    from components import preprocessing

    movies = [f"movie_{m}" for m, n in enumerate(SLICING_MOVIE_COUNTS) for _ in range(n)]
    users = [f"user_{u}" for u, n in enumerate(SLICING_USER_COUNTS) for _ in range(n)]
    # Pair the most active users with the least rated movies, so no feature
    # follows from the other.
    train = [
        raw_row(user, movie, float(1 + i % 5))
        for i, (user, movie) in enumerate(zip(users, movies[::-1], strict=True))
    ]
    unseen = [raw_row("user_new", "movie_0", 3.0), raw_row("user_0", "movie_new", 3.0)]
    metadata = raw_metadata()
    work = str(tmp_path_factory.mktemp("tft-slicing"))
    # TFX's Transform runs with the deep-copy optimisation, which TF-Transform
    # 1.16 applies to every analysis phase after the first and which fails on
    # apache-beam 2.74: an analyzer chained on another would fail here too.
    with tft_beam.Context(temp_dir=work, use_deep_copy_optimization=True):
        transform_fn = (train, metadata) | tft_beam.AnalyzeDataset(preprocessing.preprocessing_fn)
    with tft_beam.Context(temp_dir=work):
        transformed, _ = ((train, metadata), transform_fn) | tft_beam.TransformDataset()
        transformed_unseen, _ = ((unseen, metadata), transform_fn) | tft_beam.TransformDataset()
    return list(zip(train, transformed, strict=True)), transformed_unseen


BLOCK_NAMES = [name.encode() for name in features.MOVIE_POPULARITY_BLOCK_NAMES]
QUARTILE_NAMES = [name.encode() for name in features.USER_ACTIVITY_QUARTILE_NAMES]


def test_popularity_blocks_are_the_md_layers_equal_mass_blocks(slicing_transform):
    from trainer.embeddings import md as md_embedding

    rows, _ = slicing_transform
    offsets = md_embedding.block_boundaries_equal_mass(SLICING_MOVIE_COUNTS, 3)
    assert offsets == [0, 1, 3, 6]  # thirds of the 30 ratings: 10 | 5 + 5 | 4 + 3 + 3
    for raw, out in rows:
        rank = int(out[features.MOVIE_INDEX][0])
        expected = sum(rank >= cut for cut in offsets[1:-1])
        assert out[features.MOVIE_POPULARITY_BLOCK][0] == BLOCK_NAMES[expected], raw
    blocks = [out[features.MOVIE_POPULARITY_BLOCK][0] for _, out in rows]
    assert [blocks.count(name) for name in BLOCK_NAMES] == [10, 10, 10]
    assert BLOCK_NAMES == [b"head", b"torso", b"tail"]


def test_user_activity_quartiles_cut_the_user_ranks_in_four(slicing_transform):
    rows, _ = slicing_transform
    quartile_of_rank = {}
    for _, out in rows:
        quartile_of_rank[int(out[features.USER_INDEX][0])] = out[features.USER_ACTIVITY_QUARTILE][0]
    # 8 users: two per quarter, the most active first.
    expected = {rank: QUARTILE_NAMES[rank // 2] for rank in range(8)}
    assert quartile_of_rank == expected
    assert expected[0] == b"most active 25%" and expected[7] == b"least active 25%"


def test_unseen_ids_fall_in_the_tail_and_the_least_active_quartile(slicing_transform):
    _, unseen = slicing_transform
    new_user, new_movie = unseen
    assert new_user[features.USER_ACTIVITY_QUARTILE][0] == b"least active 25%"
    assert new_user[features.MOVIE_POPULARITY_BLOCK][0] == b"head"  # movie_0 is the head
    assert new_movie[features.MOVIE_POPULARITY_BLOCK][0] == b"tail"
    assert new_movie[features.USER_ACTIVITY_QUARTILE][0] == b"most active 25%"  # user_0


def test_slicing_features_are_strings_in_the_transform_schema(tiny_transform):
    import tensorflow as tf

    _, work, _ = tiny_transform
    spec = tft.TFTransformOutput(work).transformed_feature_spec()
    for name in (features.MOVIE_POPULARITY_BLOCK, features.USER_ACTIVITY_QUARTILE):
        assert spec[name] == tf.io.FixedLenFeature([1], tf.string), name
    assert spec[features.LABEL].dtype == tf.float32  # the rating value slice stays numeric


def test_slice_names_look_up_each_index():
    import numpy as np

    from components import preprocessing

    got = preprocessing.slice_names(np.array([[2], [0], [1]], np.int64), ("a", "b", "c"))
    assert got.numpy().tolist() == [[b"c"], [b"a"], [b"b"]]


def test_equal_mass_cuts_agree_with_the_md_layer_on_skewed_counts():
    import numpy as np

    from components import preprocessing
    from trainer.embeddings import md as md_embedding

    rng = np.random.default_rng(0)
    for trial in range(60):
        counts = rng.zipf(1.3, size=int(rng.integers(4, 80))).clip(1, 10_000)
        if trial % 4 == 0:
            counts[0] = 3 * counts.sum()  # one movie holds most ratings: cuts are pushed apart
        counts = np.sort(counts)[::-1]
        for num_blocks in (2, 3, 4):
            expected = md_embedding.block_boundaries_equal_mass(counts, num_blocks)[1:-1]
            got = preprocessing.equal_mass_cuts(counts.astype(np.int64), num_blocks)
            assert got.numpy().tolist() == expected, (counts.tolist(), num_blocks)


def test_the_rating_slices_on_the_label(tiny_transform):
    _, _, train = tiny_transform
    assert features.LABEL in features.SLICING_FEATURES
    for row in train:
        assert set(features.SLICING_FEATURES) <= set(row)
