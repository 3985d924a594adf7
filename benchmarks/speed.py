"""Speed and scale benchmark: the product's own times, measured; results in ``results/speed.json``.

Sections (``--sections``, default all, in this order):

* ``pipeline``: ``local_runner.py --no-cache`` as a subprocess with a fresh
  temporary ``--output-root`` per data set (``builtin``, ``ml-100k``,
  ``synthetic-1m``): wall time of the whole process, imports included; each
  component's time from the run's ML Metadata; the Trainer's epochs from its
  log; peak RSS of the process tree.
* ``serving``: p50/p90/p99 latency of the pushed model's ``serving_default``
  (``benchmarks.serving_latency``) at batch 1 and 1,024, with TensorFlow's
  default threads and with one thread per pool.
* ``recommend``: p50/p90/p99 latency of ``recommend`` (the top 10 of every
  movie, ``benchmarks.serving_latency --signature recommend``) at batch 1 and
  64, with the same thread settings, on the default preset's serving model
  over an ML-1M-sized catalogue (6,040 users, 3,706 movies) that
  ``serving_latency --build-catalogue`` exports first, or on
  ``--recommend-model DIR``.
* ``trainer``: the keras-io seed's way of training (``benchmarks.seed_reference``)
  beside the project's (``trainer.task.shuffled_batches`` into
  ``trainer.model.build_model``, 8 steps per execution) on one ML-100K
  split: examples per second, and the time to the seed's best eval RMSE.
* ``scale``: ``benchmarks.scale`` in a subprocess per size: peak RSS and
  step time of QR user tables of 10M and 100M ids, and a full table.

A section run replaces that section in ``speed.json`` and records its own
command, machine, commit, time and load; the others keep theirs.

    python -m benchmarks.speed [--sections pipeline,serving] [--datasets ml-100k] [--quick]
    python -m benchmarks.speed --sections recommend     # about 2 minutes on its own
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import datasets
from benchmarks import measure
from pipeline import configs

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = ("pipeline", "serving", "recommend", "trainer", "scale")
PIPELINE_DATASETS = ("builtin", "ml-100k", "synthetic-1m")
# Presets timed to the seed's best RMSE beside the default one.
TRAINER_PRESETS = ("full", "md_16x")


def run_logged(args: list[str], log_dir: str, label: str, user_env: bool = False) -> dict:
    """``python ARGS`` in the repository root, measured; its log path and command."""
    env = dict(os.environ, PYTHONPATH=str(measure.REPO_ROOT))
    if user_env:  # log (and spend time logging) exactly as ``make run`` does
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log = os.path.join(log_dir, f"{label}_{stamp}.log")
    print(f"[{label}] python {' '.join(args)}", flush=True)
    run = measure.run_measured([sys.executable, *args], log, env=env)
    del run["rss_samples"]  # per-step memory is the scale benchmark's
    print(f"[{label}] exit {run['returncode']}, {run['seconds']:.0f} s", flush=True)
    return {"command": "python " + " ".join(args), **run, "log": log}


def tagged_json(log_path: str, tag: str) -> dict:
    """The JSON a child printed on a line starting with ``tag``."""
    with open(log_path, errors="replace") as f:
        lines = [line for line in f if line.startswith(tag + " ")]
    return json.loads(lines[-1][len(tag) + 1 :]) if lines else {}


def find_serving_model(output_root: str) -> Path | None:
    pushed = sorted(Path(output_root, "serving_model").glob("*/*/saved_model.pb"))
    return pushed[-1].parent if pushed else None


def pipeline_section(args, scratch: str) -> dict:
    runs, skipped, models = {}, {}, {}
    for name in args.datasets:
        data_args, info = [], {}
        if name == "ml-100k":
            folder = datasets.movielens_100k_dir()
            if not (folder / "u.data").is_file():
                skipped[name] = f"ML-100K not found at {folder}"
                continue
            data_args = ["--data", str(folder)]
        elif name == "synthetic-1m":
            from components import movielens

            ratings = datasets.DATASETS[name]()
            path = os.path.join(scratch, "synthetic-1m.csv")
            movielens.write_normalized_csv(ratings, path)
            data_args, info = ["--data", path], {"rows": len(ratings)}
        output_root = tempfile.mkdtemp(prefix=f"pipeline_{name}_", dir=scratch)
        # --verbose streams Keras' epoch lines to the output read below.
        command = ["local_runner.py", "--no-cache", "--verbose", "--output-root", output_root]
        command += data_args
        run = run_logged(command + args.runner_args, args.log_dir, f"pipeline_{name}", True)
        metadata = os.path.join(output_root, "metadata", configs.PIPELINE_NAME, "metadata.db")
        if os.path.exists(metadata):
            run["components"] = {  # seconds per step; its clock times are the scale part's
                node: {k: v for k, v in entry.items() if k not in ("start", "end")}
                for node, entry in measure.component_seconds(metadata).items()
            }
        with open(run["log"], errors="replace") as f:
            run["trainer_epochs"] = measure.keras_epochs(f.read())
        model = find_serving_model(output_root)
        run["serving_model"] = "pushed" if model else "none"
        if model:
            models[name] = shutil.copytree(model, os.path.join(scratch, f"model_{name}"))
        shutil.rmtree(output_root, ignore_errors=True)
        runs[name] = {**info, **run}
    # The served model: real data's first.
    served = next((n for n in ("ml-100k", "builtin", "synthetic-1m") if n in models), None)
    args.serving_model = args.serving_model or (served and models[served])
    return {
        "pipeline_seconds": {name: run["seconds"] for name, run in runs.items()},
        "pipeline": {"runs": runs, "skipped": skipped},
    }


def serving_section(args, scratch: str) -> dict:
    if not args.serving_model:
        raise SystemExit("the serving section needs the pipeline section or --serving-model DIR")
    runs = latency_runs(args, args.serving_model, [], "serving", "SERVING_RESULT")
    batch_1 = runs[next(iter(runs))].get("batch_1", {})
    return {"serving_p50_ms_batch1": batch_1.get("p50_ms"), "serving": {"runs": runs}}


def latency_runs(args, model: str, options: list[str], label: str, tag: str) -> dict:
    """``benchmarks.serving_latency`` on ``model`` once per thread setting, a child each."""
    runs = {}
    for threads in args.serving_threads:
        command = ["-m", "benchmarks.serving_latency", "--model", model, *options]
        command += ["--threads", str(threads)]
        command += ["--calls", str(args.serving_calls)] if args.serving_calls else []
        name = f"{threads}_threads" if threads else "default_threads"
        run = run_logged(command, args.log_dir, f"{label}_{name}")
        runs[name] = {**run, **tagged_json(run["log"], tag)}
    return runs


def recommend_section(args, scratch: str) -> dict:
    model, catalogue = args.recommend_model, {"model": "--recommend-model"}
    if not model:
        model = os.path.join(scratch, "catalogue_model")
        command = ["-m", "benchmarks.serving_latency", "--build-catalogue", model]
        if args.catalogue_users:  # else serving_latency's ML-1M-sized default
            command += ["--users", str(args.catalogue_users)]
        if args.catalogue_movies:
            command += ["--movies", str(args.catalogue_movies)]
        run = run_logged(command, args.log_dir, "recommend_catalogue")
        catalogue = {**run, **tagged_json(run["log"], "CATALOGUE_RESULT")}
        if run["returncode"]:
            raise SystemExit(f"building the catalogue model failed; see {run['log']}")
    signature = ["--signature", "recommend", "--batch-sizes", "1,64", "--k", "10"]
    runs = latency_runs(args, model, signature, "recommend", "RECOMMEND_RESULT")
    batch_1 = runs[next(iter(runs))].get("batch_1", {})
    return {
        "recommend_p50_ms_batch1": batch_1.get("p50_ms"),
        "recommend": {"catalogue": catalogue, "runs": runs},
    }


def trainer_section(args, scratch: str) -> dict:
    import keras

    from benchmarks import seed_reference
    from benchmarks import training
    from trainer import model_config
    from trainer import task

    ratings = datasets.DATASETS["ml-100k"]()
    data = datasets.prepare(ratings, "ml-100k")
    train_rows, eval_rows = datasets.split_rows(len(ratings))

    def ours(config, target):
        clock = seed_reference.EpochClock(time.perf_counter(), target, patience=3)
        config = config.replace(epochs=args.max_epochs, early_stopping_patience=0)
        training.fit(config, data, config.seed, False, [clock], task.STEPS_PER_EXECUTION)
        keras.backend.clear_session()
        return {
            "model": config.name,
            "batch_size": config.batch_size,
            **clock.summary(data.num_train),
        }

    default = model_config.preset(model_config.DEFAULT_MODEL)
    pairs = []
    for repeat in range(args.trainer_repeats):
        with measure.timed() as timing:
            seed = seed_reference.train_seed(
                ratings, train_rows, eval_rows, scratch, args.seed_max_epochs
            )
            mine = ours(default, seed["best_val_rmse"])
        to_target = mine["seconds_to_target"]
        speedup = round(seed["seconds_to_best"] / to_target, 2) if to_target else None
        pairs.append({"seed": seed, "ours": mine, "speedup_to_seed_best": speedup})
        pairs[-1].update({k: v for k, v in timing.as_dict().items() if k != "seconds"})
        print(f"[trainer] repeat {repeat + 1}: speedup {speedup}", flush=True)
    speedups = [p["speedup_to_seed_best"] for p in pairs]
    seed_time = statistics.median(p["seed"]["seconds_to_best"] for p in pairs)
    presets = []
    for name in TRAINER_PRESETS if not args.quick else ():
        if name != default.name:
            target = pairs[0]["seed"]["best_val_rmse"]
            result = {"variant": f"preset {name}", **ours(model_config.preset(name), target)}
            to_target = result["seconds_to_target"]
            result["speedup_to_seed_best"] = round(seed_time / to_target, 2) if to_target else None
            presets.append(result)
    return {
        "trainer_speedup_to_seed_best": (
            statistics.median(speedups) if None not in speedups else None
        ),
        "trainer": {
            "dataset": data.describe(),
            "default_model": default.name,
            "pairs": pairs,
            "levers": presets,
        },
    }


def scale_section(args, scratch: str) -> dict:
    largest = max(args.scale_ids)
    plan = [(ids, "qr_layer", args.scale_steps) for ids in args.scale_ids]
    plan += [(largest, "build_model", min(args.scale_steps, 60))]
    plan += [(largest, "build_model_no_biases", args.scale_steps)]
    plan += [(args.full_table_ids, "full", 40)] if args.full_table_ids else []
    runs = []
    for ids, path, steps in plan:
        command = ["-m", "benchmarks.scale", "--ids", str(ids), "--path", path]
        run = run_logged(command + ["--steps", str(steps)], args.log_dir, f"scale_{ids}_{path}")
        runs.append({**tagged_json(run["log"], "SCALE_RESULT"), **run})
    peak = [
        r.get("peak_rss_gb")
        for r in runs
        if r.get("ids") == 100_000_000 and r["path"] == "qr_layer"
    ]
    return {"qr_100m_peak_rss_gb": peak[0] if peak else None, "scale": {"runs": runs}}


def targets(results: dict) -> dict:
    """The issue's targets, met or not (None: not measured)."""
    checks = {
        "trainer_speedup_to_seed_best >= 3": ("trainer_speedup_to_seed_best", lambda v: v >= 3),
        "serving_p50_ms_batch1 <= 2": ("serving_p50_ms_batch1", lambda v: v <= 2),
        "recommend_p50_ms_batch1 <= 5": ("recommend_p50_ms_batch1", lambda v: v <= 5),
        "qr_100m_peak_rss_gb <= 24": ("qr_100m_peak_rss_gb", lambda v: v <= 24),
    }
    return {
        name: None if results.get(key) is None else test(results[key])
        for name, (key, test) in checks.items()
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--datasets", default=",".join(PIPELINE_DATASETS))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--log-dir", default="/tmp/speed_logs")
    parser.add_argument(
        "--runner-arg",
        dest="runner_args",
        action="append",
        default=[],
        help="a local_runner.py flag for every pipeline run (repeatable)",
    )
    parser.add_argument("--serving-model", help="SavedModel, when the pipeline section is not run")
    parser.add_argument("--serving-threads", default="0,1", help="0: TensorFlow's default")
    parser.add_argument("--serving-calls", type=int, help="timed calls per batch size")
    parser.add_argument("--recommend-model", help="SavedModel to time recommend on")
    parser.add_argument("--catalogue-users", type=int, help="default: ML-1M's 6,040")
    parser.add_argument("--catalogue-movies", type=int, help="default: ML-1M's 3,706")
    parser.add_argument("--trainer-repeats", type=int, default=2)
    parser.add_argument("--seed-max-epochs", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--scale-ids", default="10000000,100000000")
    parser.add_argument("--scale-steps", type=int, default=300)
    parser.add_argument("--full-table-ids", type=int, default=1_000_000, help="0: skip")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check it works")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.scale_ids, args.scale_steps = "builtin", "1000000", 40
        args.full_table_ids, args.serving_calls, args.trainer_repeats = 100_000, 200, 1
        args.catalogue_users, args.catalogue_movies = 604, 371
        args.seed_max_epochs = args.max_epochs = 3
    args.sections = args.sections.split(",")
    if set(args.sections) - set(SECTIONS):
        parser.error(f"unknown section in {args.sections}; choose from {SECTIONS}")
    args.datasets = args.datasets.split(",")
    args.serving_threads = [int(t) for t in args.serving_threads.split(",")]
    args.scale_ids = [int(i) for i in args.scale_ids.split(",")]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.makedirs(args.log_dir, exist_ok=True)
    path = args.out / "speed.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    command = " ".join(["python -m benchmarks.speed", *(argv or sys.argv[1:])])
    machine = measure.machine_info()
    scratch = tempfile.mkdtemp(prefix="speed_benchmark_")
    runners = {
        "pipeline": pipeline_section,
        "serving": serving_section,
        "recommend": recommend_section,
        "trainer": trainer_section,
        "scale": scale_section,
    }
    try:
        for section in (s for s in SECTIONS if s in args.sections):
            print(f"== {section} ==", flush=True)
            with measure.timed() as timing:
                results.update(runners[section](args, scratch))
            results.setdefault("sections", {})[section] = {
                "measured": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": command,
                "machine": machine,
                "quick": args.quick,
                **timing.as_dict(),
            }
            results["targets"] = targets(results)
            # Written after every section: a later failure keeps what was measured.
            path.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results.get("targets"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
