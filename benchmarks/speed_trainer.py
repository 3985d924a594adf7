"""Our training path, timed: in-memory or TFRecord ids into ``trainer.model.build_model``.

``train_to_target`` trains a configuration epoch by epoch until its eval RMSE
reaches a target (the seed's best, see ``benchmarks.seed_reference``) and
records when each epoch's training and validation began and ended, so the
speed benchmark can report examples per second and the time to the target.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from benchmarks import speed_tools
from benchmarks.datasets import PreparedData
from components import features
from trainer import model as model_lib
from trainer import task
from trainer.model_config import ModelConfig

# Validation is forward passes only, so large batches cost nothing in quality.
EVAL_BATCH_SIZE = 4096
# How the training examples reach the model.
INPUT_KINDS = ("gather", "rows", "tfrecord")
# Epochs without a better eval RMSE before a run that missed the target gives up:
# past its best, it will not reach the target.
PATIENCE = 3


class EpochClock(keras.callbacks.Callback):
    """Wall-clock marks of a ``fit``: start, and per epoch its begin, validation start and end.

    ``started`` is set by the caller just before it builds the input pipeline
    and the model, so the time to an epoch's end covers everything a user
    waits for: input set-up, model build, tracing, training and validation.
    Training stops at the first epoch whose eval RMSE is at most
    ``target_rmse``, after ``patience`` epochs without a better one, or, in
    the middle of an epoch, once ``max_seconds`` have passed.
    """

    def __init__(
        self,
        started: float,
        num_train_examples: int,
        batch_size: int,
        target_rmse: Optional[float] = None,
        patience: Optional[int] = None,
        max_seconds: Optional[float] = None,
    ):
        super().__init__()
        self.started = started
        self.num_train_examples = num_train_examples
        self.batch_size = batch_size
        self.target_rmse = target_rmse
        self.patience = patience
        self.deadline = None if max_seconds is None else started + max_seconds
        self.timed_out = False
        self.epoch_begin: List[float] = []
        self.validation_begin: List[float] = []
        self.epoch_end: List[float] = []
        self.val_rmse: List[float] = []
        self.steps: List[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_begin.append(time.perf_counter())
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        # With several steps per execution Keras calls this once per
        # execution, with the index of its last step.
        self.steps[-1] = batch + 1
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.timed_out = True
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        # Only validation runs evaluate during fit; record its first start per epoch.
        if len(self.validation_begin) < len(self.epoch_begin):
            self.validation_begin.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append(time.perf_counter())
        rmse = float((logs or {}).get("val_rmse", float("nan")))
        self.val_rmse.append(rmse)
        if self.target_rmse is not None and rmse <= self.target_rmse:
            self.model.stop_training = True
        best = int(np.nanargmin(self.val_rmse)) if not np.isnan(self.val_rmse).all() else 0
        if self.patience is not None and len(self.val_rmse) - 1 - best >= self.patience:
            self.model.stop_training = True
        if self.deadline is not None and self.epoch_end[-1] > self.deadline:
            self.timed_out = True
            self.model.stop_training = True

    def summary(self) -> Dict:
        """Per-epoch times, throughput, and when the best (or target) RMSE was reached."""
        examples = [min(s * self.batch_size, self.num_train_examples) for s in self.steps]
        result = speed_tools.epoch_summary(
            self.started,
            self.epoch_begin,
            self.validation_begin,
            self.epoch_end,
            self.val_rmse,
            examples,
            self.target_rmse,
        )
        result["timed_out"] = self.timed_out
        return result


def gather_batches(data: PreparedData, batch_size: int, seed: int) -> tuple[tf.data.Dataset, int]:
    """Shuffled batches cut from in-memory tensors, one gather per batch.

    Every epoch takes a fresh permutation of the row numbers; a batch is a
    slice of it gathered from the id and rating tensors, so tf.data does
    per-batch rather than per-row work. Repeats forever; the second value is
    the steps in one epoch.
    """
    num_rows = data.num_train
    steps = -(-num_rows // batch_size)
    users = tf.constant(data.train_users.reshape(-1, 1), tf.int64)
    movies = tf.constant(data.train_movies.reshape(-1, 1), tf.int64)
    ratings = tf.constant(data.train_ratings.reshape(-1, 1), tf.float32)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_rows, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        starts = tf.data.Dataset.range(0, num_rows, batch_size)

        def batch_at(start):
            rows = order[start : start + batch_size]
            return (
                {
                    features.USER_INDEX: tf.gather(users, rows),
                    features.MOVIE_INDEX: tf.gather(movies, rows),
                },
                tf.gather(ratings, rows),
            )

        return starts.map(batch_at)

    dataset = tf.data.Dataset.counter().flat_map(one_epoch)
    return dataset.prefetch(tf.data.AUTOTUNE), steps


def row_batches(data: PreparedData, batch_size: int, seed: int) -> tuple[tf.data.Dataset, int]:
    """The textbook input: per-row slices, shuffled in a full-size buffer, then batched."""
    dataset = tf.data.Dataset.from_tensor_slices(
        (
            {
                features.USER_INDEX: data.train_users.reshape(-1, 1),
                features.MOVIE_INDEX: data.train_movies.reshape(-1, 1),
            },
            data.train_ratings.reshape(-1, 1),
        )
    )
    dataset = dataset.shuffle(data.num_train, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).repeat().prefetch(tf.data.AUTOTUNE)
    return dataset, -(-data.num_train // batch_size)


def write_tfrecords(data: PreparedData, path: str) -> str:
    """The train split as gzipped tf.Examples of integer ids, as Transform writes them."""
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for user, movie, rating in zip(data.train_users, data.train_movies, data.train_ratings):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        features.USER_INDEX: _int64_feature(user),
                        features.MOVIE_INDEX: _int64_feature(movie),
                        features.LABEL: tf.train.Feature(
                            float_list=tf.train.FloatList(value=[float(rating)])
                        ),
                    }
                )
            )
            writer.write(example.SerializeToString())
    return path


def _int64_feature(value) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def tfrecord_batches(
    path: str, num_rows: int, batch_size: int, seed: int, shuffle_buffer: int
) -> tuple[tf.data.Dataset, int]:
    """Reads TFRecords the way a tf.data Trainer would: shuffle, batch, then parse per batch."""
    spec = {
        features.USER_INDEX: tf.io.FixedLenFeature([1], tf.int64),
        features.MOVIE_INDEX: tf.io.FixedLenFeature([1], tf.int64),
        features.LABEL: tf.io.FixedLenFeature([1], tf.float32),
    }

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        label = parsed.pop(features.LABEL)
        return parsed, label

    dataset = tf.data.TFRecordDataset(path, compression_type="GZIP")
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.repeat().prefetch(tf.data.AUTOTUNE), -(-num_rows // batch_size)


def eval_batches(data: PreparedData) -> tf.data.Dataset:
    inputs = {
        features.USER_INDEX: data.eval_users.reshape(-1, 1),
        features.MOVIE_INDEX: data.eval_movies.reshape(-1, 1),
    }
    dataset = tf.data.Dataset.from_tensor_slices((inputs, data.eval_ratings.reshape(-1, 1)))
    return dataset.batch(EVAL_BATCH_SIZE).cache()


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of running our trainer: the preset, maybe changed, and how data is fed."""

    name: str
    config: ModelConfig
    input_kind: str = "gather"
    jit_compile: bool = False


