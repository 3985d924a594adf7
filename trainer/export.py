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
    integer ids), for TFMA's preprocessing and slicing.
"""

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from trainer import transform_graph


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
        self.model_weights = backing_variables(model)
        # Tracking the loader's attributes keeps the Transform graph's tables
        # and vocabulary assets in the SavedModel (trainer/transform_graph.py).
        loader = transform_graph.load(tf_transform_output)
        self._transform = _Untracked(loader)
        self.transform_graph = loader.__dict__
        raw_spec = tf_transform_output.raw_feature_spec()
        self._serving_spec = {name: raw_spec[name] for name in features.RAW_ID_FEATURES}
        self._raw_spec = raw_spec

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
        return self._apply_transform(parsed)

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
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
