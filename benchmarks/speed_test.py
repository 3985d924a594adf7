"""The speed command's parts on small inputs: targets, the clocks, serving and scale runs."""

import json
import time

import numpy as np
import pytest

from benchmarks import datasets
from benchmarks import scale
from benchmarks import seed_reference
from benchmarks import serving_latency
from benchmarks import speed
from benchmarks import training
from components import synthetic
from trainer import model_config


def test_targets_are_met_not_met_or_not_measured():
    results = {"serving_p50_ms_batch1": 1.5, "qr_100m_peak_rss_gb": 30.0}
    assert speed.targets(results) == {
        "trainer_speedup_to_seed_best >= 3": None,
        "serving_p50_ms_batch1 <= 2": True,
        "recommend_p50_ms_batch1 <= 5": None,
        "qr_100m_peak_rss_gb <= 24": False,
    }
    assert speed.targets({"recommend_p50_ms_batch1": 4.9})["recommend_p50_ms_batch1 <= 5"]


def test_quick_shrinks_the_run_and_unknown_sections_are_refused():
    args = speed.parse_args(["--quick", "--sections", "scale,serving"])
    assert args.sections == ["scale", "serving"] and args.datasets == ["builtin"]
    assert args.scale_ids == [1_000_000] and args.trainer_repeats == 1
    assert args.catalogue_movies < 3706
    # Defaults: serving_latency's ML-1M-sized catalogue.
    assert speed.parse_args(["--sections", "recommend"]).catalogue_movies is None
    with pytest.raises(SystemExit):
        speed.parse_args(["--sections", "levers"])


def test_the_served_model_is_the_pushed_one(tmp_path):
    trained = tmp_path / "pipelines" / "p" / "Trainer" / "model" / "7" / "Format-Serving"
    trained.mkdir(parents=True)
    (trained / "saved_model.pb").write_bytes(b"")
    assert speed.find_serving_model(str(tmp_path)) is None
    pushed = tmp_path / "serving_model" / "p" / "1700000000"
    pushed.mkdir(parents=True)
    (pushed / "saved_model.pb").write_bytes(b"")
    assert speed.find_serving_model(str(tmp_path)) == pushed


@pytest.fixture(scope="module")
def ratings():
    return synthetic.generate_ratings(60, 80, 3000, min_ratings_per_user=5)


def test_our_trainer_stops_at_the_target_rmse(ratings):
    data = datasets.prepare(ratings, "tiny")
    config = model_config.preset("md_16x").replace(epochs=8, early_stopping_patience=0)
    clock = seed_reference.EpochClock(0.0, target_rmse=None, patience=100)
    training.fit(config, data, 0, False, [clock], steps_per_execution=8)
    assert len(clock.val_rmse) == 8 and len(clock.train_seconds) == 8
    target = sorted(clock.val_rmse)[3]  # reached, at the latest, by the 5th epoch
    clock = seed_reference.EpochClock(time.perf_counter(), target_rmse=target, patience=100)
    training.fit(config, data, 0, False, [clock], steps_per_execution=8)
    summary = clock.summary(data.num_train)
    assert summary["epochs_run"] == summary["epochs_to_target"] <= 8
    # The clock's own figures: the summary's are rounded to 4 places.
    assert clock.val_rmse[-1] <= target < clock.val_rmse[0]
    assert 0 < summary["seconds_to_target"] == summary["seconds_since_start_per_epoch"][-1]
    assert summary["examples_per_second"] > 0


def test_the_seed_trains_from_csv_until_past_its_best(ratings, tmp_path):
    train_rows, eval_rows = datasets.split_rows(len(ratings))
    result = seed_reference.train_seed(ratings, train_rows, eval_rows, str(tmp_path), 3)
    assert (tmp_path / "train_data.csv").read_text().count("\n") == len(train_rows)
    assert 1 <= result["best_epoch"] <= result["epochs_run"] <= 3
    assert result["best_val_rmse"] == min(result["val_rmse_per_epoch"])
    assert result["epochs_to_target"] is None  # the seed has no target


