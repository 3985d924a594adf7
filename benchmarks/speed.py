"""Speed and scale benchmark (issue #8): measure before optimising.

Sections (``--sections``, default all, run in this order):

* ``pipeline``: ``local_runner.py --no-cache`` as a subprocess with a fresh
  temporary ``--output-root`` (deleted afterwards) per data set: ``builtin``,
  ``ml-100k`` and ``synthetic-1m`` (``generate_ratings(6040, 3706,
  1_000_000)`` written to a temporary CSV). Wall time of the whole process,
  imports included; per-component time from the run's ML Metadata; peak RSS
  of the process tree and of its largest process (both polled).
* ``serving``: p50/p99 latency of ``serving_default`` at batch 1 and 1,024,
  in-process after warm-up, on the model the ml-100k run pushed (else the
  first run that produced one), once with TensorFlow's default threads and
  once with one thread per pool.
* ``trainer``: the keras-io seed's way of training
  (``benchmarks.seed_reference``) beside ours (``benchmarks.speed_trainer``:
  in-memory ids, ``trainer.model.build_model``, the default preset), on one
  ML-100K 85/15 split: examples per second, the seed's time to its best eval
  RMSE and ours to the same RMSE. Then training levers of ours.
* ``scale``: ``benchmarks.scale`` per vocabulary size in a subprocess: peak
  RSS and step time with QR user tables of 10M and 100M ids, the project's
  model builder at 100M ids, and a full table for comparison.
* ``levers``: import times, and the pipeline on the built-in data with one
  lever at a time applied by ``benchmarks.speed_pipeline_variant``
  (``baseline`` in ``--pipeline-variants`` adds a plain run beside them).

Writes ``speed.json`` and ``speed.md`` to ``--out``; sections not run keep
the figures an earlier run wrote there (a re-run lever keeps its earlier run
in ``pipeline_variant_history``). ``python -m benchmarks.speed_report``
re-renders the Markdown from the JSON.

    PYTHONPATH=. .venv/bin/python -m benchmarks.speed [--sections pipeline,trainer] [--quick]

The full run took 48 minutes on the shared 2-core machine, 17 of them the
1M-rating pipeline; ``--datasets builtin,ml-100k`` or ``--pipeline-variants
''`` shorten it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks import datasets
from benchmarks import speed_tools

REPO_ROOT = datasets.REPO_ROOT
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SECTIONS = ("pipeline", "serving", "trainer", "scale", "levers")
PIPELINE_DATASETS = ("builtin", "ml-100k", "synthetic-1m")
PIPELINE_NAME = "movielens-memory-efficient"
# Preferred source of the served model: real data first.
SERVING_SOURCES = ("ml-100k", "builtin", "synthetic-1m")
TARGET_TRAINER_SPEEDUP = 3.0
TARGET_SERVING_P50_MS = 2.0
TARGET_MEMORY_GB = 24.0
SCALE_IDS = (10_000_000, 100_000_000)
# Pipeline levers run by default: a plain run, then each lever of the pipeline
# undone, one at a time (speed_pipeline_variant.py). trainer_batch_1024 is
# left out: the trainer section measures batch size in-process.
PIPELINE_VARIANTS = (
    "baseline",
    "stock_csv_example_gen",
    "exact_statistics",
    "transform_statistics",
    "transform_materialize",
    "streamed_trainer_input",
    "one_step_per_execution",
    "tfma_native_metrics",
    "tfx_v1_import",
    "beam_multi_threading",
)
IMPORTS = (
    "import tensorflow",
    "import apache_beam",
    "import tensorflow_transform",
    "import tensorflow_model_analysis",
    "from tfx import v1",
)


def python_command(*args: str) -> List[str]:
    return [sys.executable, *args]


def subprocess_env(as_a_user_runs_it: bool = False) -> Dict[str, str]:
    """This environment with the repository on PYTHONPATH.

    ``as_a_user_runs_it`` drops the TensorFlow log filter that importing
    ``benchmarks`` sets, so a pipeline run logs (and spends time logging)
    exactly as ``make run`` does.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if as_a_user_runs_it:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def shown(command: List[str]) -> str:
    """A command as one would type it in the repository root."""
    parts = ["PYTHONPATH=.", ".venv/bin/python" if command[0] == sys.executable else command[0]]
    return " ".join(parts + command[1:])


