"""The layouts of benchmarks/md_layouts.py fit their budget and become valid MD specs."""

import types

import numpy as np
import pytest

from benchmarks import md_layouts
from components import features
from trainer import embeddings

OOV = features.NUM_OOV_BUCKETS


def _data(user_counts, movie_counts):
    return types.SimpleNamespace(name="toy", user_counts=user_counts, movie_counts=movie_counts)


def _toy():
    rng = np.random.default_rng(0)
    users = sorted((rng.zipf(1.6, 300) + 2).tolist(), reverse=True)
    movies = sorted((rng.zipf(1.4, 200)).tolist(), reverse=True)
    return _data(users, movies)


def test_table_spec_blocks_are_the_runs_of_equal_dims():
    spec = md_layouts.table_spec(np.array([5, 5, 3, 3, 3, 1]))
    assert spec == {
        "type": "md",
        "block_sizes": [2, 3, 1],
        "dims": [5, 3, 1],
        "projection": "nested",
    }
    assert md_layouts.table_spec(np.array([4, 4, 4])) == {"type": "full"}


@pytest.mark.parametrize("layout", [md_layouts.per_count_layout, md_layouts.threshold_layout])
def test_layouts_fill_but_never_exceed_the_shared_budget(layout):
    data = _toy()
    rows = len(data.user_counts) + len(data.movie_counts) + 2 * OOV
    budget = rows * 3
    dim_of_count, description = layout(data, budget)
    user = md_layouts.table_dims(data.user_counts, dim_of_count)
    movie = md_layouts.table_dims(data.movie_counts, dim_of_count)
    used = int(user.sum() + movie.sum())
    assert used <= budget
    # Nearly all of it: one more dim for the widest ids would not fit.
    assert used > budget * 0.9, description
    # Frequency-sorted ids: dims never grow towards the tail; OOV rows get the least.
    for dims in (user, movie):
        assert np.all(np.diff(dims) <= 0) and dims[-1] == dims.min() >= 1
    # The layout builds as an MD table of exactly those parameters.
    layer = embeddings.build_embedding(
        md_layouts.table_spec(movie), data.movie_counts, OOV, int(movie.max()), "movie"
    )
    layer.build()
    assert layer.count_params() == movie.sum()


def test_threshold_layout_gives_active_ids_one_width():
    data = _toy()
    dim_of_count, _ = md_layouts.threshold_layout(data, 10_000)
    dims = dim_of_count(np.array([md_layouts.THRESHOLD_COUNT, 1000.0, 0.0]))
    assert dims[0] == dims[1] > dims[2]


def test_a_budget_below_one_dim_per_id_is_an_error():
    data = _toy()
    with pytest.raises(ValueError, match="1 dim per id"):
        md_layouts.per_count_layout(data, 10)
    with pytest.raises(ValueError, match="1 dim per id"):
        md_layouts.threshold_layout(data, 10)


def test_every_layout_is_compared_with_the_uniform_table():
    rows = md_layouts.entries(_toy())
    assert [e.config for e in rows] == [
        "uniform",
        "md_preset",
        "md_alpha_0.3",
        "per_count",
        "threshold",
    ]
    assert [e.versus for e in rows] == [None] + ["uniform"] * 4
    assert rows[2].model.user_embedding["alpha"] == 0.3
