"""The facts of the latest pipeline run, read once from ML Metadata, and its console summary.

``collect`` gathers what the run produced into one JSON-ready dict: whether
the Evaluator blessed the model (and if not, which thresholds failed), whether
it serves as TF Serving loads it, where it was pushed, each Evaluator's
metrics per slice (the candidate beside its baseline when one was evaluated),
and each Trainer's memory report and training history. ``write_facts`` stores
it as ``report.json``; ``format_summary`` renders what ``local_runner.py``
prints and ``pipeline/report.py`` renders the HTML page from the same dict.
"""

import datetime
import json
import numbers
import os
import tempfile
from collections.abc import Sequence

import tensorflow as tf
import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.components.evaluator import constants as evaluator_constants
from tfx.types import standard_component_specs as specs
from tfx.utils import path_utils

from components import features
from components import metrics
from components import serving_check
from pipeline import configs
from trainer import model_config
from trainer import task as trainer_task
from trainer.embeddings import memory as embedding_memory

FACTS_FILE = "report.json"

# The ids of the pipeline's nodes (TFX names a node after its component class
# unless told otherwise).
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

# The Pusher's custom properties (TFX's Pusher keeps its names private).
PUSHED_KEY = "pushed"
PUSHED_DESTINATION_KEY = "pushed_destination"

# The overall metrics the console prints, in its order.
SUMMARY_METRICS = (
    metrics.EXAMPLE_COUNT_NAME,
    metrics.MEAN_SQUARED_ERROR_NAME,
    metrics.MEAN_ABSOLUTE_ERROR_NAME,
    metrics.ROOT_MEAN_SQUARED_ERROR_NAME,
    metrics.NDCG_AT_K_NAME,
    metrics.RECALL_AT_K_NAME,
)
# The per-user ranking metrics (components/metrics.py).
RANKING_METRICS = (metrics.NDCG_AT_K_NAME, metrics.RECALL_AT_K_NAME, metrics.RANKED_USERS_NAME)
# TFMA names a candidate-minus-baseline metric after the metric plus this.
DIFF_SUFFIX = "_diff"

# Transform emits these slicing features by name; the names' order is the
# slices' order (head before tail, the most active users first), which
# sorting the names would lose.
SLICE_VALUE_NAMES = {
    features.MOVIE_POPULARITY_BLOCK: features.MOVIE_POPULARITY_BLOCK_NAMES,
    features.USER_ACTIVITY_QUARTILE: features.USER_ACTIVITY_QUARTILE_NAMES,
}

NO_REASON = "(no reason recorded)"


def metadata_path(output_root: str, pipeline_name: str = configs.PIPELINE_NAME) -> str:
    return os.path.join(output_root, "metadata", pipeline_name, "metadata.db")