# --- pipeline ---------------------------------------------------------------


def pipeline_data_args(name: str, scratch: str) -> tuple[List[str], Dict]:
    """local_runner flags for a data set, and what preparing it took."""
    if name == "builtin":
        return [], {"rows": 100_000, "source": "built-in synthetic set (generate_ratings())"}
    if name == "ml-100k":
        folder = datasets.movielens_100k_dir()
        if not (folder / "u.data").is_file():
            raise datasets.DatasetUnavailable(f"ML-100K not found at {folder}")
        return ["--data", str(folder)], {"rows": 100_000, "source": str(folder)}
    if name == "synthetic-1m":
        from components import movielens
        from components import synthetic

        with speed_tools.timed() as timing:
            ratings = synthetic.generate_ratings(6040, 3706, 1_000_000)
            path = os.path.join(scratch, "synthetic-1m", "ratings.csv")
            movielens.write_normalized_csv(ratings, path)
        return ["--data", path], {
            "rows": len(ratings),
            "source": "generate_ratings(6040, 3706, 1_000_000) written to a temporary CSV",
            "generate_and_write_seconds": round(timing.seconds, 2),
        }
    raise ValueError(f"unknown data set {name!r}")


def find_serving_model(output_root: str) -> tuple[Optional[Path], str]:
    """The pushed SavedModel, else the Trainer's (when the Evaluator did not bless)."""
    pushed = sorted(Path(output_root, "serving_model").glob("*/*/saved_model.pb"))
    if pushed:
        return pushed[-1].parent, "pushed"
    trained = sorted(
        Path(output_root, "pipelines").glob("*/Trainer/model/*/Format-Serving/saved_model.pb")
    )
    if trained:
        return trained[-1].parent, "trainer output (not pushed)"
    return None, "none"


def run_pipeline(
    name: str,
    data_args: List[str],
    scratch: str,
    log_dir: str,
    extra_args: List[str],
    variant: Optional[str] = None,
    keep_model_in: Optional[str] = None,
) -> Dict:
    """One whole ``local_runner.py`` process on a fresh output root, measured."""
    output_root = tempfile.mkdtemp(prefix=f"speed_pipeline_{name}_", dir=scratch)
    runner_args = ["--no-cache", "--output-root", output_root, *data_args, *extra_args]
    if variant:
        command = python_command(
            "-m", "benchmarks.speed_pipeline_variant", "--variant", variant, "--", *runner_args
        )
    else:
        command = python_command("local_runner.py", *runner_args)
    label = f"{name}_{variant}" if variant else name
    # Timestamped: a later baseline run of the same data must not overwrite this log.
    started = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = os.path.join(log_dir, f"pipeline_{label}_{started}.log")
    print(f"[pipeline] {label}: {shown(command)}", flush=True)
    run = speed_tools.run_measured(
        command, str(REPO_ROOT), log_path, env=subprocess_env(as_a_user_runs_it=True)
    )
    result = run.as_dict()
    result["command"] = shown(command)
    result["log"] = log_path
    metadata = os.path.join(output_root, "metadata", PIPELINE_NAME, "metadata.db")
    result["components"] = (
        speed_tools.component_seconds(metadata) if os.path.exists(metadata) else {}
    )
    with open(log_path, errors="replace") as f:
        result["trainer_epochs"] = speed_tools.keras_epochs(f.read())
    model_dir, model_kind = find_serving_model(output_root)
    result["serving_model"] = model_kind
    if model_dir is not None and keep_model_in:
        shutil.copytree(model_dir, keep_model_in)
    shutil.rmtree(output_root, ignore_errors=True)
    print(
        f"[pipeline] {label}: {result['seconds']:.0f} s, exit {result['returncode']}, "
        f"model {model_kind}, load {result['load_1min_start']} -> {result['load_1min_end']}",
        flush=True,
    )
    return result


