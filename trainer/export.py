"""Export: a SavedModel that rates raw ids, with the Transform graph inside.

The Transform layer is a tf_keras object and cannot be applied to a Keras 3
``keras.Input``, so it stays outside the Keras graph: a ``tf.Module`` holds
both and its ``tf.function``s parse, transform and predict.

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


class ServingModule(tf.Module):
    """Tracks the Keras model and the Transform layer for saving."""

    def __init__(self, model, tf_transform_output: tft.TFTransformOutput):
        super().__init__()
        self.model = model
        self.tft_layer = tf_transform_output.transform_features_layer()
        raw_spec = tf_transform_output.raw_feature_spec()
        self._serving_spec = {name: raw_spec[name] for name in features.RAW_ID_FEATURES}
        self._raw_spec = raw_spec

    def _predict(self, transformed):
        inputs = {
            features.USER_INDEX: transformed[features.USER_INDEX],
            features.MOVIE_INDEX: transformed[features.MOVIE_INDEX],
        }
        rating = self.model(inputs, training=False)
        return {"rating": tf.reshape(rating, [-1])}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_examples(self, serialized):
        parsed = tf.io.parse_example(serialized, self._serving_spec)
        return self._predict(self.tft_layer(parsed))

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform_features(self, serialized):
        # The label may be absent at serving time; TFMA always has it.
        parsed = tf.io.parse_example(serialized, self._raw_spec)
        return self.tft_layer(parsed)


def export_serving_model(
    model, tf_transform_output: tft.TFTransformOutput, export_dir: str
) -> None:
    module = ServingModule(model, tf_transform_output)
    signatures = {
        "serving_default": module.serve_examples.get_concrete_function(),
        "transform_features": module.transform_features.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
