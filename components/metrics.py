"""The Evaluator's rating and ranking metrics, computed in one pass over the examples.

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

The ranking metrics (``ndcg_at_10``, ``recall_at_10``, ``ranked_users``)
treat each user as a query: the model's predicted ratings rank the user's
eval movies of the slice, and a movie is relevant when the user rated it at
least ``RELEVANT_RATING`` (relevance comes from the label, so the examples
need no gain feature). Users with no relevant movie in the slice are left out:
NDCG and recall are undefined for them. The same pass keeps, per user, the k
best-predicted movies and the number of relevant ones.

They do not use TFMA's query metrics (a ``MetricsSpec`` with ``query_key``,
as TFMA's ``NDCG`` needs): TFMA then shuffles every extract to group them by
user and merges each user's, several times what this pass adds to the
Evaluator's time; and it slices whole users, so a slice on a per-movie feature (movie
popularity) would rank all the movies of each user with one in the slice.
"""

import dataclasses
import hashlib
import math
from collections.abc import Callable
from collections.abc import Iterable
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.utils import util

from components import features

EXAMPLE_COUNT_NAME = "example_count"
MEAN_SQUARED_ERROR_NAME = "mean_squared_error"
MEAN_ABSOLUTE_ERROR_NAME = "mean_absolute_error"
ROOT_MEAN_SQUARED_ERROR_NAME = "root_mean_squared_error"
MEAN_LABEL_NAME = "mean_label"
MEAN_PREDICTION_NAME = "mean_prediction"
RMSE_GAIN_OVER_MEAN_NAME = "rmse_gain_over_mean"
RANKING_TOP_K = 10
# MovieLens's "liked it": 4 and 5 stars.
RELEVANT_RATING = 4.0
NDCG_AT_K_NAME = f"ndcg_at_{RANKING_TOP_K}"
RECALL_AT_K_NAME = f"recall_at_{RANKING_TOP_K}"
RANKED_USERS_NAME = "ranked_users"
# The key of the shared pass's result; not a reported metric.
_RATING_PASS_NAME = "_rating_pass"


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


class RankingMeans(NamedTuple):
    """Users with a relevant movie in the slice, and their mean NDCG@k and recall@k."""

    users: float
    ndcg: float
    recall: float


# Rows a slice's top lists buffer before folding them into each user's top k.
COMPACT_AT_ROWS = 65_536
# The per-user totals, carried on each user's best row. Narrow types: the
# top lists hold a row per user of the slice, and TFMA pickles and gathers
# them in one process; a model's predictions are float32 anyway.
_TOTALS = (("relevant_total", np.int32), ("weight_total", np.float32), ("count_total", np.int32))
_COLUMNS = (("user", np.int64), ("prediction", np.float32), ("relevant", np.bool_), *_TOTALS)


def user_code(user) -> int:
    """A user id as a 64-bit integer, the same in every process (Python's ``hash``
    of a string is salted per process, and TFMA's combine steps may run in
    several).

    The top lists keep these codes instead of id strings: a third of the
    memory, and sorting integers is far faster than sorting Python objects.
    Two of 5M users share a code with probability below 1e-6.
    """
    if isinstance(user, str):
        user = user.encode()
    elif not isinstance(user, bytes):
        user = str(user).encode()
    return int.from_bytes(hashlib.blake2b(user, digest_size=8).digest(), "little", signed=True)