def pipeline_section(args, scratch: str, log_dir: str) -> tuple[Dict, Optional[Dict]]:
    runs, skipped = {}, {}
    kept_models = {}
    for name in args.datasets:
        try:
            data_args, data_info = pipeline_data_args(name, scratch)
        except datasets.DatasetUnavailable as e:
            skipped[name] = str(e)
            print(f"[pipeline] {name}: skipped ({e})", flush=True)
            continue
        keep = os.path.join(scratch, f"serving_model_{name}")
        runs[name] = {
            **data_info,
            **run_pipeline(name, data_args, scratch, log_dir, args.runner_args, keep_model_in=keep),
        }
        if os.path.isdir(keep):
            kept_models[name] = keep
        shutil.rmtree(os.path.join(scratch, name), ignore_errors=True)
    serving_source = next((n for n in SERVING_SOURCES if n in kept_models), None)
    serving_model = (
        {
            "dataset": serving_source,
            "path": kept_models[serving_source],
            "kind": runs[serving_source]["serving_model"],
        }
        if serving_source
        else None
    )
    section = {
        "pipeline_seconds": {name: run["seconds"] for name, run in runs.items()},
        "pipeline": {"runs": runs, "skipped": skipped},
    }
    return section, serving_model


# --- serving ----------------------------------------------------------------


def serving_section(args, serving_model: Optional[Dict], log_dir: str) -> Dict:
    if serving_model is None:
        if not args.serving_model:
            raise SystemExit(
                "the serving section needs a model: run it with the pipeline section, "
                "or pass --serving-model DIR"
            )
        serving_model = {"dataset": "given", "path": args.serving_model, "kind": "given"}
    runs = {}
    for threads in args.serving_threads:
        command = python_command(
            "-m",
            "benchmarks.serving_latency",
            "--model",
            serving_model["path"],
            "--threads",
            str(threads),
            *(["--calls", str(args.serving_calls)] if args.serving_calls else []),
        )
        label = "default_threads" if threads == 0 else f"{threads}_threads"
        log_path = os.path.join(log_dir, f"serving_{label}.log")
        print(f"[serving] {label}: {shown(command)}", flush=True)
        run = speed_tools.run_measured(command, str(REPO_ROOT), log_path, env=subprocess_env())
        result = _tagged_json(log_path, "SERVING_RESULT")
        runs[label] = {
            "command": shown(command).replace(serving_model["path"], "<served model>"),
            "returncode": run.returncode,
            "log": log_path,
            **(result or {}),
        }
    default = runs.get("default_threads") or next(iter(runs.values()))
    batch1 = default.get("batch_1", {})
    return {
        "serving_p50_ms_batch1": batch1.get("p50_ms"),
        "serving": {
            "model": {k: v for k, v in serving_model.items() if k != "path"},
            "runs": runs,
        },
    }


def _tagged_json(log_path: str, tag: str) -> Optional[Dict]:
    with open(log_path, errors="replace") as f:
        for line in f:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1 :])
    return None


# --- trainer ----------------------------------------------------------------


