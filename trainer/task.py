"""The Trainer's entry point: ``run_fn`` (module path ``trainer.task.run_fn``).

Reads the transformed examples, builds the model the config asks for, trains
it with Keras progress and TensorBoard logs, and exports a SavedModel whose
``serving_default`` takes serialized ``tf.Example``s with raw string ids.
"""

import json
import os
from typing import Dict, List

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import features
from trainer import embeddings
from trainer import export
from trainer import model as model_lib
from trainer.model_config import ModelConfig

# Files written next to the SavedModel (inside it, under assets.extra, so the
# Pusher ships them with the model).
MEMORY_REPORT_FILE = "memory_report.json"
HISTORY_FILE = "history.json"


def read_vocabulary_counts(
    tf_transform_output: tft.TFTransformOutput, vocabulary_name: str
) -> List[int]:
    """Train-split frequency of each id, most frequent first."""
    path = tf_transform_output.vocabulary_file_by_name(vocabulary_name)
    counts = []
    with tf.io.gfile.GFile(path, "rb") as f:
        for line_number, line in enumerate(f, start=1):
            count, _, _ = line.partition(b" ")
            try:
                counts.append(int(count))
            except ValueError:
                raise ValueError(
                    f"{path}:{line_number}: expected 'count token', got {line!r}"
                ) from None
    if not counts:
        raise ValueError(f"Vocabulary {path} is empty: no ids in the train split")
    return counts


def input_dataset(
    file_pattern: List[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    shuffle: bool,
    seed: int,
    shuffle_buffer: int,
) -> tf.data.Dataset:
    """One pass over the transformed split, as (features, rating) batches."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size,
            label_key=features.LABEL,
            num_epochs=1,
            shuffle=shuffle,
            shuffle_seed=seed,
            shuffle_buffer_size=shuffle_buffer,
        ),
        tf_transform_output.transformed_metadata.schema,
    )
    # Transform also emits the Evaluator's slicing features; Keras warns on
    # every trace when a dict input has keys the model does not take.
    dataset = dataset.map(
        lambda inputs, label: ({k: inputs[k] for k in features.MODEL_INPUT_FEATURES}, label)
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def mean_label(dataset: tf.data.Dataset) -> float:
    total, count = dataset.reduce(
        (tf.constant(0.0, tf.float64), tf.constant(0, tf.int64)),
        lambda acc, batch: (
            acc[0] + tf.reduce_sum(tf.cast(batch[1], tf.float64)),
            acc[1] + tf.size(batch[1], out_type=tf.int64),
        ),
    )
    count = int(count)
    if count == 0:
        raise ValueError("The train split has no examples")
    return float(total) / count


def train(
    config: ModelConfig,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    user_counts: List[int],
    movie_counts: List[int],
    log_dir: str = None,
) -> keras.Model:
    """Builds and fits the model; returns it with ``history`` attached."""
    keras.utils.set_random_seed(config.seed)
    mean_rating = mean_label(train_data) if config.init_at_mean_rating else None
    model = model_lib.build_model(config, user_counts, movie_counts, mean_rating)
    model.summary(print_fn=logging.info)
    callbacks = []
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    model.fit(
        train_data, validation_data=eval_data, epochs=config.epochs, callbacks=callbacks, verbose=2
    )
    return model


def memory_report(config: ModelConfig, model: keras.Model) -> Dict:
    report = embeddings.embedding_memory_report(
        model_lib.embedding_layers(model), config.embedding_dim
    )
    report["model"] = config.name
    report["bias_params"] = model_lib.bias_parameter_count(model)
    report["total_model_params"] = int(model.count_params())
    return report


def run_fn(fn_args: tfx.components.FnArgs):
    """TFX Trainer entry point."""
    config = ModelConfig.from_dict((fn_args.custom_config or {}).get("model", {}))
    logging.info("Training model %s", config.to_json())
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    user_counts = read_vocabulary_counts(tf_transform_output, features.USER_VOCABULARY)
    movie_counts = read_vocabulary_counts(tf_transform_output, features.MOVIE_VOCABULARY)

    def dataset(files, shuffle):
        return input_dataset(
            files,
            fn_args.data_accessor,
            tf_transform_output,
            config.batch_size,
            shuffle,
            config.seed,
            config.shuffle_buffer,
        )

    model = train(
        config,
        dataset(fn_args.train_files, True),
        dataset(fn_args.eval_files, False),
        user_counts,
        movie_counts,
        log_dir=os.path.join(fn_args.model_run_dir, "tensorboard"),
    )

    report = memory_report(config, model)
    logging.info("Embedding memory: %s", json.dumps(report, indent=2))
    export.export_serving_model(model, tf_transform_output, fn_args.serving_model_dir)
    extra = os.path.join(fn_args.serving_model_dir, "assets.extra")
    _write_json(os.path.join(extra, MEMORY_REPORT_FILE), report)
    _write_json(
        os.path.join(extra, HISTORY_FILE),
        {
            "config": json.loads(config.to_json()),
            "history": {k: [float(v) for v in vs] for k, vs in model.history.history.items()},
        },
    )


def _write_json(path: str, payload) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(payload, f, indent=2, default=_to_builtin)


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value)}")
