"""The rating model: two id embeddings, a dot product and a rating head.

The embedding tables are whatever ``ModelConfig.user_embedding`` and
``movie_embedding`` ask for (full, quotient-remainder or mixed-dimension; see
``trainer.embeddings``); the rest of the model is the same for all of them,
so a comparison between techniques compares only the tables.
"""

import copy
import math
from collections.abc import Sequence
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from components import features
from trainer import embeddings
from trainer import row_sparse
from trainer.model_config import RATING_HEADS
from trainer.model_config import ModelConfig

embeddings.register_layers()


def count_runs(counts: Sequence[int], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``1 / max(count, 1)`` of each id, and 1 for the out-of-vocabulary ids after
    them up to ``vocab_size``, as runs of equal values: (first id, value) of each."""
    inverse = 1.0 / np.maximum(np.asarray(counts, "float32"), 1.0)
    inverse = np.append(inverse, np.ones(vocab_size - len(inverse), "float32"))
    starts = np.concatenate([[0], np.flatnonzero(inverse[1:] != inverse[:-1]) + 1])
    return starts.astype("int32"), inverse[starts]


@keras.saving.register_keras_serializable(package="memrec")
class RowL2(keras.layers.Layer):
    """Adds an L2 penalty on the looked-up rows: ``mean_over_batch(coefficient * sum(v**2))``.

    Penalising only the rows a batch touches (rather than the whole table every
    step) is the usual matrix-factorisation regulariser: rare ids are not
    shrunk to zero just for existing, and the penalty's scale does not depend
    on the vocabulary size.

    The coefficient of a row is ``l2 + l2_per_id / count``, where ``count`` is
    its id's train frequency. ``l2`` alone charges every lookup alike, so an
    id's total penalty grows with its data and a rare id is shrunk no more,
    relative to its evidence, than a popular one: an id seen three times fits
    those three ratings. ``l2_per_id`` spreads a fixed penalty over an id's
    lookups, so each id pays it once per epoch whatever its frequency, the
    prior of Bayesian matrix factorisation, which shrinks rare ids hardest.
    With ``l2_per_id`` the layer needs the ids and their ``counts``.
    """

    def __init__(
        self,
        l2: float,
        l2_per_id: float = 0.0,
        counts: Sequence[int] | None = None,
        vocab_size: int | None = None,
        num_runs: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.l2 = float(l2)
        self.l2_per_id = float(l2_per_id)
        if self.l2_per_id:
            if vocab_size is None:
                if counts is None:
                    raise ValueError("l2_per_id needs the ids' counts (or, on reload, vocab_size)")
                vocab_size = len(counts) + features.NUM_OOV_BUCKETS
            self.vocab_size = int(vocab_size)
            if counts is not None:
                starts, inverse = count_runs(counts, self.vocab_size)
                num_runs = len(starts)
            # Ids are frequency-sorted, so 1 / count is a step function of
            # the id with one step per distinct count: its steps, not a float
            # per id. Saved with the weights, so a reloaded layer needs only
            # vocab_size and num_runs.
            self.num_runs = int(num_runs)
            self.run_starts = self.add_weight(
                name="run_starts",
                shape=(self.num_runs,),
                dtype="int32",
                initializer="zeros",
                trainable=False,
            )
            self.run_inverse_counts = self.add_weight(
                name="run_inverse_counts",
                shape=(self.num_runs,),
                initializer="ones",
                trainable=False,
            )
            if counts is not None:
                self.run_starts.assign(starts)
                self.run_inverse_counts.assign(inverse)
        else:
            self.vocab_size = vocab_size
            self.num_runs = num_runs

    def inverse_counts(self, ids):
        """``1 / count`` of each id (1 for the out-of-vocabulary buckets)."""
        ids = tf.cast(ids, "int32")
        run = tf.searchsorted(self.run_starts.value, ids, side="right") - 1
        return tf.gather(self.run_inverse_counts.value, run)

    def call(self, vectors, ids=None):
        if not (self.l2 or self.l2_per_id):
            return vectors
        squared = keras.ops.sum(keras.ops.square(vectors), axis=-1)
        coefficient = self.l2
        if self.l2_per_id:
            if ids is None:
                raise ValueError(f"{self.name}: l2_per_id needs the looked-up ids")
            flat_ids = keras.ops.reshape(keras.ops.cast(ids, "int32"), (-1,))
            coefficient = coefficient + self.l2_per_id * self.inverse_counts(flat_ids)
        self.add_loss(keras.ops.mean(coefficient * squared))
        return vectors

    def get_config(self):
        return {
            **super().get_config(),
            "l2": self.l2,
            "l2_per_id": self.l2_per_id,
            "vocab_size": self.vocab_size,
            "num_runs": self.num_runs,
        }


@keras.saving.register_keras_serializable(package="memrec")
class RatingHead(keras.layers.Layer):
    """Turns a score into a rating in ``[min_rating, max_rating]``.

    ``kind="sigmoid"`` (the seed's head when ``min_rating`` is 0):
    ``min_rating + (max_rating - min_rating) * sigmoid(score + bias)``.

    ``kind="linear"``: ``score + bias``, clipped to the range on the forward
    pass only. The gradient is that of the unclipped value (straight-through),
    so a prediction outside the range is still pulled back towards its target
    instead of receiving no gradient at all, and the bias and the dot product
    are additive, as in biased matrix factorisation.

    The bias starts where an untrained model (embeddings near zero) predicts
    ``initial_rating`` (the mean training rating when asked); without one,
    the middle of the range.
    """

    def __init__(
        self,
        max_rating: float = 5.0,
        initial_rating: float = None,
        min_rating: float = 0.0,
        kind: str = "sigmoid",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kind not in RATING_HEADS:
            raise ValueError(f"rating head must be one of {RATING_HEADS}, got {kind!r}")
        if not min_rating < max_rating:
            raise ValueError(f"need min_rating < max_rating, got {min_rating}, {max_rating}")
        self.max_rating = float(max_rating)
        self.min_rating = float(min_rating)
        self.initial_rating = None if initial_rating is None else float(initial_rating)
        self.kind = kind

    def _initial_bias(self) -> float:
        middle = (self.min_rating + self.max_rating) / 2
        start = middle if self.initial_rating is None else self.initial_rating
        if self.kind == "linear":
            return start
        p = (start - self.min_rating) / (self.max_rating - self.min_rating)
        p = min(max(p, 1e-3), 1 - 1e-3)
        return math.log(p / (1 - p))

    def build(self, input_shape):
        self.bias = self.add_weight(
            name="global_bias",
            shape=(),
            initializer=keras.initializers.Constant(self._initial_bias()),
        )

    def call(self, score):
        score = score + self.bias
        if self.kind == "sigmoid":
            span = self.max_rating - self.min_rating
            return self.min_rating + span * keras.ops.sigmoid(score)
        clipped = keras.ops.clip(score, self.min_rating, self.max_rating)
        return score + keras.ops.stop_gradient(clipped - score)

    def get_config(self):
        return {
            **super().get_config(),
            "max_rating": self.max_rating,
            "initial_rating": self.initial_rating,
            "min_rating": self.min_rating,
            "kind": self.kind,
        }


def build_model(
    config: ModelConfig,
    user_counts: Sequence[int],
    movie_counts: Sequence[int],
    mean_rating: float = None,
) -> keras.Model:
    """Builds the model for ids ranked by frequency (counts sorted descending).

    Args:
      config: the model settings.
      user_counts, movie_counts: train-split frequency of each vocabulary id,
        most frequent first (from the Transform vocabularies).
      mean_rating: the train-split mean rating, used only when
        ``config.init_at_mean_rating``.
    """
    user_index = keras.Input(shape=(1,), dtype="int64", name=features.USER_INDEX)
    movie_index = keras.Input(shape=(1,), dtype="int64", name=features.MOVIE_INDEX)
    tables = id_embeddings(config, user_counts, movie_counts)
    # A plain Embedding keeps the ids' [batch, 1] shape; QR and MD squeeze it.
    user_vector = RowL2(config.l2, config.l2_per_id, user_counts, name="user_l2")(
        keras.layers.Flatten()(tables[features.USER_ID](user_index)), user_index
    )
    movie_vector = RowL2(config.l2, config.l2_per_id, movie_counts, name="movie_l2")(
        keras.layers.Flatten()(tables[features.MOVIE_ID](movie_index)), movie_index
    )
    score = keras.layers.Dot(axes=-1, name="dot")([user_vector, movie_vector])
    if config.use_biases:
        bias_l2 = config.l2 if config.bias_l2 is None else config.bias_l2
        user_bias, movie_bias = (
            _bias(ids, counts, spec, bias_l2, config.bias_l2_per_id, name)
            for ids, counts, spec, name in (
                (user_index, user_counts, config.user_bias, "user_bias"),
                (movie_index, movie_counts, config.movie_bias, "movie_bias"),
            )
        )
        score = keras.layers.Add(name="score")([score, user_bias, movie_bias])
    rating = RatingHead(
        max_rating=config.max_rating,
        initial_rating=mean_rating if config.init_at_mean_rating else None,
        min_rating=config.min_rating,
        kind=config.rating_head,
        name="rating",
    )(score)
    model = keras.Model(
        inputs={features.USER_INDEX: user_index, features.MOVIE_INDEX: movie_index},
        outputs=rating,
        name=config.name,
    )
    model.compile(
        optimizer=_optimizer(config),
        loss="mean_squared_error",
        metrics=[
            keras.metrics.RootMeanSquaredError(name="rmse"),
            keras.metrics.MeanAbsoluteError(name="mae"),
        ],
    )
    return model


def early_stopping(config: ModelConfig) -> list[keras.callbacks.Callback]:
    """The callbacks that stop training after ``early_stopping_patience`` epochs
    without a better eval RMSE and keep the best epoch's weights; none at 0.

    Early stopping watches the eval RMSE, the figure the Evaluator blesses on,
    rather than the eval loss, which also holds the L2 penalty.
    """
    if not config.early_stopping_patience:
        return []
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_rmse",
            mode="min",
            patience=config.early_stopping_patience,
            restore_best_weights=True,
        )
    ]


def _optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    settings = dict(
        learning_rate=config.learning_rate,
        beta_2=config.adam_beta_2,
        epsilon=config.adam_epsilon,
    )
    if config.weight_decay:
        # Decoupled decay shrinks every row every step, seen in the batch or
        # not, unlike the per-looked-up-row L2 penalty.
        return keras.optimizers.AdamW(weight_decay=config.weight_decay, **settings)
    if config.row_updates == "dense":
        return keras.optimizers.Adam(**settings)
    # Updates only the rows a batch looked up (tables, biases): a step costs
    # the batch, not the vocabulary. Dense weights get plain Adam.
    return row_sparse.RowSparseAdam(catch_up=config.row_updates == "catch_up", **settings)


def id_embeddings(
    config: ModelConfig, user_counts: Sequence[int], movie_counts: Sequence[int]
) -> dict[str, keras.layers.Layer]:
    """The user and movie embedding layers, keyed by raw feature name.

    Both tables are resolved together (``trainer.embeddings.build_tables``),
    so two tables that zero-pad narrow rows are cut to the width they meet in.
    """
    sides = {
        "user_embedding": (features.USER_ID, config.user_embedding, user_counts),
        "movie_embedding": (features.MOVIE_ID, config.movie_embedding, movie_counts),
    }
    tables = embeddings.build_tables(
        {name: spec for name, (_, spec, _) in sides.items()},
        {
            name: embeddings.Vocabulary.of(counts, features.NUM_OOV_BUCKETS)
            for name, (_, _, counts) in sides.items()
        },
        config.embedding_dim,
    )
    return {
        feature: tables[name].build(name, initializer=_initializer(config))
        for name, (feature, _, _) in sides.items()
    }


def _initializer(config: ModelConfig):
    """A fresh initializer per table (None keeps each layer's own default)."""
    if config.embeddings_initializer is None:
        return None
    return keras.initializers.get(copy.deepcopy(config.embeddings_initializer))


def _bias(ids, counts, spec, l2: float, l2_per_id: float, name: str) -> keras.KerasTensor:
    """A scalar per id from a one-wide table of ``spec``, penalised like the factors.

    Zero at the start, so an untrained model predicts the rating head's
    start; QR's factors start at its own default, since a product of zero
    factors would never move.
    """
    parsed = embeddings.parse(spec, 1)
    initializer = None if isinstance(parsed, embeddings.QRSpec) else "zeros"
    table = embeddings.build_embedding(
        parsed, counts, features.NUM_OOV_BUCKETS, 1, name=name, initializer=initializer
    )
    bias = keras.layers.Reshape((1,))(table(ids))
    return RowL2(l2, l2_per_id, counts, name=f"{name}_l2")(bias, ids)


class Sides(NamedTuple):
    """A model of ``build_model`` cut where its two sides meet.

    ``user`` and ``movie`` map ids ([n, 1]) to their vector and bias (zero
    without biases); ``head`` maps a score ``u . v + b_u + b_m`` to a rating.
    Scoring one user against every movie then reads each movie's row once,
    not once per user.
    """

    user: keras.Model
    movie: keras.Model
    head: keras.layers.Layer


def sides(model: keras.Model) -> Sides:
    layer_names = {layer.name for layer in model.layers}

    def side(input_name: str, prefix: str) -> keras.Model:
        ids = model.input[input_name]
        vector = model.get_layer(f"{prefix}_l2").output
        if f"{prefix}_bias_l2" in layer_names:
            bias = model.get_layer(f"{prefix}_bias_l2").output
        else:
            bias = keras.ops.zeros_like(vector[:, :1])
        return keras.Model(ids, [vector, bias], name=f"{model.name}_{prefix}_side")

    return Sides(
        side(features.USER_INDEX, "user"),
        side(features.MOVIE_INDEX, "movie"),
        model.get_layer("rating"),
    )


def embedding_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The id embedding layers of a model built by ``build_model``."""
    return {
        features.USER_ID: model.get_layer("user_embedding"),
        features.MOVIE_ID: model.get_layer("movie_embedding"),
    }


def bias_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The per-id bias tables of a model built by ``build_model`` (none without biases)."""
    names = {"user_id_bias": "user_bias", "movie_id_bias": "movie_bias"}
    layers = {layer.name: layer for layer in model.layers}
    return {feature: layers[name] for feature, name in names.items() if name in layers}


def bias_parameter_count(model: keras.Model) -> int:
    names = {"user_bias", "movie_bias", "rating"}
    return sum(
        int(w.numpy().size) for layer in model.layers if layer.name in names for w in layer.weights
    )
