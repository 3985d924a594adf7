"""Training at 10M / 100M user ids: peak memory and step time of one size, in this process.

The speed benchmark runs this once per size in its own subprocess, so each
peak RSS belongs to one size only. Ids are generated integers drawn
uniformly per batch (no Transform vocabulary, nothing stored per id), which
is the worst case for locality; ratings follow a fixed rule of the two ids
so the loss has something to fit.

Paths (``--path``):

* ``preset``: ``trainer.model.build_model`` with the default preset as it
  is (its user table sized from an int32 count per id), what the pipeline's
  Trainer trains. ``python -m benchmarks.scale`` with no ``--ids`` runs it
  at 10k, 1M, 10M and 100M user ids, batch 512, each size in a child
  process, and writes ``results/scale.json``.
* ``qr_layer``: users through ``trainer.embeddings.qr_layer.QREmbedding`` (base
  ``ceil(sqrt(n))``, element-wise product of quotient and remainder rows),
  movies through a plain table, dot product, ``sigmoid * 5``, MSE, Adam.
* ``build_model``: the project's model builder ``trainer.model.build_model``
  with the default preset, its user table forced to QR. It takes the
  per-id train counts as a Python sequence, which is what it costs at this
  vocabulary size, and the preset's per-user bias is a plain ``n x 1`` table.
* ``build_model_no_biases``: the same without the per-id biases, to separate
  what the bias tables cost from what the count list costs.
* ``full``: a plain ``keras.layers.Embedding`` user table, to show what a
  full table costs where it still fits.

Pipeline runs (``--part pipeline``): the whole ``local_runner.py --no-cache``
process on ratings from the project's generator (``components.synthetic``),
at the sizes of ``PIPELINE_SIZES``: an ML-1M-shaped set, and two wide sets
where most users rate 1 to 5 movies, the shape of a catalogue with millions
of occasional users. Each run records its wall time (imports included), the
peak RSS of its process tree and each component's seconds from its ML
Metadata. A part replaces its own keys in ``results/scale.json``.

    python -m benchmarks.scale                       # steps and pipeline -> results/scale.json
    python -m benchmarks.scale --part pipeline --sizes 1m,4m-wide
    python -m benchmarks.scale --ids 100000000 --path qr_layer --steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import measure
from components import features
from pipeline import configs
from trainer import model as model_lib
from trainer import model_config
from trainer.embeddings import qr_layer

PARTS = ("steps", "lookup", "pipeline")
# Vocabulary sizes of the serving lookup measured by the lookup part (a child each).
LOOKUP_IDS = (1_000_000, 10_000_000)
# name: (ratings, users, movies, min ratings per user) for components.synthetic.
PIPELINE_SIZES = {
    "1m": (1_000_000, 6_040, 3_706, 20),
    "4m-wide": (4_000_000, 1_000_000, 100_000, 1),
    "20m-wide": (20_000_000, 5_000_000, 100_000, 1),
}
PATHS = ("preset", "qr_layer", "build_model", "build_model_no_biases", "full")
# The step-cost curve: the default preset at the pipeline's batch size.
CURVE_IDS = (10_000, 1_000_000, 10_000_000, 100_000_000)
CURVE_BATCH_SIZE = 512
CURVE_STEPS = 200
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "scale.json")
NUM_MOVIES = 3706
EMBEDDING_DIM = 64
BYTES_PER_FLOAT = 4
# Adam keeps two fp32 slots (first and second moments) per parameter.
ADAM_SLOTS = 2
# Steps before timing starts: tracing and the first allocations.
WARMUP_STEPS = 20
GIB = measure.GIB


def peak_rss_gb() -> float:
    """This process's peak RSS so far (VmHWM: not charged for a parent's pages at fork)."""
    return measure.peak_rss_bytes() / GIB


def synthetic_batches(num_ids: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless batches of uniform user and movie ids and a rating made from them."""

    def batch(step):
        # Stateless draws keyed by the step number: reproducible, and nothing to store.
        users = tf.random.stateless_uniform(
            [batch_size, 1], seed=[seed, step], minval=0, maxval=num_ids, dtype=tf.int64
        )
        movies = tf.random.stateless_uniform(
            [batch_size, 1], seed=[seed + 1, step], minval=0, maxval=NUM_MOVIES, dtype=tf.int64
        )
        # 1..5 stars from the ids' low digits: fixed per pair, so it can be fitted.
        rating = tf.cast(1 + (users % 7 + movies % 5) % 5, tf.float32)
        return {features.USER_INDEX: users, features.MOVIE_INDEX: movies}, rating

    return tf.data.Dataset.range(sys.maxsize).map(batch).prefetch(tf.data.AUTOTUNE)


