"""In-process latency of an exported model's ``serving_default`` and ``recommend`` signatures.

Loads the SavedModel (``trainer/export.py``: serialized ``tf.Example`` with
string ``user_id`` and ``movie_id`` in, ``{"rating": float32[batch]}`` out),
warms it up, then times single calls at each batch size. Examples are built
beforehand from real ids, so a call's time is the signature's: parsing,
the Transform vocabulary lookup, the Keras model and the output copy.

``--signature recommend`` times the top-k lists instead: users of the
model's own vocabulary in, each scored against every movie of the
vocabulary, the k best out (``--k``, default 10). ``--build-catalogue DIR``
exports, for that, the default preset's serving model over a generated
catalogue of a given size (ML-1M's: 6,040 users, 3,706 movies): the
Transform graph is analysed in-process and the model is left untrained,
since the time of a call does not depend on the weights' values.

The speed benchmark runs this in a subprocess per thread setting, because
TensorFlow fixes its thread pools when it first starts.

    python -m benchmarks.serving_latency --model DIR [--batch-sizes 1,1024] [--threads 0]
    python -m benchmarks.serving_latency --build-catalogue DIR [--users 6040] [--movies 3706]
    python -m benchmarks.serving_latency --model DIR --signature recommend --batch-sizes 1,64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from benchmarks import measure
from conftest import serialized_examples

WARMUP_CALLS = 200
DEFAULT_CALLS = {1: 3000, 1024: 300}
RECOMMEND_CALLS = {1: 1000, 64: 200}
# ML-1M: the catalogue the recommend latency target is stated for.
CATALOGUE_USERS = 6040
CATALOGUE_MOVIES = 3706


def example_ids(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Ids of real ratings (ML-100K when present, else the built-in synthetic set)."""
    from benchmarks import datasets
    from components import synthetic

    try:
        ratings = datasets.DATASETS["ml-100k"]()
    except datasets.DatasetUnavailable:
        ratings = synthetic.generate_ratings()
    rows = np.random.default_rng(seed).choice(len(ratings), size=count, replace=True)
    return ratings.user_ids[rows].tolist(), ratings.movie_ids[rows].tolist()


def time_calls(call, inputs: Sequence, warmup: int) -> list[float]:
    """Seconds of each call after ``warmup`` untimed calls; inputs are cycled."""
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    seconds = []
    for value in inputs:
        started = time.perf_counter()
        call(value)
        seconds.append(time.perf_counter() - started)
    return seconds


def time_signature(
    model_dir: str, batch_sizes: Sequence[int], calls: dict[int, int], threads: int
) -> dict:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    load_started = time.perf_counter()
    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures["serving_default"]
    load_seconds = time.perf_counter() - load_started

    largest = max(calls.get(b, 100) * b for b in batch_sizes)
    users, movies = example_ids(min(largest, 200_000))
    serialized = serialized_examples(zip(users, movies, strict=False)).numpy().tolist()

    def call_signature(batch):
        # .numpy() waits for the result and copies it out, as a server would.
        return signature(examples=batch)["rating"].numpy()

    results = {
        "model_dir": model_dir,
        "threads": threads or "default",
        "load_seconds": load_seconds,
    }
    for batch_size in batch_sizes:
        count = calls.get(batch_size, 100)
        starts = len(serialized) - batch_size + 1
        batches = [serialized[(i * batch_size) % starts :][:batch_size] for i in range(count)]
        tensors = [tf.constant(b) for b in batches]
        with measure.timed() as timing:
            seconds = time_calls(call_signature, tensors, WARMUP_CALLS if batch_size == 1 else 20)
        summary = measure.latency_summary(seconds)
        summary["examples_per_second_at_p50"] = round(batch_size / (summary["p50_ms"] / 1000))
        # The same calls with the request's bytes turned into a tensor inside the timing.
        from_bytes = time_calls(lambda b: call_signature(tf.constant(b)), batches[:count], 0)
        results[f"batch_{batch_size}"] = {
            **summary,
            "including_tensor_from_bytes": measure.latency_summary(from_bytes),
            "load_1min_start": timing.load_1min_start,
            "load_1min_end": timing.load_1min_end,
        }
    return results


def vocabulary_tokens(model_dir: str, name: str) -> list[str]:
    """The ids of a vocabulary the SavedModel carries as an asset ("count token" per line)."""
    with open(os.path.join(model_dir, "assets", name), encoding="utf-8") as f:
        return [line.rstrip("\n").split(" ", 1)[1] for line in f]


