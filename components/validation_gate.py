"""Stops the pipeline when ExampleValidator found anomalies.

ExampleValidator only records anomalies; nothing downstream reads them. This
component fails the run with the anomalies spelled out, and Transform runs
only after it, so bad data never reaches the Trainer, let alone the Pusher.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """The examples do not match the schema."""


def describe_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> str:
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = "; ".join(r.description or r.short_description for r in info.reason)
        lines.append(f"  split {split!r}, feature {feature!r}: {info.short_description}: {reasons}")
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        lines.append(f"  split {split!r}, dataset: {info.description}")
    return "\n".join(lines)


def collect_anomalies(anomalies_artifact) -> str:
    """All anomalies of every split, one line each; empty when clean."""
    found = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(
            artifact_utils.get_split_uri([anomalies_artifact], split), ANOMALIES_FILE
        )
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        text = describe_anomalies(split, anomalies)
        if text:
            found.append(text)
    return "\n".join(found)


@component
def AnomaliesGate(  # pylint: disable=invalid-name
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
):
    """Raises DataAnomaliesError when any split has anomalies."""
    text = collect_anomalies(anomalies)
    if text:
        raise DataAnomaliesError(
            "The input data does not match pipeline/schema/schema.pbtxt; nothing was "
            "trained or pushed.\n" + text
        )
