"""The rating metrics: one shared pass, the same numbers as the textbook formulas."""

import math
import os

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


@pytest.mark.parametrize(
    "family, names",
    [
        (
            metrics.RATING_METRICS,
            [
                "example_count",
                "mean_squared_error",
                "root_mean_squared_error",
                "mean_absolute_error",
                "mean_label",
                "mean_prediction",
                "rmse_gain_over_mean",
            ],
        ),
        (metrics.RANKING_METRICS, ["ndcg_at_10", "recall_at_10", "ranked_users"]),
    ],
)
def test_metrics_report_under_their_names_and_are_not_shadowed_by_tfma(family, names):
    from tensorflow_model_analysis.metrics import metric_specs

    for metric in family:
        config = tfma.MetricConfig(class_name=metric.__name__, module=metrics.__name__)
        assert type(metric_specs.metric_instance(config)) is metric
    assert [m().name for m in family] == names


def _rmse_of(model_name, elements, example_weighted=False):
    """RMSE of ``model_name`` over ``elements``, as TFMA computes it beside a baseline."""
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate"), tfma.ModelSpec(name="baseline")]
    )
    computations = metrics.RatingRootMeanSquaredError().computations(
        eval_config=eval_config,
        model_names=["candidate", "baseline"],
        output_names=[""],
        example_weighted=example_weighted,
    )
    mine = [c for c in computations if c.keys[0].model_name == model_name]
    shared = [c for c in mine if isinstance(c, metric_types.MetricComputation)]
    derived = [c for c in mine if isinstance(c, metric_types.DerivedMetricComputation)]
    combiner = shared[0].combiner
    accumulator = combiner.create_accumulator()
    for element in elements:
        accumulator = combiner.add_input(accumulator, element)
    (value,) = derived[0].result(combiner.extract_output(accumulator)).values()
    return value


def test_each_model_of_a_baseline_comparison_is_scored_on_its_own_predictions():
    baseline = PREDICTIONS + 0.5
    weights = np.array([1.0, 2.0, 1.0, 3.0, 1.0])
    elements = [
        metric_types.StandardMetricInputs(
            label={"candidate": np.array([label]), "baseline": np.array([label])},
            prediction={"candidate": np.array([candidate]), "baseline": np.array([other])},
            example_weight={"candidate": np.array([weight]), "baseline": np.array([weight])},
        )
        for label, candidate, other, weight in zip(
            LABELS, PREDICTIONS, baseline, weights, strict=True
        )
    ]

    def rmse(predictions, w=None):
        return math.sqrt(np.average((LABELS - predictions) ** 2, weights=w))

    assert _rmse_of("candidate", elements) == pytest.approx(rmse(PREDICTIONS), rel=1e-9)
    assert _rmse_of("baseline", elements) == pytest.approx(rmse(baseline), rel=1e-9)
    # Weighted examples take TFMA's general path; the weights count.
    assert _rmse_of("candidate", elements, example_weighted=True) == pytest.approx(
        rmse(PREDICTIONS, weights), rel=1e-9
    )


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


# ---------------------------------------------------------------- ranking

# One user's eval movies per entry: (labels, predicted ratings). Relevant
# means rated 4 or more. "many" has 12 movies, 4 relevant, one of them ranked
# below the top 10; "none_relevant" has nothing to find and is left out.
USERS = {
    "mixed": ([5.0, 1.0, 4.0, 2.0, 3.0], [4.5, 4.0, 3.9, 3.0, 2.0]),
    "one": ([4.0], [2.0]),
    "many": (
        [4.0, 5.0, 4.0, 2.0, 3.0, 2.0, 1.0, 3.0, 2.0, 1.0, 5.0, 1.0],
        [4.9, 4.8, 4.7, 4.6, 4.5, 4.4, 4.3, 4.2, 4.1, 4.0, 3.9, 3.8],
    ),
    "none_relevant": ([1.0, 3.0, 2.0], [2.0, 3.0, 1.0]),
}


def _reference(labels, predictions, k=10):
    """NDCG@k and recall@k the textbook way: sort by prediction, sum discounted gains."""
    relevant = np.asarray(labels) >= 4
    ranked = relevant[np.argsort(-np.asarray(predictions))]
    if not ranked.any():
        return None
    dcg = sum(1 / np.log2(i + 2) for i in range(min(k, len(ranked))) if ranked[i])
    ideal = sum(1 / np.log2(i + 2) for i in range(min(k, relevant.sum())))
    return dcg / ideal, ranked[:k].sum() / relevant.sum()


