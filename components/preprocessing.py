"""The Transform step: raw string ids to frequency-ranked integer ids.

Referenced by module path from the pipeline
(``components.preprocessing.preprocessing_fn``), so Transform loads it from
the installed package rather than packaging a module file per run.
"""

import tensorflow as tf
import tensorflow_transform as tft

from components import features


def preprocessing_fn(inputs):
    """Maps user and movie ids to popularity ranks; passes the rating through.

    The vocabularies are sorted by frequency in the train split (Transform
    analyses only that split), so id 0 is the most-rated user or movie. The
    mixed-dimension embedding relies on this ordering: its popularity blocks are
    contiguous id ranges. Ids absent from the train split map to the single
    out-of-vocabulary bucket, index ``vocabulary size``.

    Also emits the features the Evaluator slices on: the movie popularity
    block and the user activity quartile (see their functions), computed as
    integers and emitted as their names (``slice_names``) so TFMA's slice keys
    read ``("movie_popularity", "head")``; the rating value slices on
    the label itself.
    """
    outputs = {}
    for raw_name in features.RAW_ID_FEATURES:
        outputs[features.INDEX_FEATURE_FOR[raw_name]] = tft.compute_and_apply_vocabulary(
            inputs[raw_name],
            num_oov_buckets=features.NUM_OOV_BUCKETS,
            # Frequencies let the Trainer size tables and cut popularity
            # blocks from data.
            store_frequency=True,
            vocab_filename=features.VOCABULARY_FOR[raw_name],
        )
    outputs[features.MOVIE_POPULARITY_BLOCK] = slice_names(
        movie_popularity_block(inputs[features.MOVIE_ID], outputs[features.MOVIE_INDEX]),
        features.MOVIE_POPULARITY_BLOCK_NAMES,
    )
    outputs[features.USER_ACTIVITY_QUARTILE] = slice_names(
        user_activity_quartile(outputs[features.USER_INDEX]),
        features.USER_ACTIVITY_QUARTILE_NAMES,
    )
    outputs[features.LABEL] = tf.cast(inputs[features.RATING], tf.float32)
    return outputs


def slice_names(index: tf.Tensor, names) -> tf.Tensor:
    """The name of each slice index (0 -> ``names[0]``), as a string tensor.

    A lookup in a constant, no analyzer: TFMA keys a string feature's slices
    by the string, so its output and notebook tools show ``head`` rather
    than ``0``.
    """
    return tf.gather(tf.constant(names, dtype=tf.string), index)


def movie_popularity_block(movie_id: tf.Tensor, movie_index: tf.Tensor) -> tf.Tensor:
    """Head (0), torso (1) or tail (2): each block holds about a third of the train ratings.

    The movie index is the popularity rank, so the blocks are rank ranges cut
    where the running count of train ratings, most rated movie first, comes
    closest to 1/3 and 2/3 of the total: the rule of the MD layer's equal-mass
    blocks, ``trainer.embeddings.md.block_boundaries_equal_mass(counts, 3)``
    (see ``equal_mass_cuts``). The slices are therefore exactly the blocks of
    an ``{"type": "md", "blocks": 3}`` movie table. Presets that cut by
    ``block_fractions`` or ``block_sizes`` (``qr_md`` does) have other
    boundaries; the slices stay equal-mass whatever the model, so every model
    is measured on the same slices. Unseen movies (the out-of-vocabulary
    index, above every rank) are in the tail, as they join the MD layer's
    last block.

    The counts come from ``tft.count_per_key`` on the raw ids rather than
    quantiles of ``movie_index``: a quantile of the index would be an analyzer
    chained on the vocabulary, a second analysis phase, and TFX's Transform
    runs later phases through TF-Transform 1.16's deep-copy step, which fails
    on apache-beam 2.74 (``AppliedPTransform.__init__() missing ...
    'environment_id'``).
    """
    _, counts = tft.count_per_key(tf.reshape(movie_id, [-1]))
    sorted_counts = tf.sort(counts, direction="DESCENDING")
    cuts = equal_mass_cuts(sorted_counts, len(features.MOVIE_POPULARITY_BLOCK_NAMES))
    at_or_past_cut = tf.cast(tf.expand_dims(movie_index, -1) >= cuts, tf.int64)
    return tf.reduce_sum(at_or_past_cut, axis=-1)


def equal_mass_cuts(sorted_counts: tf.Tensor, num_blocks: int) -> tf.Tensor:
    """The interior offsets of ``block_boundaries_equal_mass``, as graph ops.

    Cut ``j`` is the rank where the running count is closest to ``j /
    num_blocks`` of the total (the smaller head on a tie); cuts that coincide
    (one movie holding more than a block's share) are pushed apart so every
    block keeps at least one movie, as the MD layer does.
    """
    counts = tf.cast(sorted_counts, tf.float64)
    num_ids = tf.size(counts, out_type=tf.int64)
    prefix = tf.concat([[0.0], tf.cumsum(counts)], axis=0)  # mass of ranks < i
    targets = prefix[-1] * tf.range(1, num_blocks, dtype=tf.float64) / num_blocks
    above = tf.searchsorted(prefix, targets, side="left", out_type=tf.int64)
    below = above - 1
    nearer_below = targets - tf.gather(prefix, below) <= tf.gather(prefix, above) - targets
    cuts = tf.unstack(tf.where(nearer_below, below, above), num=num_blocks - 1)
    # The MD layer's two passes: at least one row per block from the head,
    # then room for the remaining blocks at the tail.
    for j in range(len(cuts)):
        previous = cuts[j - 1] if j else tf.constant(0, tf.int64)
        cuts[j] = tf.maximum(cuts[j], previous + 1)
    for j in reversed(range(len(cuts))):
        following = cuts[j + 1] if j + 1 < len(cuts) else num_ids
        cuts[j] = tf.minimum(cuts[j], following - 1)
    return tf.stack(cuts)


def user_activity_quartile(user_index: tf.Tensor) -> tf.Tensor:
    """Quartile of the user by ratings per user: 0 the most active quarter of users.

    The user index is the user's activity rank, so the quartile boundaries sit
    at 25/50/75% of the user vocabulary. Unlike the popularity blocks these
    split users, not ratings: the most active quarter holds far more than a
    quarter of the ratings. Users unseen in train rated least of all and join
    the last quartile.
    """
    num_quartiles = len(features.USER_ACTIVITY_QUARTILE_NAMES)
    vocabulary_size = tf.cast(
        tft.experimental.get_vocabulary_size_by_name(features.USER_VOCABULARY), tf.int64
    )
    quartile = user_index * num_quartiles // vocabulary_size
    return tf.minimum(quartile, num_quartiles - 1)