def time_recommend(
    model_dir: str, batch_sizes: Sequence[int], calls: dict[int, int], threads: int, k: int
) -> dict:
    """Latency of ``recommend``: a batch of the model's users in, each user's top k out."""
    import tensorflow as tf

    from components import features

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    load_started = time.perf_counter()
    signature = tf.saved_model.load(model_dir).signatures["recommend"]
    load_seconds = time.perf_counter() - load_started
    users = vocabulary_tokens(model_dir, features.USER_VOCABULARY)
    movies = len(vocabulary_tokens(model_dir, features.MOVIE_VOCABULARY))
    top = tf.constant(k, tf.int32)
    rng = np.random.default_rng(0)

    def call_signature(batch):
        # .numpy() waits for the lists and copies them out, as a server would.
        lists = signature(user_id=batch, k=top)
        return lists["movie_id"].numpy(), lists["rating"].numpy()

    results = {
        "model_dir": model_dir,
        "threads": threads or "default",
        "load_seconds": load_seconds,
        "users": len(users),
        "movies": movies,
        "k": k,
    }
    for batch_size in batch_sizes:
        count = calls.get(batch_size, 100)
        batches = [
            tf.constant([users[i] for i in rng.integers(len(users), size=batch_size)])
            for _ in range(count)
        ]
        movie_ids, ratings = call_signature(batches[0])
        if movie_ids.shape != (batch_size, min(k, movies)) or not np.all(np.diff(ratings) <= 0):
            raise RuntimeError(f"recommend gave {movie_ids.shape} lists, or unsorted ones")
        with measure.timed() as timing:
            seconds = time_calls(call_signature, batches, WARMUP_CALLS if batch_size == 1 else 20)
        summary = measure.latency_summary(seconds)
        summary["users_per_second_at_p50"] = round(batch_size / (summary["p50_ms"] / 1000))
        results[f"batch_{batch_size}"] = {
            **summary,
            "load_1min_start": timing.load_1min_start,
            "load_1min_end": timing.load_1min_end,
        }
    return results


def build_catalogue_model(
    export_dir: str,
    num_users: int = CATALOGUE_USERS,
    num_movies: int = CATALOGUE_MOVIES,
    ratings_per_user: int = 10,
) -> dict:
    """Exports the default preset's serving model over every one of the users and movies.

    The ratings are the synthetic generator's, plus one per movie so that
    every movie is in the vocabulary; the vocabularies, popularity blocks
    and slicing features come from the project's own ``preprocessing_fn``.
    """
    import tempfile

    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io

    from components import features
    from components import preprocessing
    from components import synthetic
    from conftest import raw_metadata
    from trainer import export
    from trainer import model as model_lib
    from trainer import model_config
    from trainer import vocabulary

    per_user = min(ratings_per_user, num_movies)
    ratings = synthetic.generate_ratings(
        num_users, num_movies, num_users * per_user, min_ratings_per_user=per_user
    )
    rows = [
        {"user_id": [user.encode()], "movie_id": [movie.encode()], "rating": [float(stars)]}
        for user, movie, stars in zip(
            ratings.user_ids, ratings.movie_ids, ratings.ratings, strict=True
        )
    ]
    every_movie = (f"{synthetic.MOVIE_PREFIX}{i}" for i in range(1, num_movies + 1))
    rows += [
        {"user_id": [ratings.user_ids[0].encode()], "movie_id": [movie.encode()], "rating": [3.0]}
        for movie in every_movie
    ]
    work = tempfile.mkdtemp(prefix="catalogue_transform_")
    metadata = raw_metadata()
    with tft_beam.Context(temp_dir=os.path.join(work, "tmp")):
        transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(work)
    # The serving signatures parse with the raw schema, as TFX's Transform writes it.
    metadata_io.write_metadata(metadata, os.path.join(work, "metadata"))
    output = tft.TFTransformOutput(work)
    counts = {
        name: vocabulary.read_counts(output.vocabulary_file_by_name(name))
        for name in (features.USER_VOCABULARY, features.MOVIE_VOCABULARY)
    }
    config = model_config.preset(model_config.DEFAULT_MODEL)
    model = model_lib.build_model(
        config,
        counts[features.USER_VOCABULARY],
        counts[features.MOVIE_VOCABULARY],
        float(np.mean(ratings.ratings)),
    )
    export.export_serving_model(model, output, export_dir)
    return {
        "model": config.name,
        "users": len(counts[features.USER_VOCABULARY]),
        "movies": len(counts[features.MOVIE_VOCABULARY]),
        "export_dir": export_dir,
        "weights": "untrained (a call's time does not depend on their values)",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="SavedModel folder")
    target.add_argument(
        "--build-catalogue", metavar="DIR", help="export a catalogue model to DIR and stop"
    )
    parser.add_argument("--signature", choices=("serving_default", "recommend"))
    parser.add_argument("--batch-sizes", help="default 1,1024 (recommend: 1,64)")
    parser.add_argument("--calls", type=int, help="timed calls per batch size")
    parser.add_argument("--k", type=int, default=10, help="recommend: the length of each list")
    parser.add_argument("--users", type=int, default=CATALOGUE_USERS)
    parser.add_argument("--movies", type=int, default=CATALOGUE_MOVIES)
    parser.add_argument(
        "--threads", type=int, default=0, help="intra- and inter-op threads; 0 keeps TF's default"
    )
    args = parser.parse_args(argv)
    if args.build_catalogue:
        result = build_catalogue_model(args.build_catalogue, args.users, args.movies)
        print("CATALOGUE_RESULT " + json.dumps(result), flush=True)
        return 0
    recommend = args.signature == "recommend"
    default_calls = RECOMMEND_CALLS if recommend else DEFAULT_CALLS
    batch_sizes = [
        int(b) for b in (args.batch_sizes or ",".join(map(str, default_calls))).split(",")
    ]
    calls = {b: args.calls or default_calls.get(b, 100) for b in batch_sizes}
    if recommend:
        result = time_recommend(args.model, batch_sizes, calls, args.threads, args.k)
    else:
        result = time_signature(args.model, batch_sizes, calls, args.threads)
    result["peak_rss_gb"] = round(measure.peak_rss_bytes() / measure.GIB, 3)
    tag = "RECOMMEND_RESULT" if recommend else "SERVING_RESULT"
    print(f"{tag} " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