def trainer_variants(default_config) -> List:
    """Levers on our trainer, each one change from the default preset."""
    from benchmarks.speed_trainer import Variant
    from trainer import model_config

    variants = [
        Variant("default, rows input (from_tensor_slices + shuffle)", default_config, "rows"),
        Variant("default, TFRecord input (gzip, parse per batch)", default_config, "tfrecord"),
        Variant("default, XLA jit_compile", default_config, jit_compile=True),
    ]
    for batch_size, lr_scale, rule in ((1024, 8.0, "linear"), (1024, 8**0.5, "sqrt")):
        variants.append(
            Variant(
                f"default, batch {batch_size}, lr x{lr_scale:.2f} ({rule})",
                default_config.replace(
                    batch_size=batch_size, learning_rate=default_config.learning_rate * lr_scale
                ),
            )
        )
    for name in ("full", "md_16x"):
        if name in model_config.PRESETS and name != default_config.name:
            variants.append(Variant(f"preset {name}", model_config.PRESETS[name]))
    if "md_16x" in model_config.PRESETS:
        tuned = model_config.PRESETS["md_16x"]
        variants.append(
            Variant(
                "preset md_16x, batch 1024, lr x2.83 (sqrt)",
                tuned.replace(batch_size=1024, learning_rate=tuned.learning_rate * 8**0.5),
            )
        )
    return variants


def trainer_section(args, scratch: str) -> Dict:
    from benchmarks import seed_reference
    from benchmarks import speed_trainer
    from trainer import model_config

    make_ratings, description = datasets.DATASETS["ml-100k"]
    ratings = make_ratings()
    data = datasets.prepare(ratings, "ml-100k")
    train_rows, eval_rows = datasets.split_rows(len(ratings))
    default_config = model_config.preset(model_config.DEFAULT_MODEL)
    default_variant = speed_trainer.Variant(
        f"default preset ({default_config.name})", default_config
    )
    pairs = []
    for repeat in range(args.trainer_repeats):
        with speed_tools.timed() as timing:
            print(f"[trainer] seed reference, repeat {repeat + 1}", flush=True)
            seed = seed_reference.train_seed(
                ratings, train_rows, eval_rows, scratch, args.seed_max_epochs
            )
            print(
                f"[trainer] seed best val RMSE {seed['best_val_rmse']} at epoch "
                f"{seed['best_epoch']} after {seed['seconds_to_best']} s",
                flush=True,
            )
            ours = speed_trainer.train_to_target(
                default_variant,
                data,
                seed["best_val_rmse"],
                args.max_epochs,
                scratch,
                args.lever_max_seconds * 2,
            )
            print(
                f"[trainer] ours: {ours['examples_per_second']} ex/s, target reached after "
                f"{ours['seconds_to_target']} s (best {ours['best_val_rmse']})",
                flush=True,
            )
        speedup = (
            seed["seconds_to_best"] / ours["seconds_to_target"]
            if ours["seconds_to_target"]
            else None
        )
        pairs.append(
            {
                "seed": seed,
                "ours": ours,
                "speedup_to_seed_best": _round(speedup, 2),
                **{k: v for k, v in timing.as_dict().items() if k != "seconds"},
            }
        )
    speedups = [p["speedup_to_seed_best"] for p in pairs]
    headline = statistics.median(speedups) if all(s is not None for s in speedups) else None
    target = pairs[0]["seed"]["best_val_rmse"]
    seed_time = statistics.median(p["seed"]["seconds_to_best"] for p in pairs)
    levers = []
    if not args.skip_trainer_levers:
        for variant in trainer_variants(default_config):
            print(f"[trainer] lever: {variant.name}", flush=True)
            with speed_tools.timed() as timing:
                result = speed_trainer.train_to_target(
                    variant, data, target, args.max_epochs, scratch, args.lever_max_seconds
                )
            result["speedup_to_seed_best"] = (
                _round(seed_time / result["seconds_to_target"], 2)
                if result["seconds_to_target"]
                else None
            )
            result.update({k: v for k, v in timing.as_dict().items() if k != "seconds"})
            levers.append(result)
    return {
        "trainer_speedup_to_seed_best": _round(headline, 2),
        # The same ratio for every lever, for a quick look without the details.
        "trainer_speedup_to_seed_best_by_lever": {
            lever["variant"]: lever["speedup_to_seed_best"] for lever in levers
        },
        "trainer": {
            "dataset": description,
            "split": f"{data.num_train:,} train / {data.num_eval:,} eval rows "
            f"(benchmarks.datasets.split_rows, seed {datasets.SPLIT_SEED})",
            "default_model": default_config.name,
            "default_config": json.loads(default_config.to_json()),
            "eval_batch_size_ours": speed_trainer.EVAL_BATCH_SIZE,
            "patience_ours": speed_trainer.PATIENCE,
            "pairs": pairs,
            "levers": levers,
        },
    }


