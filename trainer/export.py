"""Export: a SavedModel that rates raw ids, with the Transform graph inside.

The Transform graph stays outside the Keras graph (TFT's layer is a
tf_keras object and cannot take a Keras 3 ``keras.Input``): a ``tf.Module``
holds the model's weights and the loaded Transform graph, and its
``tf.function``s parse, transform and predict.

Signatures:
  serving_default: serialized tf.Example with string ``user_id`` and
    ``movie_id`` -> ``{"rating": float32[batch]}``. A missing feature is an
    InvalidArgument error naming it; unknown ids use the OOV bucket.
  transform_features: serialized tf.Example -> transformed features (the
    integer ids) and the slicing features (``trainer/slicing.py``), for
    TFMA's preprocessing and slicing.
  recommend: raw ``user_id`` strings and ``k`` -> ``{"movie_id":
    string[batch, k], "rating": float32[batch, k]}``, the k movies of the
    vocabulary with the highest predicted ratings, best first. Unknown users
    get the out-of-vocabulary user's list.
  recommend_excluding: the same, with ``exclude``: raw movie ids per user
    (string[batch, n], padded with "") left out of each list (already seen).
"""

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from trainer import model as model_lib
from trainer import slicing
from trainer import transform_graph
from trainer import vocabulary as trainer_vocabulary


class ServingModule(tf.Module):
    """Tracks the model's weights and the Transform graph for saving.

    The Keras model itself stays untracked (a closure of the functions): a
    tracked model would bring its optimizer slots and its traced train, test
    and predict functions into the SavedModel, which made saving slower
    and the files larger, for nothing serving uses.
    """

    def __init__(self, model, tf_transform_output: tft.TFTransformOutput):
        super().__init__()
        self._model = _Untracked(model)
        self._sides = _Untracked(model_lib.sides(model))
        self.model_weights = backing_variables(model)
        # Tracking the loader's attributes keeps the Transform graph's tables
        # and vocabulary assets in the SavedModel (trainer/transform_graph.py).
        loader = transform_graph.load(tf_transform_output)
        self._transform = _Untracked(loader)
        self.transform_graph = loader.__dict__
        raw_spec = tf_transform_output.raw_feature_spec()
        self._serving_spec = {name: raw_spec[name] for name in features.RAW_ID_FEATURES}
        self._raw_spec = raw_spec
        # Recommendations name movies by their raw ids: the vocabulary file
        # (line i is movie index i) travels as an asset and backs a table.
        vocabulary = tf_transform_output.vocabulary_file_by_name(features.MOVIE_VOCABULARY)
        movie_counts = trainer_vocabulary.read_counts(vocabulary)
        self._num_movies = int(len(movie_counts))
        self._movie_cuts = slicing.movie_block_cuts(movie_counts)
        # The user vocabulary's size, from the table built on it (reading a
        # vocabulary of millions of ids again would cost seconds).
        user_table = model_lib.embedding_layers(model)[features.USER_ID]
        self._num_users = int(user_table.input_dim) - features.NUM_OOV_BUCKETS
        self.movie_vocabulary = tf.saved_model.Asset(vocabulary)
        self.movie_lines = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.movie_vocabulary,
                key_dtype=tf.int64,
                key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                value_dtype=tf.string,
                value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value="",
        )

    def _predict(self, transformed):
        inputs = {
            features.USER_INDEX: transformed[features.USER_INDEX],
            features.MOVIE_INDEX: transformed[features.MOVIE_INDEX],
        }
        rating = self._model.value(inputs, training=False)
        return {"rating": tf.reshape(rating, [-1])}

    @tf.function(
        input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")],
        autograph=False,
    )
    def serve_examples(self, serialized):
        parsed = tf.io.parse_example(serialized, self._serving_spec)
        return self._predict(self._apply_transform(parsed))

    @tf.function(
        input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")],
        autograph=False,
    )
    def transform_features(self, serialized):
        # The label may be absent at serving time; TFMA always has it.
        parsed = tf.io.parse_example(serialized, self._raw_spec)
        transformed = self._apply_transform(parsed)
        return {
            **transformed,
            **slicing.slicing_features(
                transformed[features.USER_INDEX],
                transformed[features.MOVIE_INDEX],
                self._num_users,
                self._movie_cuts,
            ),
        }

    @tf.function(
        input_signature=[
            tf.TensorSpec(shape=[None], dtype=tf.string, name="user_id"),
            tf.TensorSpec(shape=[], dtype=tf.int32, name="k"),
        ],
        autograph=False,
    )
    def recommend(self, user_id, k):
        return self._recommend(user_id, k)

    @tf.function(
        input_signature=[
            tf.TensorSpec(shape=[None], dtype=tf.string, name="user_id"),
            tf.TensorSpec(shape=[], dtype=tf.int32, name="k"),
            tf.TensorSpec(shape=[None, None], dtype=tf.string, name="exclude"),
        ],
        autograph=False,
    )
    def recommend_excluding(self, user_id, k, exclude):
        return self._recommend(user_id, k, exclude)

    def _recommend(self, user_id, k, exclude=None):
        """Top-k movies per user by predicted rating, scored by the model's own layers.

        The model is cut where its two sides meet (``trainer.model.sides``):
        the movie side runs once per call over the whole vocabulary and the
        users' scores are one matrix product with it, so the tables are read
        in place, each movie's row once, and the ratings equal what
        ``serving_default`` returns. ``exclude`` holds raw movie ids per user
        (padded with ""); unknown ones are ignored.
        """
        batch = tf.size(user_id)
        movies = self._num_movies
        transformed = self._apply_transform(
            {
                features.USER_ID: tf.reshape(user_id, [-1, 1]),
                features.MOVIE_ID: tf.fill([batch, 1], ""),
            }
        )
        sides = self._sides.value
        user_vectors, user_bias = sides.user(transformed[features.USER_INDEX], training=False)
        movie_vectors, movie_bias = sides.movie(
            tf.range(movies, dtype=tf.int64)[:, None], training=False
        )
        score = tf.matmul(user_vectors, movie_vectors, transpose_b=True)
        ratings = sides.head(score + user_bias + tf.transpose(movie_bias))
        scores = ratings
        if exclude is not None:
            excluded = self._movie_indices(exclude)  # [batch, n], -1 where unknown
            known = excluded >= 0
            rows = tf.repeat(tf.range(batch, dtype=tf.int64)[:, None], tf.shape(exclude)[1], axis=1)
            where = tf.stack(
                [tf.boolean_mask(rows, known), tf.boolean_mask(excluded, known)], axis=1
            )
            scores = tf.tensor_scatter_nd_update(
                scores, where, tf.fill([tf.shape(where)[0]], -float("inf"))
            )
        top = tf.math.top_k(scores, tf.minimum(k, movies))
        lines = self.movie_lines.lookup(tf.cast(top.indices, tf.int64))
        return {
            "movie_id": tf.strings.regex_replace(lines, "^[0-9]+ ", ""),
            "rating": tf.gather(ratings, top.indices, batch_dims=1),
        }

    def _movie_indices(self, movie_ids):
        """Vocabulary indices of raw movie ids; -1 for ids outside the vocabulary."""
        flat = tf.reshape(movie_ids, [-1, 1])
        transformed = self._apply_transform(
            {features.USER_ID: tf.fill(tf.shape(flat), ""), features.MOVIE_ID: flat}
        )
        indices = tf.reshape(transformed[features.MOVIE_INDEX], tf.shape(movie_ids))
        return tf.where(indices < self._num_movies, indices, -1)

    def _apply_transform(self, raw_features):
        return self._transform.value.apply_transform_model(raw_features)


