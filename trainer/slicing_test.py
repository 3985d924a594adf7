"""The slicing features: the MD layer's equal-mass movie blocks and user activity quartiles."""

import numpy as np

from components import features
from trainer import slicing
from trainer.embeddings import md

# Train ratings per movie and per user, most rated first; ranks follow.
MOVIE_COUNTS = [10, 5, 5, 4, 3, 3]
USER_COUNTS = [8, 6, 5, 4, 3, 2, 1, 1]
BLOCK_NAMES = [name.encode() for name in features.MOVIE_POPULARITY_BLOCK_NAMES]
QUARTILE_NAMES = [name.encode() for name in features.USER_ACTIVITY_QUARTILE_NAMES]


def _slices(user_ranks, movie_ranks):
    out = slicing.slicing_features(
        np.array(user_ranks, np.int64).reshape(-1, 1),
        np.array(movie_ranks, np.int64).reshape(-1, 1),
        len(USER_COUNTS),
        slicing.movie_block_cuts(MOVIE_COUNTS),
    )
    return {name: value.numpy().reshape(-1).tolist() for name, value in out.items()}


def test_popularity_blocks_are_the_md_layers_equal_mass_blocks():
    assert md.block_boundaries_equal_mass(MOVIE_COUNTS, 3) == [0, 1, 3, 6]
    # Thirds of the 30 ratings: 10 | 5 + 5 | 4 + 3 + 3.
    blocks = _slices([0] * 6, range(6))[features.MOVIE_POPULARITY_BLOCK]
    assert blocks == [b"head", b"torso", b"torso", b"tail", b"tail", b"tail"]
    per_rating = [block for block, n in zip(blocks, MOVIE_COUNTS, strict=True) for _ in range(n)]
    assert [per_rating.count(name) for name in BLOCK_NAMES] == [10, 10, 10]


def test_user_activity_quartiles_cut_the_user_ranks_in_four():
    quartiles = _slices(range(8), [0] * 8)[features.USER_ACTIVITY_QUARTILE]
    # 8 users: two per quarter, the most active first.
    assert quartiles == [QUARTILE_NAMES[rank // 2] for rank in range(8)]
    assert quartiles[0] == b"most active 25%" and quartiles[7] == b"least active 25%"


def test_unseen_ids_fall_in_the_tail_and_the_least_active_quartile():
    oov_user, oov_movie = len(USER_COUNTS), len(MOVIE_COUNTS)
    out = _slices([oov_user, 0], [0, oov_movie])
    assert out[features.USER_ACTIVITY_QUARTILE] == [b"least active 25%", b"most active 25%"]
    assert out[features.MOVIE_POPULARITY_BLOCK] == [b"head", b"tail"]


def test_slice_names_look_up_each_index():
    got = slicing.slice_names(np.array([[2], [0], [1]], np.int64), ("a", "b", "c"))
    assert got.numpy().tolist() == [[b"c"], [b"a"], [b"b"]]


def test_fewer_movies_than_blocks_give_each_movie_its_own_block():
    assert slicing.movie_block_cuts([4, 2]) == [1, 2]
    assert slicing.movie_block_cuts([4]) == [1, 1]
