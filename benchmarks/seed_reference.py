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
comparison is by eval RMSE.

    python -m benchmarks.seed_reference [--dataset ml-100k] [--max-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Dict, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import datasets
from benchmarks.speed_trainer import EpochClock
from components import movielens

CSV_COLUMNS = ("user_id", "movie_id", "rating")
EMBEDDING_DIM = 64
LEARNING_RATE = 1e-3
BATCH_SIZE = 128
# Epochs without a better eval RMSE before the seed is taken to have passed its best.
PATIENCE = 2


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
                ratings.user_ids[rows], ratings.movie_ids[rows], ratings.ratings[rows]
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
) -> Dict:
    """Trains the seed's baseline until it has passed its best eval RMSE; the epoch clock."""
    train_csv, eval_csv = write_split_csvs(ratings, train_rows, eval_rows, scratch_dir)
    # The seed builds both vocabularies from the whole data set, eval rows included.
    user_vocabulary = list(dict.fromkeys(ratings.user_ids.tolist()))
    movie_vocabulary = list(dict.fromkeys(ratings.movie_ids.tolist()))
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    model = build_seed_model(user_vocabulary, movie_vocabulary)
    clock = EpochClock(started, len(train_rows), BATCH_SIZE, patience=patience)
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
        **clock.summary(),
    }
    keras.backend.clear_session()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", choices=sorted(datasets.DATASETS))
    parser.add_argument("--max-epochs", type=int, default=20)
    args = parser.parse_args(argv)
    make_ratings, _ = datasets.DATASETS[args.dataset]
    ratings = make_ratings()
    train_rows, eval_rows = datasets.split_rows(len(ratings))
    with tempfile.TemporaryDirectory(prefix="seed_reference_") as scratch:
        result = train_seed(ratings, train_rows, eval_rows, scratch, args.max_epochs)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
