"""The ``md_layouts`` rows of ``benchmarks.quality``: does widening active ids beat a uniform table?

The premise of mixed-dimension embeddings is that a rare id cannot use many
dimensions, so its share of the budget is better spent widening popular
ids. These rows test it at 16x fewer parameters than full 64-d tables, with
layouts that move capacity to active ids by different amounts, each
trained like the quality group's compressed rows and compared with the
plain 4-d table:

- ``md_preset`` (``md_16x``) and ``md_alpha_0.3``, the temperature the MD
  paper's experiments favour;
- ``per_count``: one dimension per ``k`` train ratings, 1 to
  ``PER_COUNT_MAX_DIM``, with ``k`` the smallest that fits the budget;
- ``threshold``: ids with at least ``THRESHOLD_COUNT`` train ratings share
  one width, the rest get narrower rows with what is left.

Layouts other than the presets are explicit MD specs (``block_sizes`` and
``dims`` over the frequency-sorted ids, nested projections), sized against
one budget shared by the user and movie tables.

    python -m benchmarks.quality --group md_layouts
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np

from benchmarks import datasets
from benchmarks import quality
from benchmarks import training
from components import features

BUDGET = 16
PER_COUNT_MAX_DIM = 8
THRESHOLD_COUNT = 20


def table_dims(counts: Sequence[int], dim_of_count: Callable[[np.ndarray], np.ndarray]):
    """One dim per row of a table: its vocabulary ids, then the OOV rows (count 0)."""
    rows = np.concatenate(
        [np.asarray(counts, dtype=np.float64), np.zeros(features.NUM_OOV_BUCKETS)]
    )
    return dim_of_count(rows).astype(int)


def table_spec(dims: np.ndarray) -> dict:
    """An MD spec whose blocks are the runs of equal dims (ids are frequency-sorted)."""
    sizes, widths = [], []
    for d in dims.tolist():
        if widths and widths[-1] == d:
            sizes[-1] += 1
        else:
            sizes.append(1)
            widths.append(d)
    if len(widths) == 1:
        return {"type": "full"}
    return {"type": "md", "block_sizes": sizes, "dims": widths, "projection": "nested"}


def per_count_dims(k: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda counts: np.clip(np.floor(counts / k + 0.5), 1, PER_COUNT_MAX_DIM)


def threshold_dims(width: int, tail: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda counts: np.where(counts >= THRESHOLD_COUNT, width, tail)


def _cost(data: datasets.PreparedData, dim_of_count) -> int:
    return int(
        table_dims(data.user_counts, dim_of_count).sum()
        + table_dims(data.movie_counts, dim_of_count).sum()
    )


def per_count_layout(data: datasets.PreparedData, budget: int):
    """The smallest k (ratings per dim) whose layout fits ``budget``, by bisection."""
    low, high = 1e-3, 1e7  # k = 1e7 gives every id 1 dim
    if _cost(data, per_count_dims(high)) > budget:
        raise ValueError(f"{data.name}: even 1 dim per id exceeds {budget:,} parameters")
    for _ in range(200):
        middle = (low * high) ** 0.5
        if _cost(data, per_count_dims(middle)) > budget:
            low = middle
        else:
            high = middle
    return per_count_dims(high), f"1 dim per {high:.1f} train ratings, 1 to {PER_COUNT_MAX_DIM}"


def threshold_layout(data: datasets.PreparedData, budget: int):
    """The widest shared width for active ids, then the widest tail that still fits."""
    fitting = [w for w in range(1, 65) if _cost(data, threshold_dims(w, 1)) <= budget]
    if not fitting:
        raise ValueError(f"{data.name}: even 1 dim per id exceeds {budget:,} parameters")
    width = max(fitting)
    tail = max(t for t in range(1, width + 1) if _cost(data, threshold_dims(width, t)) <= budget)
    return threshold_dims(width, tail), (
        f"{width} dims for ids with >= {THRESHOLD_COUNT} train ratings, {tail} for the rest"
    )


def entries(data: datasets.PreparedData) -> list[quality.Entry]:
    """Every layout on ``data``, the uniform table first; each compared with it."""
    rows = {e.config: e.model for e in quality.entries([BUDGET])}
    uniform, md = rows[f"uniform_{BUDGET}x"], rows[f"md_{BUDGET}x"]
    budget = training.full_table_params(data, quality.REFERENCE_DIM) // BUDGET
    alpha_03 = md.replace(
        user_embedding={**md.user_embedding, "alpha": 0.3},
        movie_embedding={**md.movie_embedding, "alpha": 0.3},
    )
    out = [
        quality.Entry("uniform", uniform, what="plain 4-d tables"),
        quality.Entry(
            "md_preset", md, what=f"preset md_{BUDGET}x (alpha {md.user_embedding['alpha']})"
        ),
        quality.Entry("md_alpha_0.3", alpha_03, what=f"md_{BUDGET}x with alpha 0.3"),
    ]
    for name, build in (("per_count", per_count_layout), ("threshold", threshold_layout)):
        dim_of_count, description = build(data, budget)
        user_dims = table_dims(data.user_counts, dim_of_count)
        movie_dims = table_dims(data.movie_counts, dim_of_count)
        config = uniform.replace(
            name=name,
            embedding_dim=int(max(user_dims.max(), movie_dims.max())),
            user_embedding=table_spec(user_dims),
            movie_embedding=table_spec(movie_dims),
        )
        out.append(quality.Entry(name, config, what=description))
    return [
        dataclasses.replace(e, versus="uniform" if e.config != "uniform" else None) for e in out
    ]