def _mean_reference(users):
    per_user = [r for r in (_reference(*ratings) for ratings in users.values()) if r is not None]
    return len(per_user), *np.mean(per_user, axis=0)


def _examples(users):
    """Every user's examples, shuffled, as TFMA hands them to a combiner one by one."""
    rows = [
        (user.encode(), label, prediction)
        for user, (labels, predictions) in users.items()
        for label, prediction in zip(labels, predictions, strict=True)
    ]
    np.random.default_rng(0).shuffle(rows)
    return [
        metric_types.StandardMetricInputs(
            label=np.array([label]),
            prediction=np.array([prediction]),
            example_weight=np.array([1.0]),
            features={"user_id": np.array([user], dtype=object)},
        )
        for user, label, prediction in rows
    ]


def _run_on(metric, elements):
    """Runs a metric's computations as TFMA's evaluator does, merging two partial passes."""
    shared, derived = _computations(metric)
    combiner = shared.combiner
    halves = []
    for part in (elements[: len(elements) // 2], elements[len(elements) // 2 :]):
        accumulator = combiner.create_accumulator()
        for element in part:
            accumulator = combiner.add_input(accumulator, element)
        halves.append(accumulator)
    results = combiner.extract_output(combiner.merge_accumulators(halves))
    (result,) = derived.result(results).values()
    return result


def test_ndcg_and_recall_at_10_match_the_textbook_formulas():
    users, ndcg, recall = _mean_reference(USERS)
    assert users == 3
    elements = _examples(USERS)
    assert _run_on(metrics.RatingNdcgAtK(), elements) == pytest.approx(ndcg, rel=1e-9)
    assert _run_on(metrics.RatingRecallAtK(), elements) == pytest.approx(recall, rel=1e-9)
    assert _run_on(metrics.RatingRankedUsers(), elements) == users
    # "many" has one of its four relevant movies below the cut.
    assert _reference(*USERS["many"])[1] == 0.75
    # The set tells orderings apart: ranking by the reversed prediction scores lower.
    reversed_order = {name: (y, -np.array(p)) for name, (y, p) in USERS.items()}
    _, reversed_ndcg, reversed_recall = _mean_reference(reversed_order)
    assert reversed_ndcg < ndcg - 0.1 and reversed_recall < recall


def test_ranking_of_arrays_matches_the_textbook_formulas():
    rows = [(u, y, p) for u, (ys, ps) in USERS.items() for y, p in zip(ys, ps, strict=True)]
    users, labels, predictions = map(np.array, zip(*rows, strict=True))
    assert list(metrics.ranking_of(users, labels, predictions)) == pytest.approx(
        list(_mean_reference(USERS)), rel=1e-9
    )


def test_a_perfect_ranking_scores_one_and_a_constant_scores_the_worst_order():
    labels = [5.0, 1.0, 4.0, 2.0, 3.0]
    perfect = {"u": (labels, labels)}
    assert _run_on(metrics.RatingNdcgAtK(), _examples(perfect)) == pytest.approx(1.0)
    # Equal predictions rank the relevant movies last, not in the examples' order.
    constant = _run_on(metrics.RatingNdcgAtK(), _examples({"u": (labels, [3.5] * 5)}))
    assert constant == pytest.approx(_reference(labels, -np.array(labels))[0])
    assert constant < 0.6


def test_folding_rows_early_and_pickling_between_steps_change_nothing(monkeypatch):
    import pickle

    many_users = {
        f"user_{i}": (
            list(np.arange(i % 15 + 1) % 5 + 1.0),
            list(np.cos(np.arange(i % 15 + 1) * i)),
        )
        for i in range(1, 41)
    }
    elements = _examples(many_users)
    # Fold every 3 rows and send each partial pass through pickle, as TFMA does.
    monkeypatch.setattr(metrics, "COMPACT_AT_ROWS", 3)
    shared, _ = _computations(metrics.RatingNdcgAtK())
    combiner = shared.combiner
    halves = []
    for part in (elements[::2], elements[1::2]):
        accumulator = combiner.create_accumulator()
        for element in part:
            accumulator = combiner.add_input(accumulator, element)
        halves.append(pickle.loads(pickle.dumps(accumulator)))
    ranking = next(iter(combiner.extract_output(combiner.merge_accumulators(halves)).values()))
    users, ndcg, recall = _mean_reference(many_users)
    assert list(ranking.ranking) == pytest.approx([users, ndcg, recall], rel=1e-12)
    assert recall < 1  # some users have relevant movies below the top 10
    assert users == sum(1 for labels, _ in many_users.values() if max(labels) >= 4)


def test_rows_of_distinct_users_are_folded_a_logarithmic_number_of_times(monkeypatch):
    # Most users of a wide set have fewer than k rows: a fold shrinks nothing,
    # so folding at every chunk would sort every row again each time.
    monkeypatch.setattr(metrics, "COMPACT_AT_ROWS", 4)
    folds = []
    top_rows = metrics._top_rows
    monkeypatch.setattr(metrics, "_top_rows", lambda rows, k: folds.append(1) or top_rows(rows, k))
    top_lists = metrics.UserTopLists()
    for i in range(4096):
        top_lists.add(f"user_{i}", 5.0, 1.0, 1.0)
    assert len(folds) <= 2 * np.log2(4096 / 4) + 2
    assert top_lists.means().users == 4096


def test_rating_and_ranking_metrics_share_one_pass():
    # TFMA runs equal MetricComputations once; every metric asks for the same one.
    all_metrics = metrics.RATING_METRICS + metrics.RANKING_METRICS
    assert len({_computations(m())[0] for m in all_metrics}) == 1


def test_through_tfma_a_movie_slice_ranks_only_its_own_movies(tmp_path):
    """The evaluator as the pipeline runs it: raw user ids, slices on a per-movie feature."""
    import tensorflow as tf

    rows = [  # user, movie block, rating, predicted rating
        ("u1", "head", 5.0, 4.0),
        ("u1", "tail", 1.0, 4.5),
        ("u1", "tail", 4.0, 3.0),
        ("u2", "head", 2.0, 4.0),
        ("u2", "head", 4.0, 2.0),
        ("u3", "tail", 1.0, 3.0),
    ]
    path = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for user, block, rating, prediction in rows:
            feature = {
                "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
                "block": tf.train.Feature(bytes_list=tf.train.BytesList(value=[block.encode()])),
                "rating": tf.train.Feature(float_list=tf.train.FloatList(value=[rating])),
                "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[prediction])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="rating", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["block"])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name=m.__name__, module=metrics.__name__)
                    for m in metrics.RATING_METRICS + metrics.RANKING_METRICS
                ]
            )
        ],
    )
    result = tfma.run_model_analysis(
        eval_config=config, data_location=path, output_path=str(tmp_path / "out")
    )
    by_slice = {
        key: {name: value["doubleValue"] for name, value in values[""][""].items()}
        for key, values in result.slicing_metrics
    }
    u1 = _reference([5.0, 1.0, 4.0], [4.0, 4.5, 3.0])
    u2 = _reference([2.0, 4.0], [4.0, 2.0])
    assert by_slice[()]["ndcg_at_10"] == pytest.approx((u1[0] + u2[0]) / 2)
    assert by_slice[()]["ranked_users"] == 2  # u3 has no relevant movie
    assert by_slice[()]["example_count"] == len(rows)
    # The tail slice ranks u1's two tail movies only; u3's has nothing relevant.
    tail = by_slice[(("block", "tail"),)]
    assert tail["ranked_users"] == 1
    assert tail["ndcg_at_10"] == pytest.approx(_reference([1.0, 4.0], [4.5, 3.0])[0])


def test_user_codes_are_the_same_in_every_process_and_tell_users_apart():
    import subprocess
    import sys

    code = "from components import metrics; print(metrics.user_code(b'user_42'))"
    env = dict(os.environ, PYTHONHASHSEED="123")
    other = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(metrics.__file__))),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    assert int(other) == metrics.user_code(b"user_42") == metrics.user_code("user_42")
    codes = {metrics.user_code(f"user_{i}".encode()) for i in range(100_000)}
    assert len(codes) == 100_000
