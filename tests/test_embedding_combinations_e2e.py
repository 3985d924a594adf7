"""The pipeline trains, evaluates and pushes each table technique chosen by config.

One output root: the first run does everything; later runs reuse ExampleGen,
statistics and Transform from the cache and retrain only.
"""

import glob
import json
import os

import pytest

from conftest import run_local_runner
from conftest import write_synthetic_ratings

pytestmark = pytest.mark.slow

QR = {"type": "qr", "num_buckets": 16}
MD = {"type": "md", "blocks": 3, "alpha": 0.5}
COMBINATIONS = {
    "full+full": ({"type": "full"}, {"type": "full"}),
    "qr+md": (QR, MD),
    "md+qr": (MD, QR),
    "full+md_with_qr_tail": ({"type": "full"}, dict(MD, tail_qr={"num_buckets": 12})),
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    work = tmp_path_factory.mktemp("combinations")
    path = work / "ratings.csv"
    write_synthetic_ratings(path, 200, 150, 6_000, seed=3)
    return path


def _run(data_file, *flags):
    """The local runner for 2 epochs into the module's one output root."""
    return run_local_runner(
        "--data",
        data_file,
        "--output-root",
        data_file.parent / "out",
        "--epochs",
        2,
        *flags,
        # Mechanics, not quality: bless whatever trains.
        "--rmse-upper-bound",
        10,
        "--rmse-max-increase",
        10,
        "--min-gain-over-mean",
        -10,
        timeout=900,
    )


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_technique_runs_end_to_end(name, data_file):
    user_spec, movie_spec = COMBINATIONS[name]
    result = _run(
        data_file,
        "--user-embedding",
        json.dumps(user_spec),
        "--movie-embedding",
        json.dumps(movie_spec),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    pushed = result.stdout.split("Pushed to:")[1].split()[0]
    with open(os.path.join(pushed, "assets.extra", "memory_report.json")) as f:
        report = json.load(f)
    expected_types = {"full": "RowEmbedding", "qr": "QREmbedding", "md": "MDEmbedding"}
    assert report["features"]["user_id"]["type"] == expected_types[user_spec["type"]]
    assert report["features"]["movie_id"]["type"] == expected_types[movie_spec["type"]]
    # The id-indexed total adds the per-id biases to the tables.
    ids = sum(f["input_dim"] for f in report["features"].values())
    assert report["id_indexed_total"]["params"] == (
        report["total"]["params"] + report["biases"]["total"]["params"]
    )
    assert report["id_indexed_total"]["full_params"] == ids * 65
    if "tail_qr" in movie_spec:
        names = [t["name"] for t in report["features"]["movie_id"]["tables"]]
        assert any("remainder" in n or "quotient" in n for n in names), names
    assert glob.glob(os.path.join(pushed, "saved_model.pb"))


def test_an_embedding_budget_past_64x_trains_serves_and_keeps_it(data_file):
    # Fitted to the file's ids, built on the train split's: the head biases are ratios.
    result = _run(data_file, "--embedding-budget", "128x")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    # The file's users are rated about equally (spread 0.43), its movies are not:
    # the runner's counts of ratings per id reach the rule.
    assert "users QR add biases, movies own biases for the most rated ids" in result.stdout
    assert "the users are rated about equally" in result.stdout
    kept = [
        line for line in result.stdout.splitlines() if line.startswith("Embedding budget 128x:")
    ]
    assert kept and kept[-1].endswith(": kept"), kept
    pushed = result.stdout.split("Pushed to:")[1].split()[0]
    with open(os.path.join(pushed, "assets.extra", "memory_report.json")) as f:
        report = json.load(f)
    assert report["id_indexed_total"]["compression"] >= 128
