"""The Trainer's entry point: ``run_fn`` (module path ``trainer.task.run_fn``).

Reads the transformed examples, builds the model the config asks for, trains
it with Keras progress and TensorBoard logs, and exports a SavedModel whose
``serving_default`` takes serialized ``tf.Example``s with raw string ids.
"""

import ctypes
import dataclasses
import gc
import json
import os
from collections.abc import Callable
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from components import features
from trainer import embeddings
from trainer import export
from trainer import input_plan
from trainer import model as model_lib
from trainer import model_config
from trainer import progress
from trainer import row_sparse
from trainer import transform_graph
from trainer import vocabulary
from trainer.model_config import ModelConfig

# Files written next to the SavedModel (inside it, under assets.extra, so the
# Pusher ships them with the model).
MEMORY_REPORT_FILE = "memory_report.json"
HISTORY_FILE = "history.json"


def read_vocabulary_counts(
    tf_transform_output: tft.TFTransformOutput, vocabulary_name: str
) -> np.ndarray:
    """Train-split frequency of each id, most frequent first (int32, one per id)."""
    return vocabulary.read_counts(tf_transform_output.vocabulary_file_by_name(vocabulary_name))


# Rows per batch when a split is read into memory, and per eval batch: only
# forward passes, so big batches cost nothing in quality.
LOAD_BATCH_SIZE = 65_536
EVAL_BATCH_SIZE = 16_384
# Train steps per call into the compiled train function. A step of these
# small models is mostly Python and Keras bookkeeping, not math; 8 steps a
# call saves much of an epoch's Python overhead. The math is
# unchanged; Keras' per-batch callbacks see every 8th step.
STEPS_PER_EXECUTION = 8


@dataclasses.dataclass(frozen=True)
class RawExampleReader:
    """Raw example files as batches of (model inputs, rating), through the Transform graph.

    The pipeline's Transform does not materialize transformed examples (that
    pass was a large share of its time); the Trainer applies the graph itself,
    loaded once for every split it reads.

    The files are read one after another with ``tf.data.TFRecordDataset``
    and parsed a batch at a time, not through TFX's ``DataAccessor``: TFXIO
    interleaves the gzipped files record by record (``num_parallel_reads``),
    which read them about 16 times slower (DEVELOPERS.md).
    """

    tf_transform_output: tft.TFTransformOutput
    model_inputs: Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]

    @classmethod
    def create(cls, tf_transform_output: tft.TFTransformOutput) -> "RawExampleReader":
        return cls(tf_transform_output, transform_graph.model_inputs_fn(tf_transform_output))

    def batches(
        self,
        file_pattern: Sequence[str],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        shuffle_buffer: int = 0,
    ) -> tf.data.Dataset:
        """One pass over the files; with ``shuffle``, files and records in a seeded order."""
        files = sorted(name for pattern in file_pattern for name in tf.io.gfile.glob(pattern))
        if not files:
            raise ValueError(f"No example files match {list(file_pattern)}")
        if shuffle:
            files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
        compression = "GZIP" if all(name.endswith(".gz") for name in files) else ""
        records = tf.data.TFRecordDataset(files, compression_type=compression)
        if shuffle:
            records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        raw_spec = self.tf_transform_output.raw_feature_spec()

        def decode(serialized):
            raw = tf.io.parse_example(serialized, raw_spec)
            rating = raw.pop(features.LABEL)
            return self.model_inputs(raw), rating

        return records.batch(batch_size).map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def streamed_dataset(
    reader: RawExampleReader,
    file_pattern: list[str],
    batch_size: int,
    shuffle: bool,
    seed: int,
    shuffle_buffer: int,
) -> tf.data.Dataset:
    """One pass over the split, decoded from its TFRecords."""
    return reader.batches(file_pattern, batch_size, shuffle, seed, shuffle_buffer).prefetch(
        tf.data.AUTOTUNE
    )


