"""The Evaluator's slicing features, computed in the exported model from the vocabularies' counts.

TFMA reads them through the SavedModel's ``transform_features`` signature
(``trainer/export.py``), beside the Transform graph's integer ids:

- ``movie_popularity``: head, torso or tail, each holding about a third of
  the train ratings. The movie index is the popularity rank, so the blocks
  are rank ranges cut by the MD layer's equal-mass rule
  (``trainer.embeddings.md.block_boundaries_equal_mass(counts, 3)``): the
  slices are exactly the blocks of an ``{"type": "md", "blocks": 3}`` movie
  table, whatever the model's own layout, so every model is measured on the
  same slices. Movies unseen in train (the out-of-vocabulary index, above
  every rank) are in the tail, as they join the MD layer's last block.
- ``user_activity``: the quartile of the user's activity rank, boundaries at
  25/50/75% of the user vocabulary. These split users, not ratings: the most
  active quarter holds far more than a quarter of the ratings. Users unseen
  in train rated least of all and join the last quartile.

They are emitted as their names (``slice_names``) so TFMA's slice keys read
``("movie_popularity", "head")``. Transform computed them once, which cost it
an analyzer over every movie id (``tft.count_per_key``), about a quarter of
its time on a million users; the Trainer reads the same counts from the
vocabulary files anyway.
"""

from collections.abc import Sequence

import tensorflow as tf

from components import features
from trainer.embeddings import md


def slice_names(index: tf.Tensor, names: Sequence[str]) -> tf.Tensor:
    """The name of each slice index (0 -> ``names[0]``), as a string tensor."""
    return tf.gather(tf.constant(names, dtype=tf.string), index)


def movie_block_cuts(movie_counts: Sequence[int]) -> list[int]:
    """The ranks where the torso and the tail start.

    With fewer movies than blocks each movie is a block of its own and the
    last blocks hold only unseen movies.
    """
    blocks = len(features.MOVIE_POPULARITY_BLOCK_NAMES)
    if len(movie_counts) < blocks:
        return [min(cut, len(movie_counts)) for cut in range(1, blocks)]
    return md.block_boundaries_equal_mass(movie_counts, blocks)[1:-1]


def slicing_features(
    user_index: tf.Tensor, movie_index: tf.Tensor, num_users: int, movie_cuts: Sequence[int]
) -> dict[str, tf.Tensor]:
    """The named slice of each example, in the shape of its (integer) ids."""
    cuts = tf.constant(movie_cuts, dtype=tf.int64)
    block = tf.reduce_sum(tf.cast(tf.expand_dims(movie_index, -1) >= cuts, tf.int64), axis=-1)
    quartiles = len(features.USER_ACTIVITY_QUARTILE_NAMES)
    quartile = tf.minimum(user_index * quartiles // num_users, quartiles - 1)
    return {
        features.MOVIE_POPULARITY_BLOCK: slice_names(block, features.MOVIE_POPULARITY_BLOCK_NAMES),
        features.USER_ACTIVITY_QUARTILE: slice_names(
            quartile, features.USER_ACTIVITY_QUARTILE_NAMES
        ),
    }