def _round(value, digits):
    return None if value is None else round(value, digits)


# --- scale ------------------------------------------------------------------


def scale_section(args, log_dir: str) -> Dict:
    runs = []
    plan = [(ids, "qr_layer", args.scale_steps) for ids in args.scale_ids]
    largest = max(args.scale_ids)
    plan.append((largest, "build_model", min(args.scale_steps, args.build_model_steps)))
    plan.append((largest, "build_model_no_biases", args.scale_steps))
    if args.full_table_ids:
        plan.append((args.full_table_ids, "full", args.full_table_steps))
    for ids, path, steps in plan:
        command = python_command(
            "-m",
            "benchmarks.scale",
            "--ids",
            str(ids),
            "--path",
            path,
            "--steps",
            str(steps),
        )
        log_path = os.path.join(log_dir, f"scale_{ids}_{path}.log")
        print(f"[scale] {shown(command)}", flush=True)
        run = speed_tools.run_measured(command, str(REPO_ROOT), log_path, env=subprocess_env())
        result = _tagged_json(log_path, "SCALE_RESULT") or {"ids": ids, "path": path}
        result.update(
            {
                "command": shown(command),
                "returncode": run.returncode,
                "process_seconds": round(run.timing.seconds, 2),
                "process_peak_rss_gb": round(run.peak_process_rss_bytes / speed_tools.GIB, 3),
                "load_1min_start": run.timing.load_1min_start,
                "load_1min_end": run.timing.load_1min_end,
                "log": log_path,
            }
        )
        print(
            f"[scale] {ids:,} ids {path}: exit {run.returncode}, peak RSS "
            f"{result['process_peak_rss_gb']} GiB, step {result.get('step_ms_p50')} ms",
            flush=True,
        )
        runs.append(result)

    def peak(ids, path):
        for r in runs:
            if r["ids"] == ids and r["path"] == path and r["returncode"] == 0:
                # The child's own VmHWM at the end is exact; the poll is the fallback.
                return max(r.get("peak_rss_gb") or 0, r["process_peak_rss_gb"])
        return None

    return {
        "qr_100m_peak_rss_gb": peak(100_000_000, "qr_layer"),
        "scale": {"runs": runs},
    }


# --- levers -----------------------------------------------------------------


