"""The Evaluator's rating metrics, computed in one pass over the examples.

TFMA's native ExampleCount, MeanSquaredError, MeanAbsoluteError, MeanLabel
and MeanPrediction each run their own per-example combiner, and each extracts the
label and prediction of every example again: on ML-100K's 15k eval examples
in 4 slicings that extraction was half the Evaluator's time. Here one
combiner keeps the count and the five sums every metric needs (weight,
squared error, absolute error, label, prediction), and each metric is
derived from them;
TFMA runs a computation shared by several metrics once.

The metrics report under TFMA's usual names (``example_count``,
``mean_squared_error``,
``mean_absolute_error``, ``mean_label``, ``mean_prediction``) plus
``root_mean_squared_error``, which TFMA 0.47 has only as a (slower) Keras
metric wrapper. Class names differ from TFMA's: TFMA looks a class name up
among its registered metrics before it reads the config's ``module``.
"""

import dataclasses
import math
from collections.abc import Callable
from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

EXAMPLE_COUNT_NAME = "example_count"
MEAN_SQUARED_ERROR_NAME = "mean_squared_error"
MEAN_ABSOLUTE_ERROR_NAME = "mean_absolute_error"
ROOT_MEAN_SQUARED_ERROR_NAME = "root_mean_squared_error"
MEAN_LABEL_NAME = "mean_label"
MEAN_PREDICTION_NAME = "mean_prediction"
RMSE_GAIN_OVER_MEAN_NAME = "rmse_gain_over_mean"
# The key of the shared sums; not a reported metric.
_RATING_SUMS_NAME = "_rating_error_sums"


@dataclasses.dataclass
class RatingSums:
    """Weighted sums over one slice's examples, and how many there were."""

    count: int = 0
    weight: float = 0.0
    squared_error: float = 0.0
    absolute_error: float = 0.0
    label: float = 0.0
    squared_label: float = 0.0
    prediction: float = 0.0

    def add(self, label: float, prediction: float, weight: float) -> None:
        error = label - prediction
        self.count += 1
        self.weight += weight
        self.squared_error += weight * error * error
        self.absolute_error += weight * abs(error)
        self.label += weight * label
        self.squared_label += weight * label * label
        self.prediction += weight * prediction

    def merge(self, other: "RatingSums") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def mean(self, total: float) -> float:
        return total / self.weight if self.weight else float("nan")


class _RatingSumsCombiner(beam.CombineFn):
    def __init__(self, key: metric_types.MetricKey, eval_config, example_weighted: bool):
        self._key = key
        self._eval_config = eval_config
        self._example_weighted = example_weighted

    def create_accumulator(self) -> RatingSums:
        return RatingSums()

    def add_input(self, sums: RatingSums, element: metric_types.StandardMetricInputs) -> RatingSums:
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            example_weighted=self._example_weighted,
            sub_key=self._key.sub_key,
        ):
            label = metric_util.safe_to_scalar(label)
            prediction = metric_util.safe_to_scalar(prediction)
            if not (np.isnan(label) or np.isnan(prediction)):
                sums.add(label, prediction, metric_util.safe_to_scalar(weight))
        return sums

    def merge_accumulators(self, accumulators: Iterable[RatingSums]) -> RatingSums:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for sums in accumulators:
            result.merge(sums)
        return result

    def extract_output(self, sums: RatingSums) -> dict[metric_types.MetricKey, RatingSums]:
        return {self._key: sums}


def _computations_of(statistic: Callable[[RatingSums], float]):
    """``merge_per_key_computations``'s per-key function for one statistic of the sums."""

    def computations(
        name: str | None = None,
        eval_config=None,
        model_name: str = "",
        output_name: str = "",
        sub_key=None,
        aggregation_type=None,
        class_weights=None,
        example_weighted: bool = False,
    ) -> metric_types.MetricComputations:
        del aggregation_type, class_weights  # Ratings are one regression output.

        def key_named(metric_name: str) -> metric_types.MetricKey:
            return metric_types.MetricKey(
                name=metric_name,
                model_name=model_name,
                output_name=output_name,
                sub_key=sub_key,
                example_weighted=example_weighted,
            )

        sums_key = key_named(_RATING_SUMS_NAME)
        key = key_named(name)
        shared_sums = metric_types.MetricComputation(
            keys=[sums_key],
            preprocessors=None,
            combiner=_RatingSumsCombiner(sums_key, eval_config, example_weighted),
        )

        def result(metrics):
            return {key: statistic(metrics[sums_key])}

        return [shared_sums, metric_types.DerivedMetricComputation(keys=[key], result=result)]

    return computations


class _RatingMetric(metric_types.Metric):
    """A statistic of the shared rating sums, reported under ``name``."""

    STATISTIC: Callable[[RatingSums], float]
    DEFAULT_NAME: str

    def __init__(self, name: str | None = None):
        super().__init__(
            metric_util.merge_per_key_computations(_computations_of(type(self).STATISTIC)),
            name=name or self.DEFAULT_NAME,
        )


class RatingExampleCount(_RatingMetric):
    """Examples with a label and a prediction (TFMA's ExampleCount, without its own pass)."""

    DEFAULT_NAME = EXAMPLE_COUNT_NAME
    STATISTIC = staticmethod(lambda sums: float(sums.count))


class RatingMeanSquaredError(_RatingMetric):
    DEFAULT_NAME = MEAN_SQUARED_ERROR_NAME
    STATISTIC = staticmethod(lambda sums: sums.mean(sums.squared_error))


class RatingRootMeanSquaredError(_RatingMetric):
    DEFAULT_NAME = ROOT_MEAN_SQUARED_ERROR_NAME
    STATISTIC = staticmethod(lambda sums: math.sqrt(sums.mean(sums.squared_error)))


class RatingMeanAbsoluteError(_RatingMetric):
    DEFAULT_NAME = MEAN_ABSOLUTE_ERROR_NAME
    STATISTIC = staticmethod(lambda sums: sums.mean(sums.absolute_error))


class RatingMeanLabel(_RatingMetric):
    DEFAULT_NAME = MEAN_LABEL_NAME
    STATISTIC = staticmethod(lambda sums: sums.mean(sums.label))


class RatingMeanPrediction(_RatingMetric):
    DEFAULT_NAME = MEAN_PREDICTION_NAME
    STATISTIC = staticmethod(lambda sums: sums.mean(sums.prediction))


def rmse_gain_over_mean(sums: RatingSums) -> float:
    """1 - RMSE / the RMSE of predicting the slice's mean label (its standard deviation).

    0 for a model no better than a constant, which is what an untrained or
    collapsed model predicts. The eval split's own mean is the best constant
    there, so beating it by a margin beats the train mean by at least as much.
    """
    mean = sums.mean(sums.label)
    variance = sums.mean(sums.squared_label) - mean * mean
    if not variance > 0:
        return float("nan")  # every label equal: no model can beat the constant
    return 1.0 - math.sqrt(sums.mean(sums.squared_error) / variance)


class RatingRmseGainOverMean(_RatingMetric):
    DEFAULT_NAME = RMSE_GAIN_OVER_MEAN_NAME
    STATISTIC = staticmethod(rmse_gain_over_mean)


RATING_METRICS = (
    RatingExampleCount,
    RatingMeanSquaredError,
    RatingRootMeanSquaredError,
    RatingMeanAbsoluteError,
    RatingMeanLabel,
    RatingMeanPrediction,
    RatingRmseGainOverMean,
)
for _metric in RATING_METRICS:
    metric_types.register_metric(_metric)