def qr_layer_model(num_ids: int, full_user_table: bool = False) -> keras.Model:
    user_index = keras.Input(shape=(1,), dtype="int64", name=features.USER_INDEX)
    movie_index = keras.Input(shape=(1,), dtype="int64", name=features.MOVIE_INDEX)
    if full_user_table:
        user_table = keras.layers.Embedding(num_ids, EMBEDDING_DIM, name="user_embedding")
    else:
        user_table = qr_layer.QREmbedding(num_ids, EMBEDDING_DIM, name="user_embedding")
    user_vector = keras.layers.Flatten()(user_table(user_index))
    movie_vector = keras.layers.Flatten()(
        keras.layers.Embedding(NUM_MOVIES, EMBEDDING_DIM, name="movie_embedding")(movie_index)
    )
    score = keras.layers.Dot(axes=-1)([user_vector, movie_vector])
    rating = keras.layers.Activation("sigmoid")(score) * 5
    model = keras.Model(
        {features.USER_INDEX: user_index, features.MOVIE_INDEX: movie_index}, rating
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error")
    return model


def preset_model(num_ids: int) -> keras.Model:
    """The default preset on ``num_ids`` users (Zipf-like counts) and the movie vocabulary."""
    users = num_ids - features.NUM_OOV_BUCKETS
    user_counts = (1e6 / np.arange(1, users + 1, dtype=np.float64)).astype(np.int32) + 1
    movie_counts = (1e6 / np.arange(1, NUM_MOVIES + 1)).astype(np.int32) + 1
    config = model_config.preset(model_config.DEFAULT_MODEL)
    return model_lib.build_model(config, user_counts, movie_counts, 3.5)


def project_model(num_ids: int, use_biases: bool = True) -> keras.Model:
    """``build_model`` with the default preset and a QR user table over ``num_ids`` ids."""
    preset = model_config.preset(model_config.DEFAULT_MODEL)
    config = preset.replace(
        user_embedding={"type": "qr", "operation": "mult"},
        use_biases=preset.use_biases and use_biases,
    )
    # Zipf-like movie counts so a mixed-dimension movie table has popularity blocks.
    movie_counts = (1e6 / np.arange(1, NUM_MOVIES + 1)).astype(np.int64) + 1
    # Every user once: the table size is what matters; the builder iterates the counts.
    user_counts = np.ones(num_ids - features.NUM_OOV_BUCKETS, dtype=np.int64)
    return model_lib.build_model(config, user_counts, movie_counts.tolist(), 3.5)


class StepClock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())
        self.losses.append(float((logs or {}).get("loss", float("nan"))))


def table_bytes(model: keras.Model) -> int:
    layer = model.get_layer("user_embedding")
    return sum(int(np.prod(w.shape)) * BYTES_PER_FLOAT for w in layer.weights)


