"""In-process latency of an exported model's ``serving_default`` signature.

Loads the SavedModel (``trainer/export.py``: serialized ``tf.Example`` with
string ``user_id`` and ``movie_id`` in, ``{"rating": float32[batch]}`` out),
warms it up, then times single calls at each batch size. Examples are built
beforehand from real ids, so a call's time is the signature's: parsing,
the Transform vocabulary lookup, the Keras model and the output copy.

The speed benchmark runs this in a subprocess per thread setting, because
TensorFlow fixes its thread pools when it first starts.

    python -m benchmarks.serving_latency --model DIR [--batch-sizes 1,1024] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from benchmarks import measure
from conftest import serialized_examples

WARMUP_CALLS = 200
DEFAULT_CALLS = {1: 3000, 1024: 300}


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="SavedModel folder")
    parser.add_argument("--batch-sizes", default="1,1024")
    parser.add_argument("--calls", type=int, help="timed calls per batch size (default 3000/300)")
    parser.add_argument(
        "--threads", type=int, default=0, help="intra- and inter-op threads; 0 keeps TF's default"
    )
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    calls = {b: args.calls or DEFAULT_CALLS.get(b, 100) for b in batch_sizes}
    result = time_signature(args.model, batch_sizes, calls, args.threads)
    result["peak_rss_gb"] = round(measure.peak_rss_bytes() / measure.GIB, 3)
    print("SERVING_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
