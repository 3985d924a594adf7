"""Loads the candidate model the way model servers do, before anything is pushed.

TF Serving, Vertex AI prediction and ``saved_model_cli run`` load a
SavedModel the TF1 way: import the graph, restore the variables, run the
init op, run the signature. ``tf.saved_model.load`` (what TFMA and most tests
use) is another path, and a model can work on it and fail every request on
the first. ``ServingCheck`` runs the candidate in a fresh process on that
path, on real eval examples, checks the ratings are finite and equal to the
TF2 path's, and writes an ``InfraBlessing``: the Pusher pushes only a model
blessed by both the Evaluator and this check, as it would with TFX's
InfraValidator (which needs Docker or Kubernetes; ``--serving-check docker``
in the local runner uses it with a TensorFlow Serving image).

Also a command, the same check by hand:

  python -m components.serving_check SAVED_MODEL_DIR [EXAMPLES.tfrecord.gz ...]
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import path_utils

SIGNATURE = "serving_default"
INPUT_KEY = "examples"
OUTPUT_KEY = "rating"
# TF1 and TF2 paths run the same graph; anything above float noise is a bug.
MAX_ABS_DIFFERENCE = 1e-5
REPORT_FILE = "serving_check.json"
BLESSED_KEY = "blessed"
# The files TFX's InfraValidator writes, so tools that look for them agree.
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
DEFAULT_NUM_EXAMPLES = 256
DEFAULT_TIMEOUT_SECONDS = 600


def predict_as_a_server(export_dir: str, serialized: Sequence[bytes]):
    """``serving_default`` on the TF1 loading path (graph, restore, init op, Session)."""
    import tensorflow as tf

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature = meta_graph.signature_def[SIGNATURE]
        return session.run(
            signature.outputs[OUTPUT_KEY].name,
            {signature.inputs[INPUT_KEY].name: list(serialized)},
        )


def predict_in_tf2(export_dir: str, serialized: Sequence[bytes]):
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    outputs = loaded.signatures[SIGNATURE](**{INPUT_KEY: tf.constant(list(serialized))})
    return outputs[OUTPUT_KEY].numpy()


def check(export_dir: str, serialized: Sequence[bytes]) -> dict:
    """Serves ``serialized`` on both loading paths; ``{"ok": bool, "reason": str, ...}``."""
    import numpy as np

    if not serialized:
        return {"ok": False, "reason": "no eval examples to send to the model"}
    try:
        served = np.asarray(predict_as_a_server(export_dir, serialized)).reshape(-1)
    except Exception as e:  # pylint: disable=broad-except
        # Whatever a server would fail with is the finding, not a crash.
        return {"ok": False, "reason": f"TF1 loading path (as TF Serving): {_one_line(e)}"}
    report = {"num_examples": len(serialized), "served_min": float(np.min(served))}
    report["served_max"] = float(np.max(served))
    if served.shape != (len(serialized),):
        return {
            **report,
            "ok": False,
            "reason": f"{len(served)} ratings for {len(serialized)} examples",
        }
    if not np.all(np.isfinite(served)):
        return {**report, "ok": False, "reason": "the served ratings are not all finite"}
    direct = np.asarray(predict_in_tf2(export_dir, serialized)).reshape(-1)
    difference = float(np.max(np.abs(served - direct)))
    report["max_abs_difference"] = difference
    if difference > MAX_ABS_DIFFERENCE:
        return {
            **report,
            "ok": False,
            "reason": f"TF1 and TF2 loading paths disagree by {difference:.3g} "
            f"(allowed {MAX_ABS_DIFFERENCE})",
        }
    return {**report, "ok": True, "reason": ""}


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip().splitlines()[0]


def read_examples(paths: Sequence[str], limit: int) -> list[bytes]:
    """Up to ``limit`` serialized records from gzipped TFRecord files."""
    import tensorflow as tf

    records = []
    for path in paths:
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP").take(
            limit - len(records)
        ):
            records.append(record.numpy())
        if len(records) >= limit:
            break
    return records


def check_in_fresh_process(
    export_dir: str, example_files: Sequence[str], num_examples: int, timeout_seconds: int
) -> dict:
    """Runs :func:`check` in a new Python process, as a server starts cold.

    A fresh process also keeps this process's TensorFlow state (eager
    context, loaded ops, graph collections) from hiding a missing piece.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report_path = os.path.join(tmp, REPORT_FILE)
        command = [
            sys.executable,
            "-m",
            __name__,
            export_dir,
            *example_files,
            "--num-examples",
            str(num_examples),
            "--report",
            report_path,
        ]
        try:
            process = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_seconds, check=False
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "reason": f"no answer within {timeout_seconds} s"}
        if os.path.exists(report_path):
            with open(report_path) as f:
                return json.load(f)
        tail = (process.stderr or process.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "reason": f"the check exited {process.returncode}: {tail[0]}"}


def eval_example_files(examples) -> list[str]:
    return sorted(glob.glob(os.path.join(artifact_utils.get_split_uri([examples], "eval"), "*")))


@component
def ServingCheck(  # pylint: disable=invalid-name
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    num_examples: Parameter[int] = DEFAULT_NUM_EXAMPLES,
    timeout_seconds: Parameter[int] = DEFAULT_TIMEOUT_SECONDS,
):
    """Blesses the model for pushing only when it serves on the TF1 loading path."""
    from absl import logging

    export_dir = path_utils.serving_model_path(model.uri)
    report = check_in_fresh_process(
        export_dir, eval_example_files(examples), num_examples, timeout_seconds
    )
    write_blessing(blessing, report)
    if report["ok"]:
        logging.info("The model serves on the TF1 loading path: %s", report)
    else:
        logging.error("The model does not serve; it will not be pushed: %s", report["reason"])


def write_blessing(blessing, report: dict) -> None:
    """Records the check's verdict where the Pusher and the run summary read it."""
    from tfx.utils import io_utils

    io_utils.write_string_file(os.path.join(blessing.uri, REPORT_FILE), json.dumps(report))
    marker = BLESSED_FILE if report["ok"] else NOT_BLESSED_FILE
    io_utils.write_string_file(os.path.join(blessing.uri, marker), "")
    blessing.set_int_custom_property(BLESSED_KEY, int(report["ok"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("saved_model_dir")
    parser.add_argument(
        "example_files",
        nargs="*",
        help="gzipped TFRecord files of tf.Examples (default: one synthetic example)",
    )
    parser.add_argument("--num-examples", type=int, default=DEFAULT_NUM_EXAMPLES)
    parser.add_argument("--report", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.example_files:
        serialized = read_examples(args.example_files, args.num_examples)
    else:
        serialized = [_example_bytes("user_1", "movie_1")]
    report = check(args.saved_model_dir, serialized)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


def _example_bytes(user_id: str, movie_id: str) -> bytes:
    import tensorflow as tf

    example = tf.train.Example()
    example.features.feature["user_id"].bytes_list.value.append(user_id.encode())
    example.features.feature["movie_id"].bytes_list.value.append(movie_id.encode())
    return example.SerializeToString()


if __name__ == "__main__":
    sys.exit(main())