def train_to_target(
    variant: Variant,
    data: PreparedData,
    target_rmse: Optional[float],
    max_epochs: int,
    scratch_dir: str,
    max_seconds: Optional[float] = None,
) -> Dict:
    """Trains until the eval RMSE is at most ``target_rmse`` (or ``max_epochs``); timings."""
    if variant.input_kind not in INPUT_KINDS:
        raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {variant.input_kind!r}")
    config = variant.config
    keras.utils.set_random_seed(config.seed)
    tfrecord_path = None
    if variant.input_kind == "tfrecord":
        # Writing the file stands in for Transform's output: not part of training time.
        tfrecord_path = write_tfrecords(data, os.path.join(scratch_dir, "train.tfrecord.gz"))
    started = time.perf_counter()
    if variant.input_kind == "gather":
        train_data, steps = gather_batches(data, config.batch_size, config.seed)
    elif variant.input_kind == "rows":
        train_data, steps = row_batches(data, config.batch_size, config.seed)
    else:
        train_data, steps = tfrecord_batches(
            tfrecord_path, data.num_train, config.batch_size, config.seed, config.shuffle_buffer
        )
    model = model_lib.build_model(config, data.user_counts, data.movie_counts, data.mean_rating)
    # As the pipeline's Trainer runs it (trainer/task.py).
    model.steps_per_execution = task.STEPS_PER_EXECUTION
    if variant.jit_compile:
        model.jit_compile = True
    clock = EpochClock(
        started, data.num_train, config.batch_size, target_rmse, PATIENCE, max_seconds
    )
    model.fit(
        train_data,
        steps_per_epoch=steps,
        epochs=max_epochs,
        validation_data=eval_batches(data),
        callbacks=[clock],
        verbose=0,
    )
    result = {
        "variant": variant.name,
        "model": config.name,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "input": variant.input_kind,
        "jit_compile": bool(model.jit_compile),
        "steps_per_epoch": steps,
        **clock.summary(),
    }
    keras.backend.clear_session()
    return result
