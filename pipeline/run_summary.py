"""What a finished pipeline run produced, read back from ML Metadata.

``local_runner.py`` prints this after a run: whether the model was blessed
(and if not, which threshold failed), where it was pushed, its eval metrics
and the memory report of its embedding tables.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional

import tensorflow as tf
import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import metrics
from components import serving_check
from trainer import model_config
from trainer import task as trainer_task

# The ids of the pipeline's nodes (TFX names a node after its component class
# unless told otherwise).
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
SERVING_CHECK = "ServingCheck"

EVAL_METRICS = (
    "example_count",
    "mean_squared_error",
    "mean_absolute_error",
    "root_mean_squared_error",
)


@dataclasses.dataclass
class RunSummary:
    model_uri: str
    blessed: bool
    pushed: bool
    pushed_destination: Optional[str]
    metrics: Dict[str, float]
    failures: List[str]
    memory_report: Optional[Dict]
    # The serving check's verdict: None when the run had none (an older run).
    servable: Optional[bool] = None
    serving_check: Optional[Dict] = None

    def format(self) -> str:
        lines = [f"Trained model:  {self.model_uri}"]
        lines.append("Eval metrics (eval split, overall):")
        for name in EVAL_METRICS:
            if name in self.metrics:
                lines.append(f"  {name:<25} {self.metrics[name]:.4f}")
        if self.memory_report:
            lines.append(format_memory_report(self.memory_report))
        if self.blessed:
            lines.append("Blessed by the Evaluator.")
        else:
            lines.append("NOT blessed by the Evaluator:")
            lines.extend(f"  {f}" for f in self.failures or ["(no reason recorded)"])
        if self.servable is not None:
            lines.append(format_serving_check(self.servable, self.serving_check))
        if self.pushed:
            lines.append(f"Pushed to:      {self.pushed_destination}")
        else:
            lines.append("Not pushed; the serving folder keeps its earlier versions.")
        return "\n".join(lines)


def format_serving_check(servable: bool, report: Optional[Dict]) -> str:
    if not servable:
        reason = (report or {}).get("reason") or "(no reason recorded)"
        return f"NOT servable as TF Serving loads it, so not pushed:\n  {reason}"
    if report and "num_examples" in report:
        return (
            "Serves as TF Serving loads it (TF1 path, fresh process): "
            f"{report['num_examples']} eval examples, ratings equal to the TF2 path's"
        )
    return "Served by TensorFlow Serving on the eval examples (InfraValidator)."


def format_memory_report(report: Dict) -> str:
    lines = ["Embedding tables (fp32):"]
    for feature, table in report["features"].items():
        lines.append(
            f"  {feature:<9} {table['type']:<13} {table['params']:>10,} params "
            f"{table['bytes'] / 2**20:>7.2f} MiB  {table['compression']:>6.1f}x "
            f"smaller than a full {table['input_dim']:,} x "
            f"{table['full_params'] // table['input_dim']} table"
        )
        for part in table["tables"]:
            lines.append(
                f"      {part['name']:<24} {part['rows']:>9,} x "
                f"{part['dim']:<4} = {part['params']:>10,}"
            )
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
    return "\n".join(lines)


def latest_run_outputs(store: metadata_store.MetadataStore) -> Dict[str, Dict[str, object]]:
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
    outputs: Dict[str, Dict[str, object]] = {}
    for event in events:
        output_key = event.path.steps[0].key if event.path.steps else ""
        node_outputs = outputs.setdefault(node_of_execution[event.execution_id], {})
        node_outputs[output_key] = artifacts[event.artifact_id]
    return outputs


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _custom_int(artifact, key, default=0) -> int:
    value = artifact.custom_properties.get(key)
    return value.int_value if value is not None else default


def summarize(metadata_path: str) -> RunSummary:
    outputs = latest_run_outputs(open_store(metadata_path))
    model = outputs.get(TRAINER, {}).get("model")
    blessing = outputs.get(EVALUATOR, {}).get("blessing")
    evaluation = outputs.get(EVALUATOR, {}).get("evaluation")
    pushed = outputs.get(PUSHER, {}).get("pushed_model")
    if not (model and blessing and evaluation and pushed):
        raise RuntimeError(f"{metadata_path} records no complete run")

    metrics, failures = {}, []
    eval_result = tfma.load_eval_result(evaluation.uri)
    for slice_key, slice_metrics in eval_result.slicing_metrics:
        if slice_key == ():
            for key, value in slice_metrics.get("", {}).get("", {}).items():
                if "doubleValue" in value:
                    metrics[key] = value["doubleValue"]
    validation = tfma.load_validation_result(evaluation.uri)
    if not validation.validation_ok:
        failures = validation_failures(validation)

    memory_report = None
    report_path = os.path.join(
        model.uri, "Format-Serving", "assets.extra", trainer_task.MEMORY_REPORT_FILE
    )
    if tf.io.gfile.exists(report_path):
        with tf.io.gfile.GFile(report_path) as f:
            memory_report = json.load(f)

    servable, serving_report = None, None
    check = outputs.get(SERVING_CHECK, {}).get("blessing")
    if check is not None:
        servable = bool(_custom_int(check, "blessed"))
        report_path = os.path.join(check.uri, serving_check.REPORT_FILE)
        if tf.io.gfile.exists(report_path):
            with tf.io.gfile.GFile(report_path) as f:
                serving_report = json.load(f)

    destination = pushed.custom_properties.get("pushed_destination")
    return RunSummary(
        model_uri=model.uri,
        blessed=bool(_custom_int(blessing, "blessed")),
        pushed=bool(_custom_int(pushed, "pushed")),
        pushed_destination=destination.string_value if destination else None,
        metrics=metrics,
        failures=failures,
        memory_report=memory_report,
        servable=servable,
        serving_check=serving_report,
    )


def validation_failures(validation) -> List[str]:
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
            line = (
                f"{name}: {failure.metric_value.double_value.value:.4f} "
                f"fails {_threshold_text(failure.metric_threshold)}"
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


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        t = threshold.value_threshold
        parts = []
        if t.HasField("upper_bound"):
            parts.append(f"<= {t.upper_bound.value}")
        if t.HasField("lower_bound"):
            parts.append(f">= {t.lower_bound.value}")
        return "value " + " and ".join(parts)
    if threshold.HasField("change_threshold"):
        t = threshold.change_threshold
        return f"change threshold (absolute {t.absolute.value}, lower is better)"
    return str(threshold)
