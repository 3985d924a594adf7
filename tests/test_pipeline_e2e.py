"""The whole pipeline through local_runner on a small generated data set."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components import serving_check
from conftest import run_local_runner
from conftest import serialized_examples
from conftest import write_synthetic_ratings

pytestmark = pytest.mark.slow


EPOCHS = 5


def _run(data_file, output_root, tmp, *flags, epochs=EPOCHS):
    return run_local_runner(
        *("--data", data_file, "--output-root", output_root, "--epochs", epochs, *flags),
        env=dict(os.environ, TMPDIR=str(tmp)),
    )


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """One run on 12k generated ratings."""
    work = tmp_path_factory.mktemp("e2e")
    data_file = work / "ratings.csv"
    ratings = write_synthetic_ratings(data_file, 300, 200, 12_000, seed=7)
    tmp = work / "tmp"
    tmp.mkdir()
    result = _run(data_file, work / "out", tmp)
    return work, ratings, result, tmp


def test_run_succeeds_and_reports(pipeline_run):
    _, _, result, _ = pipeline_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    for text in (
        "Blessed by the Evaluator",
        "Pushed to:",
        "root_mean_squared_error",
        "Embedding tables",
    ):
        assert text in result.stdout
    # A list for one user, asked of the pushed model's recommend signature.
    top = result.stdout.split("Top 5 for ")[1].splitlines()[1:6]
    assert len(top) == 5 and all(line.split()[0].startswith("movie_") for line in top)
    ratings = [float(line.split()[1]) for line in top]
    assert ratings == sorted(ratings, reverse=True)


def test_pushed_model_rates_known_and_unknown_ids(pipeline_run):
    work, ratings, result, _ = pipeline_run
    assert result.returncode == 0, result.stderr[-3000:]
    pushed = glob.glob(str(work / "out" / "serving_model" / "*" / "*" / "saved_model.pb"))
    assert len(pushed) == 1
    served = tf.saved_model.load(os.path.dirname(pushed[0]))
    serve = served.signatures["serving_default"]
    pairs = [(ratings.user_ids[i], ratings.movie_ids[i]) for i in range(5)]
    pairs += [
        ("user_never_seen", ratings.movie_ids[0]),
        (ratings.user_ids[0], "movie_never_seen"),
        ("user_never_seen", "movie_never_seen"),
        ("", ""),
    ]
    predicted = serve(examples=serialized_examples(pairs))["rating"].numpy()
    assert predicted.shape == (len(pairs),)
    assert np.all(np.isfinite(predicted))
    assert np.all((predicted >= 0) & (predicted <= 5))
    # The TF1 loading path of TF Serving and Vertex AI gives the same ratings.
    as_served = serving_check.predict_as_a_server(
        os.path.dirname(pushed[0]), list(serialized_examples(pairs).numpy())
    )
    np.testing.assert_allclose(as_served, predicted, atol=1e-5, rtol=0)


def test_saved_model_cli_run_rates_a_pair_from_the_pushed_model(pipeline_run):
    work, ratings, result, _ = pipeline_run
    assert result.returncode == 0, result.stderr[-3000:]
    (pushed,) = glob.glob(str(work / "out" / "serving_model" / "*" / "*"))
    user, movie = ratings.user_ids[0], ratings.movie_ids[0]
    cli = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
            "run",
            "--dir",
            pushed,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_examples",
            f'examples=[{{"user_id":[b"{user}"],"movie_id":[b"{movie}"]}}]',
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    rating = float(cli.stdout.split("Result for output key rating:")[1].strip().strip("[]"))
    assert 0.5 <= rating <= 5


def test_evaluator_wrote_the_metrics(pipeline_run):
    work, _, result, _ = pipeline_run
    assert result.returncode == 0, result.stderr[-3000:]
    import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top

    evaluations = glob.glob(
        str(work / "out" / "pipelines" / "*" / "Evaluator" / "evaluation" / "*")
    )
    assert evaluations
    overall = dict(tfma.load_eval_result(evaluations[0]).slicing_metrics)[()]
    values = overall[""][""]
    for name in (
        "example_count",
        "mean_squared_error",
        "mean_absolute_error",
        "root_mean_squared_error",
    ):
        assert name in values
    assert values["root_mean_squared_error"]["doubleValue"] == pytest.approx(
        np.sqrt(values["mean_squared_error"]["doubleValue"])
    )
    # 3 of 20 hash buckets are eval: roughly 15% of the rows.
    count = values["example_count"]["doubleValue"]
    assert 0.10 * 12_000 < count < 0.20 * 12_000
    # The per-user ranking metrics reach the report beside RMSE.
    with open(work / "out" / "report.json", encoding="utf-8") as f:
        reported = json.load(f)["evaluations"][0]["slices"][0]["candidate"]
    for name in ("ndcg_at_10", "recall_at_10"):
        assert 0 <= reported[name] <= 1, name


def test_no_throwaway_packages_left_in_tmp(pipeline_run):
    _, _, result, tmp = pipeline_run
    assert result.returncode == 0, result.stderr[-3000:]
    litter = [
        p
        for p in glob.glob(str(tmp / "**" / "*"), recursive=True)
        if p.endswith((".tar.gz", ".whl"))
    ]
    assert not litter


def _pushed_versions(output_root):
    root = output_root / "serving_model"
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.is_dir())


def test_a_worse_model_is_not_blessed_and_the_pushed_one_stays(pipeline_run):
    """Same data, a model made worse on purpose (the seed's baseline, one epoch).

    The Evaluator compares it with the latest blessed model on the same eval
    split, so the change threshold must hold it back and say why.
    """
    work, _, first, tmp = pipeline_run
    assert first.returncode == 0, first.stderr[-3000:]
    before = _pushed_versions(work / "out")
    saved_model = next((work / "out" / "serving_model").glob("*/*/saved_model.pb"))
    saved_bytes = saved_model.read_bytes()

    flags = ("--model", "baseline", "--rmse-upper-bound", 10)
    second = _run(work / "ratings.csv", work / "out", tmp, *flags, epochs=1)

    assert second.returncode == 3, second.stdout[-3000:] + second.stderr[-3000:]
    reasons = second.stdout.split("NOT blessed")[1]
    assert "root_mean_squared_error" in reasons and "change" in reasons
    assert "Not pushed" in second.stdout
    assert _pushed_versions(work / "out") == before
    assert saved_model.read_bytes() == saved_bytes


def test_an_untrained_model_is_not_blessed_whatever_the_absolute_bound(pipeline_run):
    """A learning rate that moves nothing: the model predicts about the mean rating.

    A fresh output root, so no earlier model to compare with: only the gain
    over the mean can hold it back.
    """
    work, _, first, tmp = pipeline_run
    assert first.returncode == 0, first.stderr[-3000:]
    flags = ("--model-settings", '{"learning_rate": 1e-12}', "--rmse-upper-bound", 10)
    untrained = _run(work / "ratings.csv", work / "untrained", tmp, *flags, epochs=1)
    assert untrained.returncode == 3, untrained.stdout[-3000:] + untrained.stderr[-3000:]
    reasons = untrained.stdout.split("NOT blessed")[1]
    assert "rmse_gain_over_mean" in reasons and "predicting the mean rating" in reasons
    assert not list((work / "untrained" / "serving_model").glob("*/*"))