def _group_ranks(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group and its rank in it, for rows sorted by group (``starts`` marks firsts)."""
    group = np.cumsum(starts) - 1
    return group, np.arange(len(starts)) - np.flatnonzero(starts)[group]


def _top_rows(rows: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Each user's k best rows, best first, users together; their totals on the best row.

    At equal predictions an irrelevant movie ranks first: a model that cannot
    tell movies apart (a constant) scores the worst order, not a lucky one.
    """
    if not len(rows["user"]):
        return rows
    order = np.lexsort((rows["relevant"], -rows["prediction"], rows["user"]))
    codes = rows["user"][order]
    starts = np.r_[True, codes[1:] != codes[:-1]]
    group, rank = _group_ranks(starts)
    keep = rank < k
    picked = order[keep]
    top = {name: rows[name][picked] for name in ("user", "prediction", "relevant")}
    best = starts[keep]
    for name, dtype in _TOTALS:
        column = np.zeros(len(best), dtype)
        column[best] = np.bincount(group, weights=rows[name][order])
        top[name] = column
    return top


class UserTopLists:
    """Per user of a slice: the k best-predicted movies, the relevant ones, and the weights.

    Kept as columns rather than an object per user: TFMA pickles every partial
    accumulator between its combine steps, and per-user Python objects made
    the ranking metrics half of the Evaluator's time with a million users.
    Examples are buffered as rows and turned into column chunks every
    ``COMPACT_AT_ROWS`` rows; a merged accumulator is a chunk too. The chunks
    are folded (``_top_rows``) once they hold as many rows as the folded top
    lists, and before pickling: memory grows with the users, not with the
    examples, and each row is sorted O(log rows) times. (Folding at every
    chunk sorted every user's rows again each time: quadratic when most
    users have fewer than k rows.)
    """

    def __init__(self, k: int = RANKING_TOP_K):
        self.k = k
        self._pending: tuple[list, list, list, list] = ([], [], [], [])
        self._chunks: list[dict[str, np.ndarray]] = []
        self._rows = self._as_rows([], [], [], [])

    @staticmethod
    def _as_rows(users, predictions, relevant, weights) -> dict[str, np.ndarray]:
        values = {
            "user": users,
            "prediction": predictions,
            "relevant": relevant,
            "relevant_total": relevant,
            "weight_total": weights,
            "count_total": np.ones(len(relevant)),
        }
        return {name: np.asarray(values[name], dtype=dtype) for name, dtype in _COLUMNS}

    def _all_rows(self) -> dict[str, np.ndarray]:
        parts = [self._rows, *self._chunks, self._as_rows(*self._pending)]
        return {name: np.concatenate([part[name] for part in parts]) for name in self._rows}

    def _compact(self) -> None:
        if self._pending[0] or self._chunks:
            self._rows = _top_rows(self._all_rows(), self.k)
            self._pending = ([], [], [], [])
            self._chunks = []

    def _add_chunk(self, rows: dict[str, np.ndarray]) -> None:
        self._chunks.append(rows)
        if sum(len(chunk["user"]) for chunk in self._chunks) >= len(self._rows["user"]):
            self._compact()

    def add(self, user, label: float, prediction: float, weight: float) -> None:
        users, predictions, relevant, weights = self._pending
        users.append(user_code(user))
        predictions.append(prediction)
        relevant.append(label >= RELEVANT_RATING)
        weights.append(weight)
        if len(users) >= COMPACT_AT_ROWS:
            chunk = self._as_rows(*self._pending)
            self._pending = ([], [], [], [])
            self._add_chunk(chunk)

    def add_all(self, users, labels, predictions) -> None:
        """Unweighted examples given as arrays, as one chunk."""
        relevant = np.asarray(labels) >= RELEVANT_RATING
        codes = np.fromiter((user_code(user) for user in users), np.int64, len(relevant))
        self._add_chunk(self._as_rows(codes, predictions, relevant, np.ones(len(relevant))))

    def merge(self, other: "UserTopLists") -> None:
        self._add_chunk(other._all_rows())

    def __getstate__(self):
        self._compact()
        return self.__dict__

    def means(self) -> RankingMeans:
        """NDCG@k and recall@k with binary gains, averaged over users with a relevant movie.

        DCG@k sums 1/log2(position + 1) over the relevant movies in the top k,
        and the ideal DCG puts every relevant movie first. Recall@k is the
        share of the user's relevant movies in the top k, so a user with more
        than k relevant movies cannot reach 1. NDCG and recall are undefined
        for a user without a relevant movie: left out. Each user counts with
        the mean of the user's example weights (1 unweighted).
        """
        self._compact()
        rows = self._rows
        starts = rows["count_total"] > 0  # each user's best row carries its totals
        group, rank = _group_ranks(starts)
        hits = np.bincount(group, weights=rows["relevant"], minlength=starts.sum())
        dcg = np.bincount(
            group, weights=rows["relevant"] / np.log2(rank + 2), minlength=starts.sum()
        )
        relevant = rows["relevant_total"][starts]
        ideal_dcg = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(self.k) + 2))]
        ranked = relevant > 0
        user_weight = (rows["weight_total"][starts] / rows["count_total"][starts])[ranked]
        users = float(user_weight.sum())
        if not users:
            return RankingMeans(0.0, float("nan"), float("nan"))
        ndcg = dcg[ranked] / ideal_dcg[np.minimum(relevant[ranked], self.k)]
        recall = hits[ranked] / relevant[ranked]
        return RankingMeans(
            users, float(user_weight @ ndcg) / users, float(user_weight @ recall) / users
        )


def ranking_of(users, labels, predictions, k: int = RANKING_TOP_K) -> RankingMeans:
    """The ranking metrics of whole arrays, one unweighted example each (benchmarks)."""
    top_lists = UserTopLists(k)
    top_lists.add_all(users, labels, predictions)
    return top_lists.means()


@dataclasses.dataclass
class RatingPass:
    """The one pass's accumulator: the rating sums and each user's top list."""

    sums: RatingSums = dataclasses.field(default_factory=RatingSums)
    top_lists: UserTopLists = dataclasses.field(default_factory=UserTopLists)


class SliceResult(NamedTuple):
    sums: RatingSums
    ranking: RankingMeans


def _one_value(value, model_name: str) -> float | None:
    """A one-element array's value (of ``model_name``'s entry when keyed by model), else None."""
    if isinstance(value, dict):
        value = value.get(model_name)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.flat[0])
    return None