def test_serving_latency_times_the_signature(tmp_path, capsys):
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, examples):
            spec = {"user_id": tf.io.FixedLenFeature([], tf.string)}
            parsed = tf.io.parse_example(examples, spec)
            return {"rating": tf.cast(tf.strings.length(parsed["user_id"]), tf.float32)}

    model = Model()
    tf.saved_model.save(model, str(tmp_path), signatures={"serving_default": model.serve})
    serving_latency.main(["--model", str(tmp_path), "--batch-sizes", "1,4", "--calls", "30"])
    [line] = [o for o in capsys.readouterr().out.splitlines() if o.startswith("SERVING_RESULT")]
    result = json.loads(line.split(" ", 1)[1])
    assert result["batch_1"]["calls"] == result["batch_4"]["calls"] == 30
    assert 0 < result["batch_1"]["p50_ms"] <= result["batch_1"]["p99_ms"]
    assert result["peak_rss_gb"] > 0


@pytest.fixture(scope="module")
def catalogue_model(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("catalogue"))
    built = serving_latency.build_catalogue_model(model_dir, num_users=12, num_movies=7)
    return model_dir, built


def test_the_catalogue_model_has_every_user_and_movie(catalogue_model):
    model_dir, built = catalogue_model
    assert (built["users"], built["movies"]) == (12, 7)
    movies = serving_latency.vocabulary_tokens(model_dir, "movie_id_vocabulary")
    assert sorted(movies) == sorted(f"movie_{i}" for i in range(1, 8))


def test_recommend_latency_times_top_k_lists_of_the_models_users(catalogue_model, capsys):
    model_dir, _ = catalogue_model
    argv = ["--model", model_dir, "--signature", "recommend", "--batch-sizes", "1,4"]
    serving_latency.main(argv + ["--calls", "25", "--k", "3"])
    [line] = [o for o in capsys.readouterr().out.splitlines() if o.startswith("RECOMMEND_RESULT")]
    result = json.loads(line.split(" ", 1)[1])
    assert (result["users"], result["movies"], result["k"]) == (12, 7, 3)
    for batch in ("batch_1", "batch_4"):
        assert result[batch]["calls"] == 25
        assert 0 < result[batch]["p50_ms"] <= result[batch]["p90_ms"]


def test_the_recommend_section_records_its_runs_and_the_headline(catalogue_model, tmp_path):
    model_dir, _ = catalogue_model
    args = speed.parse_args(
        ["--sections", "recommend", "--recommend-model", model_dir, "--serving-threads", "1"]
        + ["--serving-calls", "20", "--log-dir", str(tmp_path)]
    )
    section = speed.recommend_section(args, str(tmp_path))
    run = section["recommend"]["runs"]["1_threads"]
    assert run["returncode"] == 0 and run["movies"] == 7 and run["threads"] == 1
    assert section["recommend_p50_ms_batch1"] == run["batch_1"]["p50_ms"] > 0
    assert run["batch_64"]["calls"] == 20


@pytest.mark.parametrize("path", ["qr_layer", "full"])
def test_scale_trains_a_user_table_and_counts_its_parameters(path):
    result = scale.run(5000, path, steps=25, batch_size=32, seed=0)
    full = 5000 * scale.EMBEDDING_DIM
    if path == "full":
        assert result["user_table_params"] == full
    else:
        assert result["user_table_params"] < full / 10
    assert result["step_ms_p50"] > 0 and np.isfinite(result["loss_last"])
    assert result["peak_rss_gb"] >= result["peak_rss_gb_before_build"] > 0


def test_the_scale_curve_trains_the_default_preset_per_size_and_writes_its_results(tmp_path):
    out = tmp_path / "scale.json"
    results = scale.curve(ids=(3000, 6000), steps=25)
    scale.merge_results("steps", results, str(out), "test")
    written = json.loads(out.read_text())
    assert {k: written[k] for k in results} == results
    assert written["machine"]["cpu_model"]
    assert set(results["step_ms"]) == set(results["step_peak_rss_gb"]) == {"3000", "6000"}
    small, large = results["runs"]
    assert small["path"] == "preset" and small["batch_size"] == scale.CURVE_BATCH_SIZE
    # The user table follows the vocabulary at the preset's compression.
    assert small["user_table_params"] < large["user_table_params"] < 6000 * scale.EMBEDDING_DIM
    assert all(ms > 0 for ms in results["step_ms"].values())
