"""Renders ``speed.json`` as ``speed.md``: the figures, the conditions and the commands.

Every number in the Markdown comes from the JSON, so the two cannot
disagree; sections that were never run are left out.

    PYTHONPATH=. .venv/bin/python -m benchmarks.speed_report [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks.speed_tools import markdown_table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COMPONENT_ORDER = (
    "ArrowCsvExampleGen",
    "ImportSchemaGen",
    "StatisticsGen",
    "ExampleValidator",
    "AnomaliesGate",
    "Transform",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "Pusher",
)


def render(results: Dict) -> str:
    parts = [
        "# Speed and scale (issue #8)",
        "",
        "Written by `benchmarks/speed.py` from `speed.json` (same folder); every figure below "
        "is in the JSON with more detail. Re-run with the commands at the end.",
        "",
    ]
    for renderer in (
        _conditions,
        _targets,
        _pipeline,
        _trainer,
        _serving,
        _scale,
        _levers,
        _suggestions,
        _commands,
    ):
        text = renderer(results)
        if text:
            parts.extend([text, ""])
    return "\n".join(parts)


def _load(entry: Dict) -> str:
    start, end = entry.get("load_1min_start"), entry.get("load_1min_end")
    return "–" if start is None else f"{start} → {end}"


def _conditions(results: Dict) -> str:
    sections = results.get("sections", {})
    if not sections:
        return ""
    machine = next(iter(sections.values()))["machine"]
    lines = [
        "## Machine and conditions",
        "",
        f"- CPU: {machine['cpu_model']}, nproc {machine['nproc']}; RAM {machine['ram_gb']} GiB; "
        f"{machine['platform']}, Python {machine['python']}. No GPU.",
        "- Code: the commit and the number of uncommitted files at each section (other "
        "engineers were editing the working tree meanwhile; the JSON lists the files).",
        "- The machine was **shared with other heavy jobs** while this ran. The 1-minute load "
        f"average is recorded at the start and end of every measurement; with {machine['nproc']} "
        "cores, a load above that number means the benchmark got only part of the CPU, so wall "
        "times are upper bounds and differences below about 15% are within the noise.",
        "",
    ]
    rows = [
        [
            name,
            info["measured"],
            info["seconds"],
            _load(info),
            f"`{info.get('git', {}).get('head', '?')}` + "
            f"{len(info.get('git', {}).get('uncommitted_files', []))}",
            "yes" if info.get("quick") else "no",
        ]
        for name, info in sections.items()
    ]
    lines.append(
        markdown_table(
            ["section", "finished", "wall s", "load 1-min", "commit + uncommitted", "quick"], rows
        )
    )
    return "\n".join(lines)


def _met(value: Optional[bool]) -> str:
    return {True: "**met**", False: "**not met**", None: "not measured"}[value]


def _targets(results: Dict) -> str:
    targets = results.get("targets")
    if not targets:
        return ""
    rows = [
        [
            "trainer_speedup_to_seed_best",
            results.get("trainer_speedup_to_seed_best"),
            "≥ 3",
            _met(targets.get("trainer_speedup_to_seed_best >= 3")),
        ],
        [
            "serving_p50_ms_batch1",
            results.get("serving_p50_ms_batch1"),
            "≤ 2 ms",
            _met(targets.get("serving_p50_ms_batch1 <= 2")),
        ],
        [
            "qr_100m_peak_rss_gb",
            results.get("qr_100m_peak_rss_gb"),
            "≤ 24 GB (GiB measured)",
            _met(targets.get("qr_100m_peak_rss_gb <= 24")),
        ],
    ]
    seconds = results.get("pipeline_seconds") or {}
    for name, value in seconds.items():
        rows.append([f"pipeline_seconds[{name}]", value, "(measured, no target)", ""])
    text = [
        "## Headline figures and targets",
        "",
        markdown_table(["figure", "value", "target", ""], rows),
    ]
    speedup = results.get("trainer_speedup_to_seed_best")
    trainer = results.get("trainer")
    if speedup is None and trainer:
        best = [p["ours"]["best_val_rmse"] for p in trainer["pairs"]]
        text.append(
            f"\n`trainer_speedup_to_seed_best` is null: the default preset "
            f"(`{trainer['default_model']}`) never reached the seed's best eval RMSE "
            f"({trainer['pairs'][0]['seed']['best_val_rmse']}); its own best was {best}. "
            "See the trainer levers for presets that do."
        )
    return "\n".join(text)


def _pipeline(results: Dict) -> str:
    pipeline = results.get("pipeline")
    if not pipeline:
        return ""
    runs = pipeline["runs"]
    lines = [
        "## Pipeline: whole `local_runner.py` process",
        "",
        "Each run: a subprocess `local_runner.py --no-cache --output-root <fresh temp dir>` "
        "(deleted afterwards), wall time from process start to exit, imports included. Peak RSS: "
        "the summed RSS of the process tree polled every 0.2 s, and the largest single-process "
        "peak (polled VmHWM; in results that carry `max_rss_gb` instead, `ru_maxrss` from "
        "wait4, which is the same here because the benchmark's own process was far smaller "
        "than the pipeline's when it started it). Component times come from the run's ML "
        "Metadata "
        "(execution `create_time` to `last_update_time`).",
        "",
    ]
    rows = [
        [
            name,
            run.get("rows"),
            run["seconds"],
            run["returncode"],
            run["serving_model"],
            run["peak_tree_rss_gb"],
            run.get("peak_process_rss_gb", run.get("max_rss_gb")),
            _load(run),
        ]
        for name, run in runs.items()
    ]
    lines.append(
        markdown_table(
            [
                "data set",
                "ratings",
                "wall s",
                "exit",
                "model",
                "peak RSS GiB (tree)",
                "largest process GiB",
                "load 1-min",
            ],
            rows,
        )
    )
    for name, reason in pipeline.get("skipped", {}).items():
        lines.append(f"\n{name}: skipped ({reason})")
    if any(run["returncode"] for run in runs.values()):
        lines.append(
            "\nExit 3 means the Evaluator did not bless the model (nothing pushed; the served "
            "model then is the Trainer's output); exit 1 a failure after or during the run "
            "(see the log named in the JSON)."
        )
    names = list(runs)
    components = [c for c in COMPONENT_ORDER if any(c in runs[n]["components"] for n in names)]
    components += sorted({c for n in names for c in runs[n]["components"]} - set(components))
    rows = []
    for component in components:
        row = [component]
        for name in names:
            entry = runs[name]["components"].get(component)
            row.append(entry["seconds"] if entry else None)
        rows.append(row)
    rows.append(
        ["sum of components"]
        + [round(sum(e["seconds"] for e in runs[n]["components"].values()), 1) for n in names]
    )
    rows.append(
        ["process outside components (imports, data prep, summary)"]
        + [
            round(runs[n]["seconds"] - sum(e["seconds"] for e in runs[n]["components"].values()), 1)
            for n in names
        ]
    )
    lines.extend(["", "Seconds per component:", "", markdown_table(["component", *names], rows)])
    rows = []
    for name in names:
        epochs = runs[name]["trainer_epochs"]
        if epochs:
            rows.append(
                [
                    name,
                    len(epochs),
                    epochs[0]["steps"],
                    " / ".join(f"{e['seconds']:.0f}" for e in epochs),
                    " / ".join(f"{e['ms_per_step']:.0f}" for e in epochs),
                    " / ".join(str(e.get("val_rmse", "–")) for e in epochs),
                ]
            )
    if rows:
        lines.extend(
            [
                "",
                "The Trainer inside the pipeline (Keras `verbose=2` lines of the log; Keras rounds "
                "to whole seconds and milliseconds):",
                "",
                markdown_table(
                    ["data set", "epochs", "steps/epoch", "s per epoch", "ms/step", "val RMSE"],
                    rows,
                ),
            ]
        )
    return "\n".join(lines)


def _trainer(results: Dict) -> str:
    trainer = results.get("trainer")
    if not trainer:
        return ""
    lines = [
        "## Trainer vs the keras-io seed",
        "",
        f"Data: {trainer['dataset']}; {trainer['split']}. The seed "
        "(`benchmarks/seed_reference.py`): header-less CSV files read by "
        "`tf.data.experimental.make_csv_dataset`, `StringLookup` + 64-d `Embedding` per id inside "
        "the model, dot product, `sigmoid * 5`, MSE, Adam 1e-3, batch 128; trained until its "
        "eval RMSE had not improved for 2 epochs. Ours (`benchmarks/speed_trainer.py`): integer "
        "ids from in-memory tensors (one gather per batch from a per-epoch permutation), "
        f"`trainer.model.build_model` with the default preset `{trainer['default_model']}`, "
        f"eval in batches of {trainer['eval_batch_size_ours']}, trained until its eval RMSE is at "
        "most the seed's best (checked after each epoch) or has not improved for "
        f"{trainer['patience_ours']} epochs. Times run from before the input pipeline and model "
        "are built to the end of the epoch (training + validation) that reached the RMSE; "
        "examples/s is train examples over the training part of the epochs after the first "
        "(the first also traces).",
        "",
    ]
    rows = []
    for i, pair in enumerate(trainer["pairs"], 1):
        seed, ours = pair["seed"], pair["ours"]
        rows.append(
            [
                i,
                seed["examples_per_second"],
                f"{seed['best_val_rmse']} (epoch {seed['best_epoch']})",
                seed["seconds_to_best"],
                ours["examples_per_second"],
                f"{ours['best_val_rmse']} (epoch {ours['best_epoch']})",
                ours["epochs_to_target"],
                ours["seconds_to_target"],
                pair["speedup_to_seed_best"],
                _load(pair),
            ]
        )
    lines.append(
        markdown_table(
            [
                "repeat",
                "seed ex/s",
                "seed best RMSE",
                "seed s to best",
                "ours ex/s",
                "ours best RMSE",
                "ours epochs to target",
                "ours s to target",
                "speedup (seed s ÷ ours s)",
                "load 1-min",
            ],
            rows,
        )
    )
    levers = trainer.get("levers") or []
    if levers:
        rows = [
            [
                lever["variant"],
                lever["batch_size"],
                lever["learning_rate"],
                lever["examples_per_second"],
                f"{lever['best_val_rmse']} (epoch {lever['best_epoch']})",
                lever["epochs_to_target"],
                lever["seconds_to_target"],
                lever["speedup_to_seed_best"],
                _load(lever),
            ]
            for lever in levers
        ]
        lines.extend(
            [
                "",
                "Training levers, each one change from the default, against the first repeat's "
                "seed target (speedup uses the median seed time to best):",
                "",
                markdown_table(
                    [
                        "variant",
                        "batch",
                        "lr",
                        "ex/s",
                        "best RMSE",
                        "epochs to target",
                        "s to target",
                        "speedup",
                        "load 1-min",
                    ],
                    rows,
                ),
            ]
        )
    return "\n".join(lines)


def _serving(results: Dict) -> str:
    serving = results.get("serving")
    if not serving:
        return ""
    model = serving["model"]
    lines = [
        "## Serving: `serving_default` in-process",
        "",
        f"Model: the {model['kind']} SavedModel of the `{model['dataset']}` pipeline run above. "
        "Input: serialized `tf.Example`s with string `user_id` / `movie_id` of real ratings, "
        "made before timing; each timed call is `signature(examples=t)['rating'].numpy()` after "
        "warm-up (200 calls at batch 1, 20 at larger batches). The last column also times "
        "turning the request's bytes into a tensor.",
        "",
    ]
    rows = []
    for label, run in serving["runs"].items():
        for key, stats in run.items():
            if not key.startswith("batch_"):
                continue
            rows.append(
                [
                    label.replace("_", " "),
                    int(key.split("_")[1]),
                    stats["calls"],
                    stats["p50_ms"],
                    stats["p90_ms"],
                    stats["p99_ms"],
                    stats["mean_ms"],
                    stats["examples_per_second_at_p50"],
                    stats["including_tensor_from_bytes"]["p50_ms"],
                    _load(stats),
                ]
            )
    lines.append(
        markdown_table(
            [
                "threads",
                "batch",
                "calls",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "mean ms",
                "examples/s at p50",
                "p50 ms incl. bytes→tensor",
                "load 1-min",
            ],
            rows,
        )
    )
    return "\n".join(lines)


def _scale(results: Dict) -> str:
    scale = results.get("scale")
    if not scale:
        return ""
    lines = [
        "## Scale: 10M and 100M user ids",
        "",
        "`benchmarks/scale.py`, one subprocess per row; user ids drawn uniformly per batch (no "
        "vocabulary), 3,706 movies, batch 128, Adam. `qr_layer`: `QREmbedding(n, 64)` (default "
        "base ⌈√n⌉, mult) for users, a plain 64-d movie table, dot product, `sigmoid * 5`. "
        "`build_model`: `trainer.model.build_model` with the default preset (its own width, "
        "its movie table and its per-user and per-movie bias tables) and the user table forced "
        "to QR; it takes one train count per user id. `build_model_no_biases`: the same without "
        "the bias tables. `full`: a plain 64-d user table, for comparison. 'user table' counts "
        "the user embedding layer only (not the `n x 1` bias table); 'full table' is what a "
        "plain 64-d fp32 table of `n` ids would take. Peak RSS is the process's own VmHWM at "
        "the end of training (whole process: Python, TensorFlow, model, optimizer, input "
        "pipeline).",
        "",
    ]
    rows = [
        [
            f"{run['ids']:,}",
            run["path"],
            run.get("user_table_params"),
            run.get("user_table_gb"),
            run.get("full_table_gb"),
            run.get("full_table_with_adam_gb"),
            run.get("steps"),
            run.get("step_ms_p50"),
            run.get("examples_per_second"),
            run.get("build_seconds"),
            run.get("peak_rss_gb"),
            run["returncode"],
            _load(run),
        ]
        for run in scale["runs"]
    ]
    lines.append(
        markdown_table(
            [
                "user ids",
                "path",
                "user table params",
                "user table GiB",
                "full table GiB",
                "full + Adam slots GiB",
                "steps",
                "step ms p50",
                "ex/s",
                "build s",
                "peak RSS GiB",
                "exit",
                "load 1-min",
            ],
            rows,
        )
    )
    lines.append(
        "\nA full fp32 table of 100M × 64 is 23.8 GiB (25.6 GB) of weights alone; Adam adds two "
        "slots of the same size (71.5 GiB in all) before gradients and TensorFlow itself, so it "
        "cannot be trained on this 24 GB machine, while the QR tables above are a few MB."
    )
    return "\n".join(lines)


def _levers(results: Dict) -> str:
    levers = results.get("levers")
    if not levers:
        return ""
    lines = [
        "## Levers measured",
        "",
        "Import time of each statement in a fresh interpreter (best of 2):",
        "",
    ]
    lines.append(
        markdown_table(
            ["import", "seconds"],
            [[f"`{i['statement']}`", i["seconds"]] for i in levers["imports"]],
        )
    )
    lines.append(
        f"\n`local_runner.py --help` (TFX is imported only after the input is checked): "
        f"{levers['local_runner_help_seconds']} s."
    )
    variants = levers.get("pipeline_variants") or {}
    if variants:
        rows = []
        section_baseline = _section_baseline(results)
        if section_baseline:
            rows.append(
                _variant_row(
                    "baseline: the pipeline section's built-in run", section_baseline, None
                )
            )
        # The plain run first, then the levers.
        from benchmarks.speed_pipeline_variant import VARIANTS

        # Variants of older code (renamed or now the default) stay in the JSON only.
        current = {k: v for k, v in variants.items() if k == "baseline" or k in VARIANTS}
        for name, run in sorted(current.items(), key=lambda item: item[0] != "baseline"):
            if name == "baseline":
                rows.append(
                    _variant_row("baseline: plain run beside the variants", _flat(run), None)
                )
            else:
                rows.append(_variant_row(name, _flat(run), _variant_baseline(run, results)))
        lines.extend(
            [
                "",
                "Pipeline on the built-in data with one lever applied "
                "(`benchmarks/speed_pipeline_variant.py`, which patches the module the lever "
                "belongs in before `local_runner.main` runs). Each variant is compared with the "
                "plain run recorded with it (a baseline run in the same levers invocation when "
                "there is one, else the pipeline section's built-in run). Runs of variants "
                "measured on older code are kept in `speed.json` only:",
                "",
                markdown_table(
                    [
                        "variant",
                        "wall s",
                        "Δ wall vs its baseline",
                        "ExampleGen s",
                        "StatisticsGen s",
                        "Transform s",
                        "Trainer s",
                        "Evaluator s",
                        "Trainer ms/step (median epoch)",
                        "exit",
                        "load 1-min",
                    ],
                    rows,
                ),
            ]
        )
    effects = _variant_effects(results, _UNDONE_LEVERS, undone=True)
    if effects:
        lines.extend(
            [
                "",
                "What each lever of the pipeline buys: the variant without it → the plain run "
                "with it, on the components it acts on (1-min load of the two runs):",
                "",
            ]
            + [f"- {item}" for item in effects]
        )
    return "\n".join(lines)


# Node ids of the ExampleGen a run used (the stock one in variant
# stock_csv_example_gen); both read as "ExampleGen" when runs are compared.
_EXAMPLE_GENS = ("ArrowCsvExampleGen", "CsvExampleGen")


def _flat(run: Dict) -> Dict:
    """A pipeline run with ``components`` as name -> seconds (its ExampleGen also as "ExampleGen")."""
    components = {
        name: entry["seconds"] if isinstance(entry, dict) else entry
        for name, entry in run.get("components", {}).items()
    }
    for name in _EXAMPLE_GENS:
        if name in components:
            components["ExampleGen"] = components[name]
    return {**run, "components": components}


def _section_baseline(results: Dict) -> Optional[Dict]:
    run = ((results.get("pipeline") or {}).get("runs") or {}).get("builtin")
    return _flat(run) if run else None


def _variant_baseline(run: Dict, results: Dict) -> Optional[Dict]:
    """The plain run a variant was measured against (older results: the pipeline section's)."""
    if run.get("baseline"):
        return _flat(run["baseline"])
    return _section_baseline(results)


def _median_step_ms(epochs: List[Dict]) -> Optional[float]:
    if not epochs:
        return None
    return sorted(e["ms_per_step"] for e in epochs)[len(epochs) // 2]


def _variant_row(name: str, run: Dict, baseline: Optional[Dict]) -> List:
    components = run["components"]
    delta = None
    if baseline:
        delta = f"{(run['seconds'] - baseline['seconds']) / baseline['seconds']:+.0%}"
    return [
        name,
        run["seconds"],
        delta,
        components.get("ExampleGen"),
        components.get("StatisticsGen"),
        components.get("Transform"),
        components.get("Trainer"),
        components.get("Evaluator"),
        _median_step_ms(run.get("trainer_epochs") or []),
        run.get("returncode"),
        _load(run),
    ]


def _suggestions(results: Dict) -> str:
    """Changes to files other people own, each with the figures that support it."""
    items = []
    items += _preset_suggestions(results)
    items += _input_suggestion(results)
    items += _serving_suggestion(results)
    items += _pipeline_variant_suggestions(results)
    items += _scale_suggestions(results)
    items += _pipeline_observations(results)
    if not items:
        return ""
    return "\n".join(
        ["## Suggested changes to others' files (with the figures above)", ""]
        + [item if item.startswith("  - ") else f"- {item}" for item in items]
    )


def _lever_file(lever: Dict, default_model: str) -> str:
    """Which file a trainer lever would change, from what the lever changed."""
    if lever.get("input", "gather") != "gather":
        return "input path, for comparison (`trainer/task.py` reads TFRecords via TFXIO)"
    if lever.get("jit_compile"):
        return "`trainer/model.py` (`compile(jit_compile=True)`)"
    if lever.get("model") != default_model:
        return f'`trainer/model_config.py` (`DEFAULT_MODEL = "{lever.get("model")}"`)'
    return "`trainer/model_config.py` (default preset's batch size and learning rate)"


def _preset_suggestions(results: Dict) -> List[str]:
    trainer = results.get("trainer") or {}
    if not trainer:
        return []
    target = trainer["pairs"][0]["seed"]["best_val_rmse"]
    default_model = trainer["default_model"]
    ours = trainer["pairs"][0]["ours"]
    items = []
    if ours["seconds_to_target"] is None:
        items.append(
            f"`trainer/model_config.py`: the default preset `{default_model}` never "
            f"reached the seed's best eval RMSE {target} (its best: {ours['best_val_rmse']} at "
            f"epoch {ours['best_epoch']}), so no speedup to the seed's best exists for it; the "
            "levers below that do reach it are the candidates for a faster default."
        )
    else:
        items.append(
            f"Trainer levers against the default `{default_model}` (which reaches the seed's best "
            f"{target} in {ours['seconds_to_target']} s, {ours['epochs_to_target']} epochs):"
        )
    for lever in trainer.get("levers", []):
        where = _lever_file(lever, default_model)
        if lever["speedup_to_seed_best"]:
            outcome = (
                f"reaches {target} in {lever['seconds_to_target']} s "
                f"({lever['epochs_to_target']} epochs, {lever['speedup_to_seed_best']}x the seed)"
            )
        else:
            stop = ", stopped by the time limit" if lever.get("timed_out") else ""
            outcome = (
                f"does not reach {target} (best {lever['best_val_rmse']} within "
                f"{lever['epochs_run']} epochs{stop})"
            )
        items.append(
            f"  - {where}: *{lever['variant']}*: {lever['examples_per_second']:,} examples/s, "
            f"{outcome}."
        )
    return items


def _serving_suggestion(results: Dict) -> List[str]:
    runs = (results.get("serving") or {}).get("runs") or {}
    default, single = runs.get("default_threads"), runs.get("1_threads")
    if not (default and single and "batch_1024" in default and "batch_1024" in single):
        return []
    return [
        "Serving host (no file here): one intra- and one inter-op thread gave batch 1,024 "
        f"p50 {single['batch_1024']['p50_ms']} ms against {default['batch_1024']['p50_ms']} ms "
        f"with TensorFlow's default pools, and batch 1 p99 {single['batch_1']['p99_ms']} ms "
        f"against {default['batch_1']['p99_ms']} ms, on this loaded 2-core machine; a server "
        "with few cores (TF Serving `--tensorflow_intra_op_parallelism` / "
        "`--tensorflow_inter_op_parallelism`) should try small pools."
    ]


def _input_suggestion(results: Dict) -> List[str]:
    """The pipeline Trainer's step time beside the trainer benchmark's, and what explains it."""
    trainer = results.get("trainer") or {}
    runs = ((results.get("pipeline") or {}).get("runs")) or {}
    pipeline_ms = _median_step_ms((runs.get("ml-100k") or {}).get("trainer_epochs") or [])
    if not trainer or pipeline_ms is None:
        return []
    ours = trainer["pairs"][0]["ours"]
    batch = trainer["default_config"]["batch_size"]
    in_memory_ms = 1000 * batch / ours["examples_per_second"]
    text = (
        f"`trainer/task.py` (Trainer input): inside the pipeline the Trainer steps at "
        f"{pipeline_ms:.0f} ms (median epoch, ML-100K, batch {batch}); the trainer benchmark "
        f"runs the same preset at {in_memory_ms:.1f} ms/step."
    )
    return [text]


# The components each pipeline variant acts on: its effect is read there, since
# the whole run's time moves by more than that with the machine's load.
_VARIANT_TARGETS = {
    "stock_csv_example_gen": ("ExampleGen",),
    "exact_statistics": ("StatisticsGen",),
    "transform_statistics": ("Transform",),
    "transform_materialize": ("Transform",),
    "streamed_trainer_input": ("Trainer",),
    "one_step_per_execution": ("Trainer",),
    "tfma_native_metrics": ("Evaluator",),
    "tfx_v1_import": (),
    "beam_multi_threading": ("StatisticsGen", "Transform", "Evaluator"),
    "trainer_batch_1024": ("Trainer",),
}
# Variants that undo a lever the pipeline has: their cost is what the lever saves.
_UNDONE_LEVERS = {
    "stock_csv_example_gen": "`components/arrow_csv_example_gen.py` (Arrow parsing, "
    "vectorised split) instead of TFX's CsvExampleGen",
    "exact_statistics": "`pipeline/pipeline.py`: StatisticsGen's sketch-based top values "
    "and uniques",
    "transform_statistics": "`pipeline/pipeline.py`: Transform with `disable_statistics=True`",
    "transform_materialize": "`pipeline/pipeline.py`: Transform with `materialize=False` "
    "(the Trainer transforms the raw examples)",
    "streamed_trainer_input": "`trainer/task.py`: the Trainer reads each split once into "
    "memory (`input_in_memory`)",
    "one_step_per_execution": "`trainer/task.py`: `STEPS_PER_EXECUTION = 8`",
    "tfma_native_metrics": "`components/metrics.py`: one shared pass for MSE, RMSE, MAE, "
    "mean label and mean prediction instead of TFMA's combiner per metric",
    "tfx_v1_import": "the pipeline's modules import TFX's component modules, not `tfx.v1` "
    "(which also imports the Google Cloud extensions)",
}
_VARIANT_FILES = {
    "beam_multi_threading": "`pipeline/configs.py` `local_beam_pipeline_args`: "
    "`--direct_running_mode=multi_threading --direct_num_workers=<nproc>`",
    "trainer_batch_1024": "`trainer/model_config.py`: default preset batch 1024, lr x8",
}


def _variant_effects(results: Dict, names, undone: bool) -> List[str]:
    """One line per variant in ``names``: its components and whole run against its baseline.

    ``undone``: the variant removes a lever, so each figure reads variant →
    plain run (what the lever saves); otherwise plain run → variant.
    """
    levers = results.get("levers") or {}
    items = []
    for name, raw_run in (levers.get("pipeline_variants") or {}).items():
        if name not in names:
            continue
        baseline = _variant_baseline(raw_run, results)
        if not baseline:
            continue
        run = _flat(raw_run)
        parts = []
        before, after = (run, baseline) if undone else (baseline, run)
        for component in _VARIANT_TARGETS.get(name, ()):
            first = before["components"].get(component)
            then = after["components"].get(component)
            if first and then:
                parts.append(f"{component} {first:.1f} → {then:.1f} s")
        parts.append(
            f"whole run {before['seconds']:.0f} → {after['seconds']:.0f} s "
            f"(load {_load(before)}; {_load(after)})"
        )
        items.append(f"{names[name]}: {'; '.join(parts)}.")
    return items


def _pipeline_variant_suggestions(results: Dict) -> List[str]:
    items = _variant_effects(results, _VARIANT_FILES, undone=False)
    return [f"Not applied: {item}" for item in items]


def _scale_suggestions(results: Dict) -> List[str]:
    runs = (results.get("scale") or {}).get("runs") or []
    ok = [r for r in runs if r.get("returncode") == 0 and r.get("step_ms_p50") is not None]

    def find(path, ids=None):
        return next((r for r in ok if r["path"] == path and ids in (None, r["ids"])), None)

    items = []
    project = find("build_model")
    no_biases = find("build_model_no_biases", project and project["ids"])
    layer = find("qr_layer", project and project["ids"])
    if project and no_biases:
        items.append(
            f"`trainer/model.py` `_bias`: the per-user and per-movie biases are plain "
            f"`n x 1` tables, and Keras 3's Adam updates every row of a table every step. At "
            f"{project['ids']:,} user ids the default preset with a QR user table steps in "
            f"{project['step_ms_p50']} ms, and in {no_biases['step_ms_p50']} ms without the "
            "biases. For vocabularies this size the bias needs a compressed table too (e.g. a "
            "QR or hashed bias) or an optimizer that updates only the rows in the batch."
        )
    if project and layer:
        items.append(
            f"`trainer/embeddings.py` `build_embedding` turns the vocabulary counts into a "
            f"Python list of floats even for QR and full tables, which never use them "
            f"(`trainer/task.py` `read_vocabulary_counts` builds a list the same way). At "
            f"{project['ids']:,} ids `build_model` takes {project['build_seconds']} s and the "
            f"process peaks at {project['peak_rss_gb']} GiB, against "
            f"{layer['build_seconds']} s and {layer['peak_rss_gb']} GiB for the same QR "
            "table built directly. Counts kept as a numpy array, read only for MD, remove that."
        )
    full = find("full")
    qr = find("qr_layer")
    if full and qr:
        items.append(
            f"Full tables at large vocabularies: for the same reason (every row updated every "
            f"step), a full {full['ids']:,}-id user table trains at {full['step_ms_p50']} "
            f"ms/step against {qr['step_ms_p50']} ms/step for QR at {qr['ids']:,} ids. Keep "
            "compressed tables for big vocabularies; a full table needs a sparse-update "
            "optimizer to scale."
        )
    return items


def _pipeline_observations(results: Dict) -> List[str]:
    runs = ((results.get("pipeline") or {}).get("runs")) or {}
    big = runs.get("synthetic-1m")
    items = []
    if big and big["components"]:
        total = sum(e["seconds"] for e in big["components"].values())
        top = sorted(big["components"].items(), key=lambda kv: -kv[1]["seconds"])[:3]
        shares = ", ".join(
            f"{name} {e['seconds']:.0f} s ({e['seconds'] / total:.0%})" for name, e in top
        )
        items.append(f"Where the 1M-rating run spends its time: {shares}.")
    imports = (results.get("levers") or {}).get("imports") or []
    tfx_import = next((i for i in imports if i["statement"] == "from tfx import v1"), None)
    if tfx_import and "builtin" in runs:
        items.append(
            f"`from tfx import v1` alone takes {tfx_import['seconds']} s; the pipeline's "
            "modules import TFX's component modules instead (variant `tfx_v1_import` "
            "measures the difference)."
        )
    return items


TARGET_SPEEDUP = 3.0


def _commands(results: Dict) -> str:
    commands = []
    for info in results.get("sections", {}).values():
        if info["command"] not in commands:
            commands.append(info["command"])
    sub = []
    for run in ((results.get("pipeline") or {}).get("runs") or {}).values():
        sub.append(run["command"])
    for run in ((results.get("serving") or {}).get("runs") or {}).values():
        sub.append(run["command"])
    for run in (results.get("scale") or {}).get("runs") or []:
        sub.append(run["command"])
    levers = results.get("levers") or {}
    for run in (levers.get("pipeline_variants") or {}).values():
        sub.append(run["command"])
    for runs in (levers.get("pipeline_variant_history") or {}).values():
        sub.extend(run["command"] for run in runs)
    lines = ["## Commands", "", "Benchmark invocations (from the repository root):", "", "```"]
    lines += commands
    lines += ["```", "", "Subprocesses it ran (temporary paths as they were):", "", "```"]
    lines += sub
    lines += ["```"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    out = Path(args.out)
    results = json.loads((out / "speed.json").read_text())
    (out / "speed.md").write_text(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