def backing_variables(model) -> list:
    """The ``tf.Variable`` behind each of the model's Keras 3 variables.

    A tracked Keras 3 variable saves a copy of itself as a new variable
    while the traced functions still read the original, so a server that
    restores the checkpoint the TF1 way (TF Serving, Vertex AI,
    ``saved_model_cli run``) fills the copy and every request fails on an
    uninitialized variable (keras-team/keras#19274). Tracking the backing
    variables makes the saved nodes the very ones the functions read.
    """
    variables = []
    for weight in model.weights:
        backing = getattr(weight, "value", weight)
        if not isinstance(backing, tf.Variable):
            raise TypeError(f"{weight.path}: expected a tf.Variable behind it, got {type(backing)}")
        variables.append(backing)
    return variables


class _Untracked:
    """Holds an object where tf.Module's attribute tracking does not look."""

    def __init__(self, value):
        self.value = value


def export_serving_model(
    model, tf_transform_output: tft.TFTransformOutput, export_dir: str
) -> None:
    module = ServingModule(model, tf_transform_output)
    signatures = {
        "serving_default": module.serve_examples.get_concrete_function(),
        "transform_features": module.transform_features.get_concrete_function(),
        "recommend": module.recommend.get_concrete_function(),
        "recommend_excluding": module.recommend_excluding.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
