import types

import numpy as np

from benchmarks import quality
from benchmarks import sparsity
from trainer import model_config


def test_activity_buckets_partition_the_rows_then_cover_all():
    counts = np.array([0, 4, 5, 19, 20, 49, 50, 99, 100, 577])
    buckets = sparsity.activity_buckets(counts)
    labels = [label for label, _ in buckets]
    assert labels == ["0-4", "5-19", "20-49", "50-99", ">= 100", "all"]
    masks = np.array([mask for _, mask in buckets[:-1]])
    assert (masks.sum(axis=0) == 1).all()  # every row in exactly one bucket
    assert buckets[0][1].tolist() == [True, True] + [False] * 8
    assert buckets[4][1].tolist() == [False] * 8 + [True, True]
    assert buckets[-1][1].all()


def test_rmse_of_an_empty_bucket_is_nan_not_an_error():
    assert np.isnan(sparsity.rmse(np.array([]), np.array([])))
    assert sparsity.rmse(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 1.0


def test_each_data_set_compares_its_own_prior_with_a_per_lookup_l2_alone():
    for name, prior in [
        ("ml-100k", model_config.UNIFORM_16X.l2_per_id),
        ("synthetic-large", quality.RECIPES["synthetic-large"].regularization["l2_per_id"]),
    ]:
        rows = sparsity.entries(types.SimpleNamespace(name=name))
        assert [r.overrides for r in rows] == [
            {"early_stopping_patience": 0, **sparsity.PER_LOOKUP_ONLY},
            {"early_stopping_patience": 0},
        ], name
        assert f"l2_per_id {prior:g}" in rows[1].config, name
    # synthetic-1m's recipe turns the prior off: only its own setting is trained.
    (own,) = sparsity.entries(types.SimpleNamespace(name="synthetic-1m"))
    assert "l2_per_id" not in own.config and "l2 0.03" in own.config
