"""The run's facts and the console summary rendered from them."""

import json
import os
import stat

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import validation_result_pb2

from components import features
from components import metrics
from pipeline import configs
from pipeline import pipeline as pipeline_lib
from pipeline import run_summary

METRIC_NAMES = (
    metrics.EXAMPLE_COUNT_NAME,
    metrics.MEAN_SQUARED_ERROR_NAME,
    metrics.MEAN_ABSOLUTE_ERROR_NAME,
    metrics.ROOT_MEAN_SQUARED_ERROR_NAME,
    metrics.MEAN_LABEL_NAME,
    metrics.MEAN_PREDICTION_NAME,
    metrics.NDCG_AT_K_NAME,
    metrics.RECALL_AT_K_NAME,
    metrics.RANKED_USERS_NAME,
)

ADAPTATION = "4 MD blocks asked for, but the vocabulary has 1 id: 1 block"


def _metrics(count, rmse, mean_label, mean_prediction):
    # Ranking quality falls as the error grows; a third of the examples' users are ranked.
    ranking = (1.9 - rmse, 1.8 - rmse, float(count // 3))
    values = (float(count), rmse**2, rmse * 0.8, rmse, mean_label, mean_prediction, *ranking)
    return dict(zip(METRIC_NAMES, values, strict=True))


def _slices(with_baseline: bool):
    """Overall plus every slicing feature's values, as run_summary.collect lays them out."""
    # Slice values as tfma.load_eval_result gives them: names as str, ratings as float.
    rows = [(None, None, 1894, 1.0635, 3.55, 3.40)]
    rows += [
        (features.MOVIE_POPULARITY_BLOCK, name, 630, 0.95 + 0.07 * b, 3.7 - 0.2 * b, 3.5)
        for b, name in enumerate(features.MOVIE_POPULARITY_BLOCK_NAMES)
    ]
    rows += [
        (features.USER_ACTIVITY_QUARTILE, name, 790 - 150 * q, 1.0 + 0.02 * q, 3.55, 3.45)
        for q, name in enumerate(features.USER_ACTIVITY_QUARTILE_NAMES)
    ]
    rows += [
        (features.LABEL, float(r), 380, abs(r - 3.4) + 0.4, float(r), 3.4) for r in range(1, 6)
    ]
    slices = []
    for feature, value, count, rmse, label, prediction in rows:
        candidate = _metrics(count, rmse, label, prediction)
        baseline = _metrics(count, rmse - 0.05, label, prediction + 0.1) if with_baseline else None
        change = {k: candidate[k] - baseline[k] for k in candidate} if with_baseline else None
        slices.append(run_summary.slice_item(feature, value, candidate, baseline, change))
    return slices


def _memory_report(compressed: bool):
    if compressed:
        user_tables = [("remainder", 18, 64), ("quotient", 17, 64)]
        movie_tables = [("block_0", 22, 64), ("block_1", 70, 32), ("block_1_projection", 32, 64)]
    else:
        user_tables, movie_tables = [("table", 301, 64)], [("table", 201, 64)]

    def table(kind, parts, input_dim):
        tables = [
            {"name": name, "rows": rows, "dim": dim, "params": rows * dim, "bytes": 4 * rows * dim}
            for name, rows, dim in parts
        ]
        params = sum(t["params"] for t in tables)
        return {
            "type": kind,
            "input_dim": input_dim,
            "tables": tables,
            "params": params,
            "bytes": 4 * params,
            "full_params": input_dim * 64,
            "compression": input_dim * 64 / params,
        }

    tables = {
        "user_id": table("QREmbedding" if compressed else "Embedding", user_tables, 301),
        "movie_id": table("MDEmbedding" if compressed else "Embedding", movie_tables, 201),
    }
    if compressed:
        tables["movie_id"]["adaptations"] = [ADAPTATION]
    params = sum(t["params"] for t in tables.values())
    full = sum(t["full_params"] for t in tables.values())
    return {
        "features": tables,
        "total": {"params": params, "bytes": 4 * params, "compression": full / params},
    }


def _history(start):
    losses = [start - 0.2 * epoch for epoch in range(5)]
    return {
        "loss": losses,
        "val_loss": [v + 0.05 for v in losses],
        "rmse": [v**0.5 for v in losses],
        "val_rmse": [(v + 0.05) ** 0.5 for v in losses],
    }


def example_facts(blessed: bool = False):
    """A run compared with the full-table model and, when not blessed, why not."""
    thresholds = run_summary.threshold_descriptions(
        pipeline_lib.eval_config(configs.EvalSettings())
    )
    return {
        "pipeline_name": configs.PIPELINE_NAME,
        "output_root": "/runs/out",
        "generated_at": "2026-01-01T12:00:00",
        "blessing": {
            "blessed": blessed,
            "reasons": []
            if blessed
            else [
                "root_mean_squared_error: 1.2500 fails <= 1.2",
                "root_mean_squared_error (change vs latest blessed): 0.0300 fails <b>change</b>",
            ],
            "pushed": blessed,
            "pushed_destination": "/runs/out/serving_model/x/1" if blessed else None,
        },
        "serving_check": {"servable": True, "report": {"ok": True, "num_examples": 256}},
        "evaluations": [
            {
                "node": "Evaluator",
                "title": "Blessing check",
                "uri": "/runs/out/pipelines/x/Evaluator/evaluation/9",
                "baseline_name": None,
                "note": "No model had been blessed before this run.",
                "slices": _slices(with_baseline=False),
                "thresholds": thresholds,
            },
            {
                "node": configs.COMPRESSION_EVALUATOR_ID,
                "title": "Cost of compression",
                "uri": "/runs/out/pipelines/x/compression_evaluator/evaluation/11",
                "baseline_name": "full tables",
                "note": None,
                "slices": _slices(with_baseline=True),
                "thresholds": [],
            },
        ],
        "models": [
            {
                "name": "this model",
                "uri": "/runs/out/pipelines/x/Trainer/model/8",
                "tensorboard": "/runs/out/pipelines/x/Trainer/model_run/8/tensorboard",
                "history": _history(2.2),
                "memory_report": _memory_report(compressed=True),
            },
            {
                "name": "full tables",
                "uri": "/runs/out/pipelines/x/full_model_trainer/model/9",
                "tensorboard": None,
                "history": _history(2.1),
                "memory_report": _memory_report(compressed=False),
            },
        ],
    }


# ---------------------------------------------------------------- the console


def test_a_blessed_run_prints_model_metrics_tables_and_push():
    lines = run_summary.format_summary(example_facts(blessed=True)).splitlines()
    assert lines[:2] == [
        "Trained model:  /runs/out/pipelines/x/Trainer/model/8",
        "Eval metrics (eval split, overall):",
    ]
    # The overall slice's candidate metrics, in the console's order.
    assert [line.split()[0] for line in lines[2:8]] == list(run_summary.SUMMARY_METRICS)
    assert lines[5] == f"  {metrics.ROOT_MEAN_SQUARED_ERROR_NAME:<25} 1.0635"
    assert lines[6] == f"  {metrics.NDCG_AT_K_NAME:<25} 0.8365"
    assert lines[7] == f"  {metrics.RECALL_AT_K_NAME:<25} 0.7365"
    assert lines[8] == "Embedding tables (fp32):"
    assert lines[-3:] == [
        "Blessed by the Evaluator.",
        "Serves as TF Serving loads it (TF1 path, fresh process): 256 eval examples, "
        "ratings equal to the TF2 path's",
        "Pushed to:      /runs/out/serving_model/x/1",
    ]


def test_a_ranking_metric_undefined_overall_prints_as_nan():
    facts = example_facts(blessed=True)
    overall = facts["evaluations"][0]["slices"][0]
    overall["candidate"][metrics.NDCG_AT_K_NAME] = "NaN"  # as TFMA writes it
    text = run_summary.format_summary(facts)
    assert f"  {metrics.NDCG_AT_K_NAME:<25} nan" in text.splitlines()


def test_a_refused_run_prints_every_reason_and_that_nothing_was_pushed():
    facts = example_facts(blessed=False)
    text = run_summary.format_summary(facts)
    reasons = text.split("NOT blessed by the Evaluator:\n")[1].splitlines()
    assert reasons[:2] == [f"  {reason}" for reason in facts["blessing"]["reasons"]]
    assert text.endswith(run_summary.NOT_PUSHED)


def test_memory_report_states_compression_against_the_full_presets_64d_tables():
    report = {
        "features": {
            "user_id": {
                "type": "MDEmbedding",
                "params": 400,
                "bytes": 1600,
                "compression": 4.0,
                "input_dim": 100,
                "full_params": 1600,
                "tables": [{"name": "block_0", "rows": 100, "dim": 4, "params": 400}],
            }
        },
        "total": {"params": 400, "compression": 4.0},
    }
    text = run_summary.format_memory_report(report)
    assert "4.0x smaller than full tables of the same width" in text
    # 100 ids x 64 dims / 400 params
    assert "16.0x smaller than full 64-d tables" in text


def test_tables_adapted_to_a_small_vocabulary_say_how():
    text = run_summary.format_summary(example_facts())
    movie_rows = text.split("  movie_id ")[1].splitlines()
    assert f"      adapted: {ADAPTATION}" in movie_rows
    assert text.count("adapted:") == 1


def test_an_unservable_model_is_reported_with_the_reason():
    check = {"servable": False, "report": {"ok": False, "reason": "TF1 loading path: X"}}
    text = run_summary.serving_check_text(check)
    assert text.startswith("NOT servable") and "TF1 loading path: X" in text
    no_report = run_summary.serving_check_text({"servable": False, "report": None})
    assert no_report.endswith(run_summary.NO_REASON)
    # TFX's InfraValidator (the docker check) writes no report of its own.
    served = run_summary.serving_check_text({"servable": True, "report": None})
    assert "InfraValidator" in served


# ---------------------------------------------------------------- the facts


def test_failed_thresholds_are_told_with_value_and_bound():
    validation = validation_result_pb2.ValidationResult(validation_ok=False)
    per_slice = validation.metric_validations_per_slice.add()
    settings = configs.EvalSettings(rmse_upper_bound=1.12, rmse_max_increase=0.02)
    rmse = metrics.ROOT_MEAN_SQUARED_ERROR_NAME
    bound = per_slice.failures.add()
    bound.metric_key.name = rmse
    bound.metric_value.double_value.value = 1.25
    bound.metric_threshold.value_threshold.upper_bound.value = settings.rmse_upper_bound
    change = per_slice.failures.add()
    change.metric_key.name, change.metric_key.is_diff = rmse, True
    change.metric_value.double_value.value = 0.03
    change.metric_threshold.change_threshold.absolute.value = settings.rmse_max_increase
    change.metric_threshold.change_threshold.direction = tfma.MetricDirection.LOWER_IS_BETTER
    gain = per_slice.failures.add()
    gain.metric_key.name = metrics.RMSE_GAIN_OVER_MEAN_NAME
    gain.metric_threshold.value_threshold.lower_bound.value = 0.02
    assert run_summary.validation_failures(validation) == [
        f"{rmse}: 1.2500 fails <= 1.12",
        f"{rmse} (change vs latest blessed): 0.0300 fails at most 0.02 above the latest "
        "blessed model's",
        f"{metrics.RMSE_GAIN_OVER_MEAN_NAME}: 0.0000 fails >= 0.02 (no better than predicting "
        "the mean rating: is the model trained?)",
    ]


def test_thresholds_are_described_for_the_overall_slice():
    settings = configs.EvalSettings(rmse_upper_bound=0.97, rmse_max_increase=0.02)
    lines = run_summary.threshold_descriptions(pipeline_lib.eval_config(settings))
    rmse = metrics.ROOT_MEAN_SQUARED_ERROR_NAME
    assert lines == [
        f"{rmse} <= 0.97 (overall)",
        f"{rmse} at most 0.02 above the latest blessed model's (overall)",
        f"{metrics.RMSE_GAIN_OVER_MEAN_NAME} >= {settings.min_gain_over_mean:g} (overall)",
    ]
    no_thresholds = pipeline_lib.eval_config(settings, with_thresholds=False)
    assert run_summary.threshold_descriptions(no_thresholds) == []


def test_slice_labels_name_blocks_quartiles_and_ratings():
    label = run_summary.slice_label
    assert label(None, None) == "overall"
    # As Transform emits them and tfma.load_eval_result gives them back: names.
    assert label(features.MOVIE_POPULARITY_BLOCK, "head") == "head"
    assert label(features.MOVIE_POPULARITY_BLOCK, b"tail") == "tail"
    assert label(features.USER_ACTIVITY_QUARTILE, "least active 25%") == "least active 25%"
    # Eval results written before Transform named the slices hold their index.
    assert label(features.MOVIE_POPULARITY_BLOCK, 0) == "head"
    assert label(features.MOVIE_POPULARITY_BLOCK, 2) == "tail"
    assert label(features.USER_ACTIVITY_QUARTILE, 3) == "least active 25%"
    assert label(features.LABEL, 4.0) == "rating 4"
    assert label(features.LABEL, 3.5) == "rating 3.5"
    assert label(features.MOVIE_POPULARITY_BLOCK, "unknown") == "unknown"


def _sorted_slices(keys):
    slicing_features = list(features.SLICING_FEATURES)
    # pylint: disable-next=protected-access
    return sorted(keys, key=lambda k: run_summary._slice_order(k, slicing_features))


def test_named_slices_keep_their_order_not_the_alphabets():
    expected = [()] + [
        ((feature, value),)
        for feature, names in (
            (features.MOVIE_POPULARITY_BLOCK, ("head", "torso", "tail")),
            (
                features.USER_ACTIVITY_QUARTILE,
                ("most active 25%", "second 25%", "third 25%", "least active 25%"),
            ),
            (features.LABEL, (1.0, 2.0, 3.0, 4.0, 5.0)),
        )
        for value in names
    ]
    for keys in (expected[::-1], sorted(expected, key=str)):
        assert _sorted_slices(keys) == expected
    # Integer values (older eval results) sort the same way.
    ordered = _sorted_slices([((features.MOVIE_POPULARITY_BLOCK, b),) for b in (2, 0, 1)])
    assert [run_summary.slice_label(*key[0]) for key in ordered] == ["head", "torso", "tail"]


def test_rating_value_slices_carry_no_ranking_metrics():
    values = dict.fromkeys(METRIC_NAMES, 0.5)
    rating = run_summary.slice_item(features.LABEL, 4.0, values, values, None)
    for model in ("candidate", "baseline"):
        assert set(rating[model]) == set(METRIC_NAMES) - set(run_summary.RANKING_METRICS)
    assert rating["change"] is None
    # Per-user and per-movie slices keep them.
    head = run_summary.slice_item(features.MOVIE_POPULARITY_BLOCK, "head", values, None, None)
    assert head["candidate"] == values and head["label"] == "head"


def test_numpy_scalars_are_written_as_plain_numbers():
    facts = {"value": np.float32(0.5), "count": np.int64(3)}
    assert json.loads(run_summary.to_json(facts)) == {"value": 0.5, "count": 3}


def test_facts_are_written_atomically_and_readable_by_others(tmp_path):
    target = tmp_path / run_summary.FACTS_FILE
    target.write_text("old")
    path = run_summary.write_facts(example_facts(), str(tmp_path))
    assert path == str(target)
    assert json.loads(target.read_text()) == example_facts()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    with pytest.raises(TypeError):
        run_summary.write_atomically(str(target), None)
    assert json.loads(target.read_text()) == example_facts()
    assert sorted(os.listdir(tmp_path)) == [run_summary.FACTS_FILE]  # no temporary left behind


def test_a_folder_without_a_run_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.db"):
        run_summary.collect(str(tmp_path))


def test_the_memory_summary_counts_the_per_id_biases_against_full_ones():
    table = {"type": "MDEmbedding", "params": 400, "bytes": 1600, "compression": 4.0}
    table.update(input_dim=100, full_params=1600, tables=[])
    bias = {"type": "HashEmbedding", "params": 10, "bytes": 40, "compression": 10.0}
    bias.update(input_dim=100, full_params=100, tables=[])
    report = {
        "features": {"user_id": table},
        "total": {"params": 400, "compression": 4.0},
        "biases": {"features": {"user_id_bias": bias}, "total": {"params": 10, "full_params": 100}},
    }
    text = run_summary.format_memory_report(report)
    # (100 x 64 + 100) / (400 + 10)
    assert "with the per-id biases (HashEmbedding) 410 params (15.9x smaller" in text
