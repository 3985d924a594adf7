"""Two runs at once, same data and seed, different output roots.

They must not interfere, and must agree: the same split, the same
vocabularies, and eval metrics equal within a small tolerance (TensorFlow's
CPU kernels may sum in different orders across threads).
"""

import filecmp
import os
import subprocess

import pytest

from conftest import REPO_ROOT
from conftest import local_runner_command
from conftest import write_synthetic_ratings

pytestmark = pytest.mark.slow

RMSE_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("repro")
    data_file = work / "ratings.csv"
    write_synthetic_ratings(data_file, 200, 150, 6_000, seed=5)
    runs = []
    for name in ("a", "b"):
        command = local_runner_command(
            "--data",
            data_file,
            "--output-root",
            work / name,
            "--epochs",
            2,
            # Reproducibility, not quality: bless whatever trains.
            "--rmse-upper-bound",
            10,
        )
        runs.append(
            subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [run.communicate(timeout=1200) for run in runs]
    return work, [run.returncode for run in runs], outputs


def _artifact_dir(root, component, output):
    (path,) = (root / "pipelines").glob(f"*/{component}/{output}/*")
    return path


def _ratings(split_dir):
    """The split's (user, movie, rating) rows, sorted.

    Files and serialized bytes may differ between runs (the gzip header holds
    a timestamp; a tf.Example's feature map serialises in no fixed order);
    the rows in each split must not.
    """
    import tensorflow as tf

    files = sorted(str(split_dir / name) for name in os.listdir(split_dir))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        rows.append(
            (
                feature["user_id"].bytes_list.value[0],
                feature["movie_id"].bytes_list.value[0],
                feature["rating"].float_list.value[0],
            )
        )
    return sorted(rows)


def _rmse(stdout):
    line = next(text for text in stdout.splitlines() if "root_mean_squared_error" in text)
    return float(line.split()[-1])


def test_concurrent_runs_both_succeed(two_runs):
    _, codes, outputs = two_runs
    for code, (stdout, stderr) in zip(codes, outputs, strict=False):
        assert code == 0, stdout[-2000:] + stderr[-3000:]


def test_same_split_and_vocabularies(two_runs):
    work, codes, _ = two_runs
    assert codes == [0, 0]
    for split in ("Split-train", "Split-eval"):
        a = _artifact_dir(work / "a", "ArrowCsvExampleGen", "examples") / split
        b = _artifact_dir(work / "b", "ArrowCsvExampleGen", "examples") / split
        assert _ratings(a) == _ratings(b), split
    graph_a = _artifact_dir(work / "a", "Transform", "transform_graph")
    graph_b = _artifact_dir(work / "b", "Transform", "transform_graph")
    for vocab in ("user_id_vocabulary", "movie_id_vocabulary"):
        assert filecmp.cmp(
            graph_a / "transform_fn" / "assets" / vocab,
            graph_b / "transform_fn" / "assets" / vocab,
            shallow=False,
        )


def test_same_metrics_within_tolerance(two_runs):
    _, codes, outputs = two_runs
    assert codes == [0, 0]
    rmse_a, rmse_b = (_rmse(stdout) for stdout, _ in outputs)
    assert abs(rmse_a - rmse_b) <= RMSE_TOLERANCE