def import_seconds(statement: str, repeats: int = 2) -> Dict:
    """In-process time of one import statement in a fresh interpreter (best of ``repeats``)."""
    code = (
        "import time; started = time.perf_counter(); "
        f"{statement}; print('IMPORT_SECONDS', time.perf_counter() - started)"
    )
    times = []
    for _ in range(repeats):
        output = subprocess.run(
            python_command("-c", code),
            cwd=REPO_ROOT,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        times.append(float(output.split("IMPORT_SECONDS")[-1]))
    return {"statement": statement, "seconds": round(min(times), 2), "all_seconds": times}


def levers_section(args, scratch: str, log_dir: str, earlier: Dict) -> Dict:
    """Import times and pipeline variants; variants measured before are kept unless re-run.

    Each variant records the built-in run it is compared with: the plain
    ``baseline`` variant when this invocation runs one (same conditions),
    else the pipeline section's built-in run.
    """
    levers = dict(earlier.get("levers") or {})
    if not args.skip_imports:
        with speed_tools.timed() as timing:
            levers["imports"] = [import_seconds(statement) for statement in IMPORTS]
        levers["imports_load"] = timing.as_dict()
        help_run = speed_tools.run_measured(
            python_command("local_runner.py", "--help"),
            str(REPO_ROOT),
            os.path.join(log_dir, "local_runner_help.log"),
            env=subprocess_env(),
        )
        levers["local_runner_help_seconds"] = round(help_run.timing.seconds, 2)
    variants = dict(levers.get("pipeline_variants") or {})
    # Runs a re-run replaces stay in the JSON, each with the baseline it had.
    history = {k: list(v) for k, v in (levers.get("pipeline_variant_history") or {}).items()}
    section_baseline = ((earlier.get("pipeline") or {}).get("runs") or {}).get("builtin")

    def retire(name):
        if name in variants:
            old = dict(variants[name])
            if name != "baseline" and "baseline" not in old and section_baseline:
                old["baseline"] = baseline_summary(section_baseline)
            history.setdefault(name, []).append(old)

    data_args, _ = pipeline_data_args("builtin", scratch)
    baseline = section_baseline
    if "baseline" in args.pipeline_variants:
        retire("baseline")
        baseline = run_pipeline("builtin", data_args, scratch, log_dir, args.runner_args)
        baseline["baseline_of"] = "this levers run (plain local_runner.py)"
        variants["baseline"] = baseline
    for variant in args.pipeline_variants:
        if variant == "baseline":
            continue
        run = run_pipeline(
            "builtin", data_args, scratch, log_dir, args.runner_args, variant=variant
        )
        if baseline:
            run["baseline"] = baseline_summary(baseline)
        retire(variant)
        variants[variant] = run
    levers["pipeline_variants"] = variants
    if history:
        levers["pipeline_variant_history"] = history
    return {"levers": levers}


def baseline_summary(run: Dict) -> Dict:
    """What a variant is compared with: a plain run's time, components, load and epochs."""
    return {
        "seconds": run["seconds"],
        "components": {
            k: v["seconds"] if isinstance(v, dict) else v for k, v in run["components"].items()
        },
        "load_1min_start": run["load_1min_start"],
        "load_1min_end": run["load_1min_end"],
        "trainer_epochs": run["trainer_epochs"],
    }


# --- report -----------------------------------------------------------------


def git_state() -> Dict:
    def git(*args):
        # --no-optional-locks: never touch the index, other people are working here.
        return subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": [line[3:] for line in git("status", "--porcelain").splitlines()],
    }


def targets(results: Dict) -> Dict:
    speedup = results.get("trainer_speedup_to_seed_best")
    p50 = results.get("serving_p50_ms_batch1")
    rss = results.get("qr_100m_peak_rss_gb")
    return {
        "trainer_speedup_to_seed_best >= 3": None if speedup is None else speedup >= 3,
        "serving_p50_ms_batch1 <= 2": None if p50 is None else p50 <= TARGET_SERVING_P50_MS,
        "qr_100m_peak_rss_gb <= 24": None if rss is None else rss <= TARGET_MEMORY_GB,
    }


