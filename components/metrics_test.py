"""The rating metrics: one shared pass, the same numbers as the textbook formulas."""

import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types

from components import metrics

LABELS = np.array([4.0, 3.0, 5.0, 1.0, 2.5])
PREDICTIONS = np.array([3.5, 3.2, 4.1, 2.0, 2.5])


def _computations(metric):
    return metric.computations(eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec()]))


def _run(metric):
    """Runs the metric's computations the way TFMA's evaluator does, on LABELS/PREDICTIONS."""
    shared, derived = _computations(metric)
    combiner = shared.combiner
    halves = []
    for rows in (slice(0, 2), slice(2, None)):
        accumulator = combiner.create_accumulator()
        for label, prediction in zip(LABELS[rows], PREDICTIONS[rows], strict=False):
            element = metric_types.StandardMetricInputs(
                label=np.array([label]),
                prediction=np.array([prediction]),
                example_weight=np.array([1.0]),
            )
            accumulator = combiner.add_input(accumulator, element)
        halves.append(accumulator)
    sums = combiner.extract_output(combiner.merge_accumulators(halves))
    (result,) = derived.result(sums).values()
    return result


@pytest.mark.parametrize(
    "metric, expected",
    [
        (metrics.RatingExampleCount(), len(LABELS)),
        (metrics.RatingMeanSquaredError(), np.mean((LABELS - PREDICTIONS) ** 2)),
        (metrics.RatingRootMeanSquaredError(), math.sqrt(np.mean((LABELS - PREDICTIONS) ** 2))),
        (metrics.RatingMeanAbsoluteError(), np.mean(np.abs(LABELS - PREDICTIONS))),
        (metrics.RatingMeanLabel(), LABELS.mean()),
        (metrics.RatingMeanPrediction(), PREDICTIONS.mean()),
        (
            metrics.RatingRmseGainOverMean(),
            1 - math.sqrt(np.mean((LABELS - PREDICTIONS) ** 2)) / LABELS.std(),
        ),
    ],
)
def test_each_metric_matches_its_formula(metric, expected):
    assert _run(metric) == pytest.approx(expected, rel=1e-9)


def test_metrics_report_under_tfma_names_and_are_not_shadowed_by_tfma():
    from tensorflow_model_analysis.metrics import metric_specs

    for metric in metrics.RATING_METRICS:
        config = tfma.MetricConfig(class_name=metric.__name__, module=metrics.__name__)
        assert type(metric_specs.metric_instance(config)) is metric
    assert [m().name for m in metrics.RATING_METRICS] == [
        "example_count",
        "mean_squared_error",
        "root_mean_squared_error",
        "mean_absolute_error",
        "mean_label",
        "mean_prediction",
        "rmse_gain_over_mean",
    ]


def test_all_metrics_share_one_combiner_pass():
    # TFMA runs equal MetricComputations once; every metric asks for the same one.
    shared = {_computations(m())[0] for m in metrics.RATING_METRICS}
    assert len(shared) == 1


def test_an_empty_slice_is_nan_not_an_error():
    shared, derived = _computations(metrics.RatingRootMeanSquaredError())
    sums = shared.combiner.extract_output(shared.combiner.create_accumulator())
    (value,) = derived.result(sums).values()
    assert math.isnan(value)


def test_a_constant_prediction_gains_nothing_over_the_mean():
    sums = metrics.RatingSums()
    for label in LABELS:
        sums.add(label, LABELS.mean(), 1.0)
    assert metrics.rmse_gain_over_mean(sums) == pytest.approx(0.0, abs=1e-9)
    # Any other constant is worse than the mean: a negative gain.
    other = metrics.RatingSums()
    for label in LABELS:
        other.add(label, 3.57, 1.0)
    assert metrics.rmse_gain_over_mean(other) < 0