def run(num_ids: int, path: str, steps: int, batch_size: int, seed: int) -> dict:
    keras.utils.set_random_seed(seed)
    rss_before_build = peak_rss_gb()
    built_at = time.perf_counter()
    if path == "preset":
        model = preset_model(num_ids)
    elif path.startswith("build_model"):
        model = project_model(num_ids, use_biases=(path == "build_model"))
    else:
        model = qr_layer_model(num_ids, full_user_table=(path == "full"))
    build_seconds = time.perf_counter() - built_at
    rss_after_build = peak_rss_gb()
    clock = StepClock()
    fit_started = time.perf_counter()
    model.fit(
        synthetic_batches(num_ids, batch_size, seed),
        steps_per_epoch=steps,
        epochs=1,
        callbacks=[clock],
        verbose=0,
    )
    fit_seconds = time.perf_counter() - fit_started
    intervals = np.diff(clock.ends[WARMUP_STEPS - 1 :]) if steps > WARMUP_STEPS else np.array([])
    user_table_bytes = table_bytes(model)
    full_bytes = num_ids * EMBEDDING_DIM * BYTES_PER_FLOAT
    # The running mean loss Keras logs: its first and last values show the steps fit something.
    return {
        "ids": num_ids,
        "path": path,
        "embedding_dim": EMBEDDING_DIM,
        "batch_size": batch_size,
        "steps": steps,
        "user_table_params": user_table_bytes // BYTES_PER_FLOAT,
        "user_table_gb": round(user_table_bytes / GIB, 4),
        "full_table_gb": round(full_bytes / GIB, 2),
        "full_table_with_adam_gb": round(full_bytes * (1 + ADAM_SLOTS) / GIB, 2),
        "build_seconds": round(build_seconds, 2),
        "fit_seconds": round(fit_seconds, 2),
        "step_ms_p50": round(float(np.median(intervals)) * 1000, 3) if len(intervals) else None,
        "step_ms_mean": round(float(np.mean(intervals)) * 1000, 3) if len(intervals) else None,
        "examples_per_second": (
            round(batch_size / float(np.mean(intervals))) if len(intervals) else None
        ),
        "loss_first": round(clock.losses[0], 4) if clock.losses else None,
        "loss_last": round(clock.losses[-1], 4) if clock.losses else None,
        "peak_rss_gb_before_build": round(rss_before_build, 3),
        "peak_rss_gb_after_build": round(rss_after_build, 3),
        "peak_rss_gb": round(peak_rss_gb(), 3),
    }


def child_result(command: list[str], num_ids: int) -> dict:
    """The SCALE_RESULT a child process printed, or what it failed with."""
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in child.stdout.splitlines() if line.startswith("SCALE_RESULT ")]
    if child.returncode or not lines:
        tail = (child.stderr or child.stdout).strip().splitlines()[-1:]
        failed = {"ids": num_ids, "failed": tail[0] if tail else f"exit {child.returncode}"}
        print(f"  failed: {failed['failed']}", flush=True)
        return failed
    return json.loads(lines[-1].split(" ", 1)[1])


def curve(ids=CURVE_IDS, steps: int = CURVE_STEPS) -> dict:
    """The default preset's step time and peak RSS per vocabulary size, one child each."""
    step_ms, peak = {}, {}
    runs = []
    for num_ids in ids:
        command = [sys.executable, "-m", "benchmarks.scale", "--ids", str(num_ids)]
        command += ["--path", "preset", "--steps", str(steps)]
        command += ["--batch-size", str(CURVE_BATCH_SIZE)]
        print(f"{num_ids:,} ids ...", flush=True)
        result = child_result(command, num_ids)
        runs.append(result)
        if "failed" in result:
            continue
        step_ms[str(num_ids)] = result["step_ms_p50"]
        peak[str(num_ids)] = result["peak_rss_gb"]
        print(f"  {result['step_ms_p50']} ms/step, peak RSS {result['peak_rss_gb']} GB", flush=True)
    return {
        "preset": model_config.DEFAULT_MODEL,
        "batch_size": CURVE_BATCH_SIZE,
        "step_ms": step_ms,
        "step_peak_rss_gb": peak,
        "runs": runs,
    }