class _RatingPassCombiner(beam.CombineFn):
    def __init__(
        self, key: metric_types.MetricKey, eval_config, example_weighted: bool, user_key: str
    ):
        self._key = key
        self._eval_config = eval_config
        self._example_weighted = example_weighted
        self._user_key = user_key

    def create_accumulator(self) -> RatingPass:
        return RatingPass()

    def add_input(self, state: RatingPass, element: metric_types.StandardMetricInputs):
        # Examples without a user id still count in the rating metrics.
        user = (element.features or {}).get(self._user_key)
        if user is None:
            user = util.get_by_keys(element.features or {}, [self._user_key], optional=True)
        if user is not None:
            user = np.ravel(user)[0]
        for label, prediction, weight in self._label_prediction_weight(element):
            if not (math.isnan(label) or math.isnan(prediction)):
                state.sums.add(label, prediction, weight)
                if user is not None:
                    state.top_lists.add(user, label, prediction, weight)
        return state

    def _label_prediction_weight(self, element: metric_types.StandardMetricInputs):
        """The example's (label, prediction, weight) as floats.

        An unweighted example with one label and one prediction, the
        Evaluator's every example, is read directly: TFMA's general
        ``to_label_prediction_example_weight`` was a third of the
        Evaluator's time on the 4M-rating set.
        """
        if not (self._example_weighted or self._key.sub_key):
            label = _one_value(element.label, self._key.model_name)
            prediction = _one_value(element.prediction, self._key.model_name)
            if label is not None and prediction is not None:
                return ((label, prediction, 1.0),)
        return (
            tuple(float(metric_util.safe_to_scalar(value)) for value in (label, prediction, weight))
            for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element,
                eval_config=self._eval_config,
                model_name=self._key.model_name,
                output_name=self._key.output_name,
                example_weighted=self._example_weighted,
                sub_key=self._key.sub_key,
            )
        )

    def merge_accumulators(self, accumulators: Iterable[RatingPass]) -> RatingPass:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for state in accumulators:
            result.sums.merge(state.sums)
            result.top_lists.merge(state.top_lists)
        return result

    def extract_output(self, state: RatingPass) -> dict[metric_types.MetricKey, SliceResult]:
        return {self._key: SliceResult(state.sums, state.top_lists.means())}


def _computations_of(statistic: Callable[[SliceResult], float]):
    """``merge_per_key_computations``'s per-key function for one statistic of the pass."""

    def computations(
        name: str | None = None,
        user_key: str = features.USER_ID,
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

        pass_key = key_named(_RATING_PASS_NAME)
        key = key_named(name)
        shared_pass = metric_types.MetricComputation(
            keys=[pass_key],
            # The raw id: every user unseen in train shares one transformed index.
            preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[user_key])],
            combiner=_RatingPassCombiner(pass_key, eval_config, example_weighted, user_key),
        )

        def result(metrics):
            return {key: statistic(metrics[pass_key])}

        return [shared_pass, metric_types.DerivedMetricComputation(keys=[key], result=result)]

    return computations


class _RatingMetric(metric_types.Metric):
    """A statistic of one part (``PART``) of the shared pass's result, reported under ``name``."""

    STATISTIC: Callable[[RatingSums], float]
    DEFAULT_NAME: str
    PART = "sums"

    def __init__(self, name: str | None = None, user_key: str = features.USER_ID):
        statistic, part = type(self).STATISTIC, type(self).PART
        super().__init__(
            metric_util.merge_per_key_computations(
                _computations_of(lambda result: statistic(getattr(result, part)))
            ),
            name=name or self.DEFAULT_NAME,
            user_key=user_key,
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


class _RankingMetric(_RatingMetric):
    """One of the per-user ranking means of a slice, reported under ``name``."""

    STATISTIC: Callable[[RankingMeans], float]
    PART = "ranking"


class RatingNdcgAtK(_RankingMetric):
    """Mean NDCG@10 over the users with a relevant eval movie in the slice."""

    DEFAULT_NAME = NDCG_AT_K_NAME
    STATISTIC = staticmethod(lambda ranking: ranking.ndcg)


class RatingRecallAtK(_RankingMetric):
    """Mean recall@10 over the users with a relevant eval movie in the slice."""

    DEFAULT_NAME = RECALL_AT_K_NAME
    STATISTIC = staticmethod(lambda ranking: ranking.recall)


class RatingRankedUsers(_RankingMetric):
    """How many users the ranking metrics average over (those with a relevant movie)."""

    DEFAULT_NAME = RANKED_USERS_NAME
    STATISTIC = staticmethod(lambda ranking: float(ranking.users))


RATING_METRICS = (
    RatingExampleCount,
    RatingMeanSquaredError,
    RatingRootMeanSquaredError,
    RatingMeanAbsoluteError,
    RatingMeanLabel,
    RatingMeanPrediction,
    RatingRmseGainOverMean,
)
RANKING_METRICS = (RatingNdcgAtK, RatingRecallAtK, RatingRankedUsers)

for _metric in RATING_METRICS + RANKING_METRICS:
    metric_types.register_metric(_metric)
