"""The rating model: two id embeddings, a dot product and a rating head.

The embedding tables are whatever ``ModelConfig.user_embedding`` and
``movie_embedding`` ask for (full, quotient-remainder or mixed-dimension; see
``trainer.embeddings``); the rest of the model is the same for all of them,
so a comparison between techniques compares only the tables.
"""

import math
from typing import Dict, Sequence

import keras

from components import features
from trainer import embeddings
from trainer.model_config import ModelConfig


@keras.saving.register_keras_serializable(package="memrec")
class RowL2(keras.layers.Layer):
    """Adds ``l2 * mean_over_batch(sum(v**2))`` for the looked-up rows.

    Penalising only the rows a batch touches (rather than the whole table every
    step) is the usual matrix-factorisation regulariser: rare ids are not
    shrunk to zero just for existing, and the penalty's scale does not depend
    on the vocabulary size.
    """

    def __init__(self, l2: float, **kwargs):
        super().__init__(**kwargs)
        self.l2 = float(l2)

    def call(self, vectors):
        if self.l2:
            squared = keras.ops.sum(keras.ops.square(vectors), axis=-1)
            self.add_loss(self.l2 * keras.ops.mean(squared))
        return vectors

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


@keras.saving.register_keras_serializable(package="memrec")
class RatingHead(keras.layers.Layer):
    """``max_rating * sigmoid(score + bias)``: a rating in [0, max_rating].

    The bias starts at ``logit(initial_rating / max_rating)`` so that a model
    whose embeddings are still near zero predicts ``initial_rating`` (the mean
    training rating when asked) instead of ``max_rating / 2``.
    """

    def __init__(self, max_rating: float = 5.0, initial_rating: float = None, **kwargs):
        super().__init__(**kwargs)
        self.max_rating = float(max_rating)
        self.initial_rating = None if initial_rating is None else float(initial_rating)

    def build(self, input_shape):
        start = 0.0
        if self.initial_rating is not None:
            p = min(max(self.initial_rating / self.max_rating, 1e-3), 1 - 1e-3)
            start = math.log(p / (1 - p))
        self.bias = self.add_weight(
            name="global_bias", shape=(), initializer=keras.initializers.Constant(start)
        )

    def call(self, score):
        return self.max_rating * keras.ops.sigmoid(score + self.bias)

    def get_config(self):
        return {
            **super().get_config(),
            "max_rating": self.max_rating,
            "initial_rating": self.initial_rating,
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
    user_vector = RowL2(config.l2, name="user_l2")(
        keras.layers.Flatten()(tables[features.USER_ID](user_index))
    )
    movie_vector = RowL2(config.l2, name="movie_l2")(
        keras.layers.Flatten()(tables[features.MOVIE_ID](movie_index))
    )
    score = keras.layers.Dot(axes=-1, name="dot")([user_vector, movie_vector])
    if config.use_biases:
        user_bias = _bias(len(user_counts), config.l2, "user_bias")(user_index)
        movie_bias = _bias(len(movie_counts), config.l2, "movie_bias")(movie_index)
        score = keras.layers.Add(name="score")([score, user_bias, movie_bias])
    rating = RatingHead(
        config.max_rating, mean_rating if config.init_at_mean_rating else None, name="rating"
    )(score)
    model = keras.Model(
        inputs={features.USER_INDEX: user_index, features.MOVIE_INDEX: movie_index},
        outputs=rating,
        name=config.name,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="mean_squared_error",
        metrics=[
            keras.metrics.RootMeanSquaredError(name="rmse"),
            keras.metrics.MeanAbsoluteError(name="mae"),
        ],
    )
    return model


def id_embeddings(
    config: ModelConfig, user_counts: Sequence[int], movie_counts: Sequence[int]
) -> Dict[str, keras.layers.Layer]:
    """The user and movie embedding layers, keyed by raw feature name."""
    return {
        features.USER_ID: embeddings.build_embedding(
            config.user_embedding,
            user_counts,
            features.NUM_OOV_BUCKETS,
            config.embedding_dim,
            name="user_embedding",
        ),
        features.MOVIE_ID: embeddings.build_embedding(
            config.movie_embedding,
            movie_counts,
            features.NUM_OOV_BUCKETS,
            config.embedding_dim,
            name="movie_embedding",
        ),
    }


def _bias(vocab_size: int, l2: float, name: str) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.Embedding(
                vocab_size + features.NUM_OOV_BUCKETS, 1, embeddings_initializer="zeros"
            ),
            keras.layers.Reshape((1,)),
            RowL2(l2),
        ],
        name=name,
    )


def embedding_layers(model: keras.Model) -> Dict[str, keras.layers.Layer]:
    """The id embedding layers of a model built by ``build_model``."""
    return {
        features.USER_ID: model.get_layer("user_embedding"),
        features.MOVIE_ID: model.get_layer("movie_embedding"),
    }


def bias_parameter_count(model: keras.Model) -> int:
    names = {"user_bias", "movie_bias", "rating"}
    return sum(
        int(w.numpy().size) for layer in model.layers if layer.name in names for w in layer.weights
    )