def render_markdown(results: Dict) -> str:
    from benchmarks import speed_report

    return speed_report.render(results)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated: %(default)s"
    )
    parser.add_argument("--datasets", default=",".join(PIPELINE_DATASETS))
    parser.add_argument("--out", default=str(RESULTS_DIR), help="results folder (%(default)s)")
    parser.add_argument(
        "--log-dir", default="/tmp/speed_logs", help="subprocess logs (%(default)s)"
    )
    parser.add_argument(
        "--runner-arg",
        dest="runner_args",
        action="append",
        default=[],
        help="extra local_runner.py flag for every pipeline run (repeatable)",
    )
    parser.add_argument(
        "--serving-model",
        help="SavedModel for the serving section when the pipeline section does not run",
    )
    parser.add_argument("--serving-threads", default="0,1", help="thread settings (0: TF default)")
    parser.add_argument("--serving-calls", type=int, help="timed calls per batch size")
    parser.add_argument("--trainer-repeats", type=int, default=2)
    parser.add_argument("--seed-max-epochs", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=30, help="cap on our epochs to target")
    parser.add_argument("--skip-trainer-levers", action="store_true")
    parser.add_argument("--scale-ids", default=",".join(str(i) for i in SCALE_IDS))
    parser.add_argument("--scale-steps", type=int, default=300)
    parser.add_argument(
        "--full-table-ids",
        type=int,
        default=1_000_000,
        help="also train a full user table of this many ids (0: skip)",
    )
    parser.add_argument(
        "--build-model-steps",
        type=int,
        default=60,
        help="steps of the build_model path (the default preset's per-id bias tables are full "
        "tables, updated whole every step)",
    )
    parser.add_argument(
        "--full-table-steps",
        type=int,
        default=40,
        help="steps of the full table (each updates every row: slow)",
    )
    parser.add_argument(
        "--lever-max-seconds",
        type=float,
        default=120,
        help="time limit of each trainer lever run (%(default)s)",
    )
    parser.add_argument(
        "--pipeline-variants",
        default=",".join(PIPELINE_VARIANTS),
        help="pipeline levers on the built-in data (benchmarks/speed_pipeline_variant.py), plus "
        "'baseline' for a plain run under the same conditions (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-imports", action="store_true", help="levers: do not re-measure import times"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for development: builtin data only, 1M/10M ids, fewer calls and epochs",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets = "builtin"
        args.scale_ids = "1000000,10000000"
        args.scale_steps = min(args.scale_steps, 60)
        args.full_table_ids = min(args.full_table_ids, 100_000)
        args.serving_calls = args.serving_calls or 200
        args.trainer_repeats = 1
        args.seed_max_epochs = min(args.seed_max_epochs, 4)
        args.max_epochs = min(args.max_epochs, 4)
        args.skip_trainer_levers = True
        args.pipeline_variants = ""
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.serving_threads = [int(t) for t in args.serving_threads.split(",") if t]
    args.scale_ids = [int(i) for i in args.scale_ids.split(",") if i]
    args.pipeline_variants = [v for v in args.pipeline_variants.split(",") if v]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.makedirs(args.log_dir, exist_ok=True)
    json_path = out / "speed.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    invocation = " ".join(
        ["PYTHONPATH=. .venv/bin/python -m benchmarks.speed", *(argv or sys.argv[1:])]
    )
    results.setdefault("sections", {})
    results["units"] = {
        "*_gb": "GiB (2**30 bytes)",
        "*seconds*": "wall-clock seconds",
        "*_ms*": "milliseconds",
        "load_1min_*": "1-minute load average (os.getloadavg) of the whole machine",
    }
    machine = speed_tools.machine_info()
    scratch = tempfile.mkdtemp(prefix="speed_benchmark_")
    serving_model = None
    try:
        for section in SECTIONS:
            if section not in args.sections:
                continue
            print(f"== {section} ==", flush=True)
            with speed_tools.timed() as timing:
                if section == "pipeline":
                    update, serving_model = pipeline_section(args, scratch, args.log_dir)
                elif section == "serving":
                    update = serving_section(args, serving_model, args.log_dir)
                elif section == "trainer":
                    update = trainer_section(args, scratch)
                elif section == "scale":
                    update = scale_section(args, args.log_dir)
                else:
                    update = levers_section(args, scratch, args.log_dir, results)
            results.update(update)
            results["sections"][section] = {
                "measured": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": invocation,
                "machine": machine,
                "git": git_state(),
                "quick": args.quick,
                **timing.as_dict(),
            }
            results["targets"] = targets(results)
            # Written after every section, so a later failure keeps what was measured.
            json_path.write_text(json.dumps(results, indent=2) + "\n")
            (out / "speed.md").write_text(render_markdown(results))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results.get("targets"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