def open_store(path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def latest_run_outputs(store: metadata_store.MetadataStore) -> dict[str, dict[str, object]]:
    """Output artifacts of the latest pipeline run: {node id: {output key: artifact}}.

    Looked up by the node that produced them, not by type alone: with the
    full-model comparison on, two Trainers and two Evaluators write Models and
    ModelEvaluations in the same run. A cached node is recorded in the run too,
    with its earlier outputs.
    """
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        return {}
    latest_run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    executions = store.get_executions_by_context(latest_run.id)
    node_of_execution = {}
    for execution in executions:
        for context in store.get_contexts_by_execution(execution.id):
            if context.type == "node":
                # Node contexts are named "<pipeline>.<node id>".
                node_of_execution[execution.id] = context.name.rsplit(".", 1)[-1]
    events = [
        e
        for e in store.get_events_by_execution_ids(list(node_of_execution))
        if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    ]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    outputs: dict[str, dict[str, object]] = {}
    for event in events:
        output_key = event.path.steps[0].key if event.path.steps else ""
        node_outputs = outputs.setdefault(node_of_execution[event.execution_id], {})
        node_outputs[output_key] = artifacts[event.artifact_id]
    return outputs


# ---------------------------------------------------------------- the facts


def collect(output_root: str, pipeline_name: str = configs.PIPELINE_NAME) -> dict:
    """The latest run's facts, as they read back from ``report.json``."""
    path = metadata_path(output_root, pipeline_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No ML Metadata at {path}: has the pipeline run there?")
    outputs = latest_run_outputs(open_store(path))
    model = outputs.get(TRAINER, {}).get(specs.MODEL_KEY)
    blessing = outputs.get(EVALUATOR, {}).get(specs.BLESSING_KEY)
    evaluation = outputs.get(EVALUATOR, {}).get(specs.EVALUATION_KEY)
    pushed = outputs.get(PUSHER, {}).get(specs.PUSHED_MODEL_KEY)
    if not (model and blessing and evaluation and pushed):
        raise RuntimeError(f"{path} records no complete run")

    blessed = bool(_custom_int(blessing, evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY))
    reasons = [] if blessed else validation_failures(tfma.load_validation_result(evaluation.uri))
    evaluations = [
        read_evaluation(
            evaluation.uri,
            node=EVALUATOR,
            title="Blessing check: this model against the latest blessed model",
            baseline_name="latest blessed",
            no_baseline_note=(
                "No model had been blessed before this run, so there is no baseline and the "
                "change threshold did not apply."
            ),
        )
    ]
    models = [read_model("this model", outputs[TRAINER])]
    if configs.COMPRESSION_EVALUATOR_ID in outputs:
        evaluations.append(
            read_evaluation(
                outputs[configs.COMPRESSION_EVALUATOR_ID][specs.EVALUATION_KEY].uri,
                node=configs.COMPRESSION_EVALUATOR_ID,
                title="Cost of compression: this model against the same model with full tables",
                baseline_name="full tables",
                no_baseline_note="The full-table model was not evaluated.",
            )
        )
    if configs.FULL_MODEL_TRAINER_ID in outputs:
        models.append(read_model("full tables", outputs[configs.FULL_MODEL_TRAINER_ID]))

    destination = pushed.custom_properties.get(PUSHED_DESTINATION_KEY)
    facts = {
        "pipeline_name": pipeline_name,
        "output_root": os.path.abspath(output_root),
        "generated_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "blessing": {
            "blessed": blessed,
            "reasons": reasons or ([] if blessed else [NO_REASON]),
            "pushed": bool(_custom_int(pushed, PUSHED_KEY)),
            "pushed_destination": destination.string_value if destination else None,
        },
        "serving_check": read_serving_check(outputs.get(configs.SERVING_CHECK_ID, {})),
        "evaluations": evaluations,
        "models": models,
    }
    # Through JSON and back, so every reader sees exactly what report.json holds.
    return json.loads(to_json(facts))


def _custom_int(artifact, key: str, default: int = 0) -> int:
    value = artifact.custom_properties.get(key)
    return value.int_value if value is not None else default


def read_evaluation(
    uri: str, node: str, title: str, baseline_name: str, no_baseline_note: str
) -> dict:
    """Per-slice metrics of one Evaluator output, candidate and baseline, and its thresholds."""
    eval_config = tfma.load_eval_result(uri).config
    candidate_spec = next(s for s in eval_config.model_specs if not s.is_baseline)
    baseline_spec = next((s for s in eval_config.model_specs if s.is_baseline), None)
    candidate, change = _metrics_by_slice(uri, candidate_spec.name)
    baseline = _metrics_by_slice(uri, baseline_spec.name)[0] if baseline_spec else {}

    slicing_features = [key for spec in eval_config.slicing_specs for key in spec.feature_keys]
    slices = []
    for slice_key in sorted(candidate, key=lambda k: _slice_order(k, slicing_features)):
        feature, value = slice_key[0] if slice_key else (None, None)
        if isinstance(value, bytes):  # TFMA gives str; bytes would not go to JSON
            value = value.decode("utf-8", "replace")
        slices.append(
            slice_item(
                feature,
                value,
                candidate[slice_key],
                baseline.get(slice_key),
                change.get(slice_key) or None,
            )
        )
    return {
        "node": node,
        "title": title,
        "uri": uri,
        "baseline_name": baseline_name if baseline_spec else None,
        "note": None if baseline_spec else no_baseline_note,
        "slices": slices,
        "thresholds": threshold_descriptions(eval_config),
    }


def slice_item(feature, value, candidate: dict, baseline: dict | None, change: dict | None):
    """One slice's row of the facts: its name, and its metrics per model and their change."""
    item = {
        "feature": feature,
        "value": value,
        "label": slice_label(feature, value),
        "candidate": candidate,
        "baseline": baseline,
        "change": change,
    }
    if feature == features.LABEL:
        # Every movie of a rating-value slice is equally relevant: there is no ranking to judge.
        for model in ("candidate", "baseline", "change"):
            if item[model] is not None:
                item[model] = {k: v for k, v in item[model].items() if k not in RANKING_METRICS}
    return item


def _metrics_by_slice(uri: str, model_name: str):
    """({slice key: {metric: value}}, {slice key: {metric: change vs baseline}})."""
    result = tfma.load_eval_result(uri, model_name=model_name or None)
    values, changes = {}, {}
    for slice_key, by_output in result.slicing_metrics:
        values[slice_key], changes[slice_key] = {}, {}
        for name, value in by_output.get("", {}).get("", {}).items():
            if "doubleValue" not in value:
                continue
            if name.endswith(DIFF_SUFFIX):
                changes[slice_key][name[: -len(DIFF_SUFFIX)]] = value["doubleValue"]
            else:
                values[slice_key][name] = value["doubleValue"]
    return values, changes


def _slice_order(slice_key, slicing_features: Sequence[str]):
    """Overall first, then by slicing feature; named slices in their names' order."""
    if not slice_key:
        return (-1, 0, 0.0, "")
    feature, value = slice_key[0]
    rank = slicing_features.index(feature) if feature in slicing_features else len(slicing_features)
    index = slice_value_index(feature, value)
    if index is not None:
        return (rank, 0, float(index), "")
    if isinstance(value, numbers.Real):
        return (rank, 1, float(value), "")
    return (rank, 2, 0.0, _as_text(value))


def slice_value_index(feature: str | None, value) -> int | None:
    """Where a slice value stands among its feature's names, or None if not named.

    Transform emits the names (TFMA gives them back as str). Integer values,
    from eval results written before it did, are read as the index itself.
    """
    names = SLICE_VALUE_NAMES.get(feature)
    if names is None or value is None:
        return None
    if isinstance(value, (str, bytes)):
        text = _as_text(value)
        return names.index(text) if text in names else None
    is_index = isinstance(value, numbers.Real) and float(value).is_integer()
    return int(value) if is_index and 0 <= int(value) < len(names) else None


def slice_label(feature: str | None, value) -> str:
    if feature is None:
        return "overall"
    index = slice_value_index(feature, value)
    if index is not None:
        return SLICE_VALUE_NAMES[feature][index]
    if feature == features.LABEL and isinstance(value, numbers.Real):
        return f"rating {float(value):g}"
    return _as_text(value)


def _as_text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def threshold_conditions(threshold) -> list[str]:
    """What a TFMA MetricThreshold asks of its metric, one condition per bound."""
    conditions = []
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if bounds.HasField("upper_bound"):
            conditions.append(f"<= {bounds.upper_bound.value:g}")
        if bounds.HasField("lower_bound"):
            conditions.append(f">= {bounds.lower_bound.value:g}")
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        lower_is_better = change.direction == tfma.MetricDirection.LOWER_IS_BETTER
        conditions.append(
            f"at most {change.absolute.value:g} {'above' if lower_is_better else 'below'} "
            "the latest blessed model's"
        )
    return conditions


def threshold_descriptions(eval_config) -> list[str]:
    """The blessing thresholds of an EvalConfig, one line each."""
    from tensorflow_model_analysis.metrics import metric_specs

    lines = []
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            scoped = [("every slice", metric.threshold)] if metric.HasField("threshold") else []
            for per_slice in metric.per_slice_thresholds:
                for slicing_spec in per_slice.slicing_specs:
                    where = "overall" if not slicing_spec.feature_keys else str(slicing_spec)
                    scoped.append((where, per_slice.threshold))
            name = metric_specs.metric_instance(metric).name
            for where, threshold in scoped:
                lines.extend(f"{name} {c} ({where})" for c in threshold_conditions(threshold))
    # With a baseline TFMA repeats each metric per model; the text is the same.
    return list(dict.fromkeys(lines))


def validation_failures(validation) -> list[str]:
    """One line per failed threshold: metric, value, threshold."""
    lines = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            name = key.name + (" (change vs latest blessed)" if key.is_diff else "")
            slice_keys = per_slice.slice_key.single_slice_keys
            if slice_keys:
                name += " on slice " + ", ".join(
                    f"{k.column}={getattr(k, k.WhichOneof('kind'))}" for k in slice_keys
                )
            conditions = threshold_conditions(failure.metric_threshold)
            line = (
                f"{name}: {failure.metric_value.double_value.value:.4f} "
                f"fails {' and '.join(conditions) or failure.metric_threshold}"
            )
            if key.name == metrics.RMSE_GAIN_OVER_MEAN_NAME:
                line += " (no better than predicting the mean rating: is the model trained?)"
            lines.append(line)
    if validation.missing_thresholds:
        lines.append("no thresholds configured: nothing to bless against")
    for spec in validation.missing_slices:
        lines.append(f"slice with a threshold had no examples: {spec}")
    if validation.HasField("validation_details") and not lines:
        lines.append(str(validation.validation_details))
    return lines


def read_model(name: str, trainer_outputs: dict) -> dict:
    """A Trainer's model: where it is, its training history and its memory report."""
    model_uri = trainer_outputs[specs.MODEL_KEY].uri
    extra = os.path.join(path_utils.serving_model_path(model_uri), "assets.extra")
    history = _read_json(os.path.join(extra, trainer_task.HISTORY_FILE))
    model_run = trainer_outputs.get(specs.MODEL_RUN_KEY)
    return {
        "name": name,
        "uri": model_uri,
        "tensorboard": os.path.join(model_run.uri, "tensorboard") if model_run else None,
        "history": history["history"] if history else None,
        "memory_report": _read_json(os.path.join(extra, trainer_task.MEMORY_REPORT_FILE)),
    }


def read_serving_check(check_outputs: dict) -> dict | None:
    """The serving check's verdict and report; None for a run without one (an older run)."""
    check = check_outputs.get(specs.BLESSING_KEY)
    if check is None:
        return None
    return {
        "servable": bool(_custom_int(check, serving_check.BLESSED_KEY)),
        # TFX's InfraValidator, the docker check, writes no report.
        "report": _read_json(os.path.join(check.uri, serving_check.REPORT_FILE)),
    }


def _read_json(path: str):
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- writing


def to_json(facts: dict) -> str:
    return json.dumps(facts, indent=2, default=_json_scalar)


def _json_scalar(value):
    # Slice values and metrics may come back from TFMA as numpy scalars.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value)}")


def write_facts(facts: dict, directory: str) -> str:
    """Writes ``report.json`` into the folder; returns its path."""
    path = os.path.join(directory, FACTS_FILE)
    write_atomically(path, to_json(facts))
    return path


def write_atomically(path: str, text: str) -> None:
    """Readers (a browser, a CI upload) never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp makes the file private; a report is for sharing.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


# ---------------------------------------------------------------- the console


def format_summary(facts: dict) -> str:
    """What ``local_runner.py`` prints after a run."""
    model = facts["models"][0]
    slices = facts["evaluations"][0]["slices"]
    overall = next((s["candidate"] for s in slices if s["feature"] is None), {})
    lines = [f"Trained model:  {model['uri']}", "Eval metrics (eval split, overall):"]
    # float(): TFMA gives a metric undefined on the slice as the string "NaN".
    lines.extend(
        f"  {name:<25} {float(overall[name]):.4f}" for name in SUMMARY_METRICS if name in overall
    )
    if model["memory_report"]:
        lines.append(format_memory_report(model["memory_report"]))
    blessing = facts["blessing"]
    if blessing["blessed"]:
        lines.append("Blessed by the Evaluator.")
    else:
        lines.append("NOT blessed by the Evaluator:")
        lines.extend(f"  {reason}" for reason in blessing["reasons"])
    if facts["serving_check"]:
        lines.append(serving_check_text(facts["serving_check"]))
    if blessing["pushed"]:
        lines.append(f"Pushed to:      {blessing['pushed_destination']}")
    else:
        lines.append(NOT_PUSHED)
    return "\n".join(lines)


NOT_PUSHED = "Not pushed; the serving folder keeps its earlier versions."


def serving_check_text(check: dict) -> str:
    report = check["report"] or {}
    if not check["servable"]:
        reason = report.get("reason") or NO_REASON
        return f"NOT servable as TF Serving loads it, so not pushed:\n  {reason}"
    if "num_examples" in report:
        return (
            "Serves as TF Serving loads it (TF1 path, fresh process): "
            f"{report['num_examples']} eval examples, ratings equal to the TF2 path's"
        )
    return "Served by TensorFlow Serving on the eval examples (InfraValidator)."


def mib(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.2f}"


def full_dim(table: dict) -> int:
    """The width of the full table a memory report compares a feature's tables with."""
    return table["full_params"] // table["input_dim"]


def format_memory_report(report: dict) -> str:
    lines = ["Embedding tables (fp32):"]
    for feature, table in report["features"].items():
        lines.append(
            f"  {feature:<9} {table['type']:<13} {table['params']:>10,} params "
            f"{mib(table['bytes']):>7} MiB  {table['compression']:>6.1f}x "
            f"smaller than a full {table['input_dim']:,} x {full_dim(table)} table"
        )
        for part in table["tables"]:
            lines.append(
                f"      {part['name']:<24} {part['rows']:>9,} x "
                f"{part['dim']:<4} = {part['params']:>10,}"
            )
        lines.extend(f"      adapted: {note}" for note in table.get("adaptations", ()))
    total = report["total"]
    # Preset names ("md_16x") count against the full preset's 64-d tables, not
    # against full tables of the model's own (narrower) width.
    reference_dim = model_config.FULL.embedding_dim
    reference = sum(t["input_dim"] * reference_dim for t in report["features"].values())
    lines.append(
        f"  all tables {total['params']:,} params "
        f"({total['compression']:.1f}x smaller than full tables of the same width, "
        f"{reference / max(total['params'], 1):.1f}x smaller than full {reference_dim}-d tables)"
    )
    biases = report.get("biases")
    if biases:
        overall = embedding_memory.id_indexed_total(report, reference_dim)
        kinds = ", ".join(sorted({t["type"] for t in biases["features"].values()}))
        lines.append(
            f"  with the per-id biases ({kinds}) {overall['params']:,} params "
            f"({overall['compression']:.1f}x smaller than full {reference_dim}-d tables "
            "and full biases)"
        )
    return "\n".join(lines)
