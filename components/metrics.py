"""TFMA metrics the Evaluator uses that TFMA does not ship natively.

TFMA 0.47 has native MeanSquaredError and MeanAbsoluteError but computes RMSE
only through the (slower) Keras metric wrapper, so RMSE is derived here from
the native MSE, in the same Beam pass.
"""

import math
from typing import Optional

from tensorflow_model_analysis.metrics import mean_regression_error
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

ROOT_MEAN_SQUARED_ERROR_NAME = "root_mean_squared_error"


class RootMeanSquaredError(metric_types.Metric):
    """sqrt(mean((label - prediction)**2)), per slice."""

    def __init__(self, name: str = ROOT_MEAN_SQUARED_ERROR_NAME):
        super().__init__(metric_util.merge_per_key_computations(_rmse_computations), name=name)


def _rmse_computations(
    name: Optional[str] = None,
    eval_config=None,
    model_name: Optional[str] = None,
    output_name: Optional[str] = None,
    sub_key=None,
    aggregation_type=None,
    class_weights=None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    mse_computations = mean_regression_error._mean_squared_error_computations(  # pylint: disable=protected-access
        name=mean_regression_error.MEAN_SQUARED_ERROR_NAME,
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        example_weighted=example_weighted,
    )
    mse_key = mse_computations[-1].keys[0]
    key = metric_types.MetricKey(
        name=name,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        example_weighted=example_weighted,
    )

    def result(metrics):
        return {key: math.sqrt(metrics[mse_key])}

    return mse_computations + [metric_types.DerivedMetricComputation(keys=[key], result=result)]


metric_types.register_metric(RootMeanSquaredError)
