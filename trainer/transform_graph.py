"""The Transform graph, applied outside Keras: in the Trainer's input and in the export.

TFT's public ``transform_features_layer()`` is a tf_keras Model. It cannot
take a Keras 3 ``keras.Input``, and a SavedModel that tracks it makes
tf_keras trace its call functions again on save (seconds of every export).
The loader it wraps does the work without the layer; tracking the loader's
attributes, as the layer itself does, keeps the graph's tables and
vocabulary assets in a SavedModel.
"""

from collections.abc import Callable

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.saved import saved_transform_io_v2

from components import features


def load(tf_transform_output: tft.TFTransformOutput) -> saved_transform_io_v2.SavedModelLoader:
    return saved_transform_io_v2.SavedModelLoader(tf_transform_output.transform_savedmodel_dir)


def model_inputs_fn(
    tf_transform_output: tft.TFTransformOutput,
) -> Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]:
    """Raw features (a batch) -> the model's integer id inputs.

    Without autograph: converting TFT's loader code costs seconds per trace
    and it has no Python control flow on tensors to convert.
    """
    loader = load(tf_transform_output)

    @tf.function(autograph=False)
    def model_inputs(raw_features):
        transformed = loader.apply_transform_model(raw_features)
        # Transform also emits the label; Keras warns on every trace when a
        # dict input has keys the model does not take.
        return {name: transformed[name] for name in features.MODEL_INPUT_FEATURES}

    return model_inputs