def lookup_run(num_ids: int) -> dict:
    """Seconds and memory to load a vocabulary of ``num_ids`` ids into a string->index table.

    The table every process that applies the Transform graph builds (the
    Trainer's reader, each Evaluator worker, TF Serving): one line
    ``<count> <id>`` per id, keyed on the id, valued by line number.
    """
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "vocabulary")
        ids = np.char.add("user_", np.arange(num_ids).astype(str))
        counts = np.arange(num_ids, 0, -1).astype(str)
        with open(path, "w") as f:
            f.write("\n".join(np.char.add(np.char.add(counts, " "), ids)) + "\n")
        del ids, counts
        file_bytes = os.path.getsize(path)
        rss_before = measure.current_rss_bytes()
        started = time.perf_counter()
        table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                path,
                key_dtype=tf.string,
                key_index=1,
                value_dtype=tf.int64,
                value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                delimiter=" ",
            ),
            default_value=-1,
        )
        load_seconds = time.perf_counter() - started
        probe = tf.constant([f"user_{i}" for i in range(0, num_ids, max(1, num_ids // 512))])
        found = table.lookup(probe).numpy()
        table_bytes = measure.current_rss_bytes() - rss_before
    return {
        "ids": num_ids,
        "file_mb": round(file_bytes / 2**20, 1),
        "load_seconds": round(load_seconds, 4),
        "table_gb": round(table_bytes / GIB, 3),
        "bytes_per_id": round(table_bytes / num_ids, 1),
        "all_found": bool((found >= 0).all()),
        "peak_rss_gb": round(peak_rss_gb(), 3),
    }


def lookup_part(ids=LOOKUP_IDS) -> dict:
    runs = []
    for num_ids in ids:
        command = [sys.executable, "-m", "benchmarks.scale", "--lookup-ids", str(num_ids)]
        runs.append(child_result(command, num_ids))
        print(f"lookup {num_ids:,} ids: {runs[-1]}", flush=True)
    return {"lookup": runs}


# ``--in-process``: every Beam step in the runner's process, whatever the data's
# size (the runner's own rule, pipeline/beam_plan.py, is what the plain runs use).
IN_PROCESS_ARGS = [
    "--beam-arg=--direct_running_mode=in_memory",
    "--beam-arg=--direct_num_workers=1",
]
IN_PROCESS_SUFFIX = "-in-process"


def pipeline_run(name: str, scratch: str, log_dir: str, in_process: bool = False) -> dict:
    """One whole ``local_runner.py`` process on a generated set of size ``name``."""
    ratings, users, movies, min_per_user = PIPELINE_SIZES[name]
    label = name + IN_PROCESS_SUFFIX if in_process else name
    commit = measure.machine_info().get("git_head")
    data = os.path.join(scratch, f"{name}.csv")
    generate = [sys.executable, "-m", "components.synthetic", "--out", data]
    generate += ["--ratings", str(ratings), "--users", str(users), "--movies", str(movies)]
    generate += ["--min-ratings-per-user", str(min_per_user)]
    subprocess.run(generate, cwd=measure.REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    output_root = os.path.join(scratch, f"out-{name}")
    command = [sys.executable, "local_runner.py", "--no-cache", "--data", data]
    command += ["--output-root", output_root] + (IN_PROCESS_ARGS if in_process else [])
    print(f"{label}: {' '.join(command[1:])}", flush=True)
    run = measure.run_measured(command, os.path.join(log_dir, f"pipeline-{label}.log"))
    metadata = os.path.join(output_root, "metadata", configs.PIPELINE_NAME, "metadata.db")
    components = measure.component_seconds(metadata) if os.path.exists(metadata) else {}
    shutil.rmtree(output_root, ignore_errors=True)
    os.remove(data)
    print(f"  exit {run['returncode']}, {run['seconds']:.0f} s", flush=True)
    return {
        "name": label,
        "commit": commit,
        "ratings": ratings,
        "users": users,
        "movies": movies,
        "min_ratings_per_user": min_per_user,
        "returncode": run["returncode"],
        "seconds": run["seconds"],
        "seconds_per_million_ratings": round(run["seconds"] / (ratings / 1e6), 1),
        "peak_rss_gb": run["peak_tree_rss_gb"],
        "load_1min_start": run["load_1min_start"],
        "load_1min_end": run["load_1min_end"],
        "components": {node: entry["seconds"] for node, entry in components.items()},
        "component_peak_rss_gb": measure.peak_rss_per_component(components, run["rss_samples"]),
        "log": f"pipeline-{label}.log",
    }


def pipeline_part(sizes, log_dir: str, in_process: bool = False) -> dict:
    scratch = tempfile.mkdtemp(prefix="scale_pipeline_")
    try:
        runs = [pipeline_run(name, scratch, log_dir, in_process) for name in sizes]
        return {"pipeline": runs}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def names(part: dict) -> set[str]:
    return {run["name"] for run in part["pipeline"]}


def merge_results(name: str, part: dict, out: str, command: str, machine=None) -> None:
    """Replaces part ``name``'s keys in ``out``, keeping the other parts'; complete or absent.

    ``parts`` records, per part, the machine, commit and command it was
    measured with, since the parts of one file may come from different runs.
    """
    results = {}
    if os.path.exists(out):
        with open(out) as f:
            results = json.load(f)
    machine = machine or measure.machine_info()
    if name == "pipeline":
        # A run of some sizes replaces those sizes only; each run names its commit.
        kept = [run for run in results.get("pipeline", []) if run["name"] not in names(part)]
        for run in kept:  # runs from before runs named their commit: the file's
            run.setdefault("commit", results.get("commit"))
        order = list(PIPELINE_SIZES)
        runs = sorted(
            kept + part["pipeline"],
            key=lambda run: (order.index(run["name"].removesuffix(IN_PROCESS_SUFFIX)), run["name"]),
        )
        part = {"pipeline": runs}
    results.update(part, machine=machine, commit=machine.get("git_head"))
    results.setdefault("parts", {})[name] = {
        "command": command,
        "machine": machine,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
    os.replace(out + ".tmp", out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=PARTS, action="append", help="default: both")
    parser.add_argument("--sizes", default=",".join(PIPELINE_SIZES), help="pipeline runs")
    parser.add_argument("--log-dir", default="/tmp/scale_logs")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="pipeline runs with every Beam step in one process (recorded as <size>-in-process)",
    )
    parser.add_argument(
        "--ids", type=int, help="one user vocabulary size, in this process (default: the curve)"
    )
    parser.add_argument("--lookup-ids", type=int, help="one vocabulary size of the lookup part")
    parser.add_argument("--out", default=RESULTS, help="the curve's results file")
    parser.add_argument("--path", choices=PATHS, default="qr_layer")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.lookup_ids:
        print("SCALE_RESULT " + json.dumps(lookup_run(args.lookup_ids)), flush=True)
        return 0
    if args.ids is None:
        parts = args.part or PARTS
        sizes = args.sizes.split(",")
        unknown = set(sizes) - set(PIPELINE_SIZES)
        if unknown:
            parser.error(f"--sizes: unknown {sorted(unknown)}; choose from {list(PIPELINE_SIZES)}")
        os.makedirs(args.log_dir, exist_ok=True)
        command = " ".join(["python -m benchmarks.scale", *(argv or sys.argv[1:])])
        # Read before the runs: the commit they ran, not whatever HEAD is an hour later.
        machine = measure.machine_info()
        if "steps" in parts:
            steps = args.steps if args.steps != 300 else CURVE_STEPS
            merge_results("steps", curve(steps=steps), args.out, command, machine)
        if "lookup" in parts:
            merge_results("lookup", lookup_part(), args.out, command, machine)
        if "pipeline" in parts:
            pipeline = pipeline_part(sizes, args.log_dir, args.in_process)
            merge_results("pipeline", pipeline, args.out, command, machine)
        return 0
    result = run(args.ids, args.path, args.steps, args.batch_size, args.seed)
    # One JSON line on stdout for the parent benchmark to read.
    print("SCALE_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