def load_split(
    reader: RawExampleReader, file_pattern: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The whole split, transformed, as arrays: model inputs, and ratings (one column each)."""
    inputs = {name: [] for name in features.MODEL_INPUT_FEATURES}
    labels = []
    for batch_inputs, batch_labels in reader.batches(file_pattern, LOAD_BATCH_SIZE):
        for name in inputs:
            inputs[name].append(batch_inputs[name].numpy().reshape(-1, 1))
        labels.append(batch_labels.numpy().reshape(-1, 1).astype(np.float32))
    if not labels:
        raise ValueError(f"No examples in {file_pattern}")
    return {name: np.concatenate(parts) for name, parts in inputs.items()}, np.concatenate(labels)


def shuffled_batches(
    inputs: dict[str, np.ndarray], labels: np.ndarray, batch_size: int, seed: int
) -> tuple[tf.data.Dataset, int]:
    """Endless batches, a fresh permutation of the rows every epoch; and steps per epoch.

    Epoch ``e``'s order is a stateless shuffle keyed on (seed, e), so a seed
    gives the same batches run after run. Whole batches are gathered at
    once: no per-row work in tf.data, which matters at millions of rows.
    """
    num_rows = len(labels)
    steps = -(-num_rows // batch_size)
    columns = {name: tf.constant(values) for name, values in inputs.items()}
    label_column = tf.constant(labels)

    def epoch(epoch_number):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_rows, dtype=tf.int64),
            seed=tf.stack([tf.constant(seed, tf.int64), epoch_number]),
        )

        def batch(step):
            rows = order[step * batch_size : tf.minimum((step + 1) * batch_size, num_rows)]
            return (
                {name: tf.gather(column, rows) for name, column in columns.items()},
                tf.gather(label_column, rows),
            )

        return tf.data.Dataset.range(steps).map(batch)

    endless = tf.data.Dataset.range(np.iinfo(np.int64).max).flat_map(epoch)
    return endless.prefetch(tf.data.AUTOTUNE), steps


@dataclasses.dataclass
class TrainingData:
    """What ``train`` fits on.

    Attributes:
      train: batches of (model inputs, rating); endless when
        ``steps_per_epoch`` is set, else one pass per epoch.
      eval: batches of the eval split, one pass.
      mean_rating: mean train rating (the model's starting bias).
      steps_per_epoch: batches per epoch of an endless ``train``.
    """

    train: tf.data.Dataset
    eval: tf.data.Dataset
    mean_rating: float
    steps_per_epoch: int | None = None


def read_training_data(
    config: ModelConfig,
    train_files: list[str],
    eval_files: list[str],
    tf_transform_output: tft.TFTransformOutput,
) -> TrainingData:
    reader = RawExampleReader.create(tf_transform_output)
    plan = input_plan.plan(config.input_in_memory, train_files + eval_files)
    logging.info("%s", plan.describe())
    if plan.in_memory:
        train_inputs, train_labels = load_split(reader, train_files)
        eval_inputs, eval_labels = load_split(reader, eval_files)
        logging.info(
            "Read %d train and %d eval examples into memory", len(train_labels), len(eval_labels)
        )
        train_data, steps = shuffled_batches(
            train_inputs, train_labels, config.batch_size, config.seed
        )
        eval_data = (
            tf.data.Dataset.from_tensor_slices((eval_inputs, eval_labels))
            .batch(EVAL_BATCH_SIZE)
            .cache()
        )
        return TrainingData(train_data, eval_data, float(np.mean(train_labels)), steps)

    def streamed(files, shuffle, batch_size):
        return streamed_dataset(
            reader, files, batch_size, shuffle, config.seed, config.shuffle_buffer
        )

    train_data = streamed(train_files, True, config.batch_size)
    return TrainingData(
        train_data, streamed(eval_files, False, EVAL_BATCH_SIZE), streamed_mean_label(train_data)
    )


def streamed_mean_label(dataset: tf.data.Dataset) -> float:
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
    data: TrainingData,
    user_counts: Sequence[int],
    movie_counts: Sequence[int],
    log_dir: str | None = None,
) -> keras.Model:
    """Builds and fits the model, stopping early as ``model.early_stopping`` says;
    returns it with ``history`` attached."""
    keras.utils.set_random_seed(config.seed)
    mean_rating = data.mean_rating if config.init_at_mean_rating else None
    model = model_lib.build_model(config, user_counts, movie_counts, mean_rating)
    model.steps_per_execution = STEPS_PER_EXECUTION
    model.summary(print_fn=logging.info)
    # Before early stopping, so the epoch it keeps is caught up (row_sparse.CatchUp).
    callbacks = [row_sparse.CatchUp(), *model_lib.early_stopping(config)]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    callbacks.append(progress.TrainingProgress())  # the local run's console; else nothing
    model.fit(
        data.train,
        validation_data=data.eval,
        epochs=config.epochs,
        steps_per_epoch=data.steps_per_epoch,
        callbacks=callbacks,
        verbose=2,
    )
    return model


def memory_report(config: ModelConfig, model: keras.Model) -> dict:
    report = embeddings.embedding_memory_report(
        model_lib.embedding_layers(model), config.embedding_dim
    )
    report["model"] = config.name
    report["bias_params"] = model_lib.bias_parameter_count(model)
    biases = model_lib.bias_layers(model)
    if biases:
        # The per-id bias tables are id-indexed memory too: compared with
        # full (one scalar per id) biases, and counted in the totals below.
        report["biases"] = embeddings.embedding_memory_report(biases, 1)
    # "total" counts the tables only; this adds the biases, against full
    # 64-d tables plus full biases, as the budgets count.
    report["id_indexed_total"] = embeddings.id_indexed_total(
        report, model_config.FULL.embedding_dim
    )
    report["total_model_params"] = int(model.count_params())
    return report


def run_fn(fn_args: FnArgs):
    """TFX Trainer entry point."""
    try:
        _train_and_export(fn_args)
    finally:
        release_memory()


def release_memory() -> None:
    """Frees the Trainer's garbage and hands the freed heap back to the system.

    A local run executes every component in this one process, and glibc's
    malloc keeps freed memory for reuse; what it kept stays in the process
    through the later steps, the Evaluator (the run's peak) among them. The
    log line shows how much came back, which on the scale runs was a small
    part of what the process holds.
    """
    gc.collect()
    try:  # glibc only (Linux); elsewhere the allocator's own policy stands
        libc = ctypes.CDLL("libc.so.6")
        before = _resident_gib()
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return
    logging.info("Trainer: resident memory %.2f GiB -> %.2f GiB", before, _resident_gib())


def _resident_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _train_and_export(fn_args: FnArgs) -> None:
    config = ModelConfig.from_dict((fn_args.custom_config or {}).get("model", {}))
    logging.info("Training model %s", config.to_json())
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    user_counts = read_vocabulary_counts(tf_transform_output, features.USER_VOCABULARY)
    movie_counts = read_vocabulary_counts(tf_transform_output, features.MOVIE_VOCABULARY)

    data = read_training_data(
        config,
        fn_args.train_files,
        fn_args.eval_files,
        tf_transform_output,
    )
    model = train(
        config,
        data,
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
