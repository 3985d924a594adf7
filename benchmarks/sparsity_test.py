import numpy as np

from benchmarks import sparsity


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


def test_a_recipe_with_its_own_prior_is_compared_with_ml_100k_regularization():
    assert list(sparsity.regularizations("ml-100k").values()) == [{}]
    large = sparsity.regularizations("synthetic-large")
    assert sparsity.PER_LOOKUP_ONLY in large.values() and {} in large.values()
    assert any("l2_per_id 20" in label for label in large)
