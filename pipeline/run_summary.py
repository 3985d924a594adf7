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

from trainer import task as trainer_task

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
        if self.pushed:
            lines.append(f"Pushed to:      {self.pushed_destination}")
        else:
            lines.append("Not pushed; the serving folder keeps its earlier versions.")
        return "\n".join(lines)


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
    lines.append(
        f"  all tables {total['params']:,} params "
        f"({total['compression']:.1f}x smaller than full tables)"
    )
    return "\n".join(lines)


def _latest(store, type_name):
    artifacts = store.get_artifacts_by_type(type_name)
    return max(artifacts, key=lambda a: a.id) if artifacts else None


def _custom_int(artifact, key, default=0) -> int:
    value = artifact.custom_properties.get(key)
    return value.int_value if value is not None else default


def summarize(metadata_path: str) -> RunSummary:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    model = _latest(store, "Model")
    blessing = _latest(store, "ModelBlessing")
    evaluation = _latest(store, "ModelEvaluation")
    pushed = _latest(store, "PushedModel")
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

    destination = pushed.custom_properties.get("pushed_destination")
    return RunSummary(
        model_uri=model.uri,
        blessed=bool(_custom_int(blessing, "blessed")),
        pushed=bool(_custom_int(pushed, "pushed")),
        pushed_destination=destination.string_value if destination else None,
        metrics=metrics,
        failures=failures,
        memory_report=memory_report,
    )


def validation_failures(validation) -> List[str]:
    """One line per failed threshold: metric, value, threshold."""
    lines = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            name = key.name + (
                " (change vs latest blessed)" if key.is_diff else ""
            )
            lines.append(
                f"{name}: {failure.metric_value.double_value.value:.4f} "
                f"fails {_threshold_text(failure.metric_threshold)}"
            )
    for reason in validation.missing_thresholds:
        lines.append(f"missing threshold: {reason}")
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
