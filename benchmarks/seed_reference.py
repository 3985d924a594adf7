"""The keras-io seed's way of training, re-implemented as the speed reference.

The seed ("memory_efficient_embeddings" on keras.io) writes its train and eval
rows to header-less CSV files, reads them with
``tf.data.experimental.make_csv_dataset`` (per-row CSV parsing, string ids),
and looks the ids up inside the Keras model with ``StringLookup`` layers
whose vocabularies hold every id in the data set. The baseline model is two
64-d embeddings, a dot product and ``sigmoid * 5``, trained with MSE and Adam
(learning rate 1e-3) in batches of 128. This module does the same on a split
given by row numbers, so the speed benchmark can run it beside our trainer on
identical rows. An RMSE metric is added (the seed logs MAE only) because the
comparison is by eval RMSE. ``EpochClock`` times both trainers alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from components import movielens

CSV_COLUMNS = ("user_id", "movie_id", "rating")
EMBEDDING_DIM = 64
LEARNING_RATE = 1e-3
BATCH_SIZE = 128
# Epochs without a better eval RMSE before a run is taken to have passed its best.
PATIENCE = 2


class EpochClock(keras.callbacks.Callback):
    """When each epoch ended (seconds since ``started``), its eval RMSE and its training time.

    ``started`` is taken before the input pipeline and the model are built,
    so an epoch's end covers all a user waits for. Training stops at the
    first epoch at or below ``target_rmse``, or ``patience`` epochs past the best.
    """

    def __init__(self, started: float, target_rmse: float | None = None, patience=PATIENCE):
        super().__init__()
        self.started, self.target_rmse, self.patience = started, target_rmse, patience
        self.ends: list[float] = []
        self.train_seconds: list[float] = []
        self.val_rmse: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.begin = time.perf_counter()

    def on_test_begin(self, logs=None):
        # Only validation evaluates during fit; its first start ends the epoch's training.
        if len(self.train_seconds) == len(self.ends):
            self.train_seconds.append(time.perf_counter() - self.begin)

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter() - self.started)
        self.val_rmse.append(float(logs["val_rmse"]))
        best = int(np.argmin(self.val_rmse))
        reached = self.target_rmse is not None and self.val_rmse[-1] <= self.target_rmse
        if reached or len(self.val_rmse) - 1 - best >= self.patience:
            self.model.stop_training = True

    def summary(self, train_examples: int) -> dict:
        """Examples per second after the first epoch (which also traces), best and target."""
        best = int(np.argmin(self.val_rmse))
        steady = self.train_seconds[1:] or self.train_seconds
        target = self.target_rmse
        reached = [i for i, r in enumerate(self.val_rmse) if target is not None and r <= target]
        return {
            "epochs_run": len(self.ends),
            "val_rmse_per_epoch": [round(r, 4) for r in self.val_rmse],
            "seconds_since_start_per_epoch": [round(s, 2) for s in self.ends],
            "examples_per_second": round(train_examples * len(steady) / sum(steady)),
            "best_val_rmse": round(self.val_rmse[best], 4),
            "best_epoch": best + 1,
            "seconds_to_best": round(self.ends[best], 2),
            "target_val_rmse": target,
            "epochs_to_target": reached[0] + 1 if reached else None,
            "seconds_to_target": round(self.ends[reached[0]], 2) if reached else None,
        }


def write_split_csvs(
    ratings: movielens.Ratings,
    train_rows: np.ndarray,
    eval_rows: np.ndarray,
    folder: str,
) -> tuple[str, str]:
    """Header-less ``user_id,movie_id,rating`` files of the two splits, as the seed writes them."""
    paths = []
    for name, rows in (("train_data.csv", train_rows), ("eval_data.csv", eval_rows)):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            for user, movie, rating in zip(
                ratings.user_ids[rows], ratings.movie_ids[rows], ratings.ratings[rows], strict=False
            ):
                f.write(f"{user},{movie},{float(rating)}\n")
        paths.append(path)
    return paths[0], paths[1]


def csv_dataset(path: str, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    """The seed's reader: one pass over a header-less CSV, rating as the label."""
    dataset = tf.data.experimental.make_csv_dataset(
        path,
        batch_size=batch_size,
        column_names=list(CSV_COLUMNS),
        label_name="rating",
        num_epochs=1,
        header=False,
        field_delim=",",
        shuffle=shuffle,
    )
    # Keras 3 flattens an OrderedDict in insertion order but the model's plain
    # dict of inputs by sorted key, which would swap user and movie ids; a
    # plain dict per batch (the only change from the seed) lines them up.
    return dataset.map(lambda columns, rating: (dict(columns), rating))


def build_seed_model(
    user_vocabulary: Sequence[str],
    movie_vocabulary: Sequence[str],
    embedding_dim: int = EMBEDDING_DIM,
    learning_rate: float = LEARNING_RATE,
) -> keras.Model:
    """String ids in, ``5 * sigmoid(user . movie)`` out; lookups are layers of the model."""
    inputs, vectors = {}, []
    for name, vocabulary in (("user_id", user_vocabulary), ("movie_id", movie_vocabulary)):
        inputs[name] = keras.Input(shape=(), dtype="string", name=name)
        # The seed's vocabularies hold every id, so it uses no OOV slot.
        lookup = keras.layers.StringLookup(
            vocabulary=list(vocabulary), mask_token=None, num_oov_indices=0
        )
        table = keras.layers.Embedding(len(vocabulary), embedding_dim)
        vectors.append(
            keras.Sequential([lookup, table], name=name.replace("_id", ""))(inputs[name])
        )
    score = keras.layers.Dot(axes=1, name="dot_similarity")(vectors)
    rating = keras.layers.Activation("sigmoid")(score) * 5
    model = keras.Model(inputs=inputs, outputs=rating, name="seed_baseline")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.MeanSquaredError(),
        metrics=[
            keras.metrics.MeanAbsoluteError(name="mae"),
            keras.metrics.RootMeanSquaredError(name="rmse"),
        ],
    )
    return model


def train_seed(
    ratings: movielens.Ratings,
    train_rows: np.ndarray,
    eval_rows: np.ndarray,
    scratch_dir: str,
    max_epochs: int,
    patience: int = PATIENCE,
    seed: int = 42,
) -> dict:
    """Trains the seed's baseline until it has passed its best eval RMSE; the epoch clock."""
    train_csv, eval_csv = write_split_csvs(ratings, train_rows, eval_rows, scratch_dir)
    # The seed builds both vocabularies from the whole data set, eval rows included.
    user_vocabulary = list(dict.fromkeys(ratings.user_ids.tolist()))
    movie_vocabulary = list(dict.fromkeys(ratings.movie_ids.tolist()))
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    model = build_seed_model(user_vocabulary, movie_vocabulary)
    clock = EpochClock(started, patience=patience)
    model.fit(
        csv_dataset(train_csv, BATCH_SIZE, shuffle=True),
        validation_data=csv_dataset(eval_csv, BATCH_SIZE, shuffle=False),
        epochs=max_epochs,
        callbacks=[clock],
        verbose=0,
    )
    result = {
        "variant": "seed_reference",
        "model": "keras-io seed baseline (StringLookup + 64-d Embedding, sigmoid*5)",
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "input": "make_csv_dataset",
        "steps_per_epoch": -(-len(train_rows) // BATCH_SIZE),
        **clock.summary(len(train_rows)),
    }
    keras.backend.clear_session()
    return result
