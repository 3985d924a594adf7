"""The benchmark data sets, split and indexed the way the pipeline's Transform does it.

Each data set gets one deterministic 85/15 train/eval split. Ids are ranked by
their train-split frequency (most frequent first, ties by id), so index 0 is the
most popular id, as in the Transform vocabularies; ids that never occur in the
train split map to the single out-of-vocabulary index, the vocabulary size.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from components import movielens
from components import synthetic

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def movielens_100k_dir() -> pathlib.Path:
    """../shared/data/ml-100k next to the checkout, or $MOVIELENS_100K_DIR (tests use it too)."""
    override = os.environ.get("MOVIELENS_100K_DIR")
    if override:
        return pathlib.Path(override)
    return REPO_ROOT.parent / "shared" / "data" / "ml-100k"


TRAIN_FRACTION = 0.85
SPLIT_SEED = 0


class DatasetUnavailable(RuntimeError):
    """The data set's files are not on this machine."""


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedData:
    """One split of one data set, as integer indices ready for the model."""

    name: str
    source: str
    train_users: np.ndarray
    train_movies: np.ndarray
    train_ratings: np.ndarray
    eval_users: np.ndarray
    eval_movies: np.ndarray
    eval_ratings: np.ndarray
    # Train-split frequency of each vocabulary id, most frequent first.
    user_counts: list[int]
    movie_counts: list[int]

    @property
    def mean_rating(self) -> float:
        return float(self.train_ratings.mean(dtype=np.float64))

    @property
    def num_train(self) -> int:
        return len(self.train_ratings)

    @property
    def num_eval(self) -> int:
        return len(self.eval_ratings)

    def describe(self) -> str:
        oov_users = float(np.mean(self.eval_users == len(self.user_counts)))
        oov_movies = float(np.mean(self.eval_movies == len(self.movie_counts)))
        return (
            f"{self.name}: {self.num_train:,} train / {self.num_eval:,} eval ratings, "
            f"{len(self.user_counts):,} users, {len(self.movie_counts):,} movies in the train "
            f"vocabularies; eval rows with an unseen user {oov_users:.2%}, movie {oov_movies:.2%}"
        )


def _movielens_100k() -> movielens.Ratings:
    folder = movielens_100k_dir()
    if not (folder / "u.data").is_file():
        raise DatasetUnavailable(
            f"ML-100K not found at {folder} (no u.data); set MOVIELENS_100K_DIR to its folder"
        )
    return movielens.read_ratings(folder)


def _ml_100k_shaped(**spectrum) -> Callable[[], movielens.Ratings]:
    return functools.partial(synthetic.generate_ratings, 943, 1682, 100_000, **spectrum)


# The calibration group's ML-100K-shaped sets: the first generator's flat
# rank-10 spectrum, then factor strengths falling as (k + 1) ** -decay.
CALIBRATION_SETS = ("synthetic-100k-flat",) + tuple(
    f"synthetic-100k-decay-{d:g}" for d in (0.25, 0.5, 0.75, 1, 1.5, 2)
)

# The extreme-compression group's large sets (benchmarks.quality --group extreme).
EXTREME_SETS = ("synthetic-factors", "synthetic-signal", "synthetic-wide", "synthetic-wide-dense")

# name -> how its ratings are made
DATASETS: dict[str, Callable[[], movielens.Ratings]] = {
    "ml-100k": _movielens_100k,
    "synthetic-1m": lambda: synthetic.generate_ratings(6040, 3706, 1_000_000),
    # A floor of 1 rating keeps the generator's long tail of users, most with
    # a handful of ratings, as in a real log of that many users.
    "synthetic-large": lambda: synthetic.generate_ratings(
        500_000, 50_000, 3_000_000, min_ratings_per_user=1
    ),
    # A vocabulary 14x ML-100K's whose ids carry signal (20 ratings per user
    # on average, 10 at least), sized for the extreme group's run time on 2
    # cores, and a wide one of 1M users, most with a handful.
    "synthetic-signal": lambda: synthetic.generate_ratings(
        30_000, 6_000, 600_000, min_ratings_per_user=10
    ),
    "synthetic-wide": lambda: synthetic.generate_ratings(
        1_000_000, 20_000, 3_000_000, min_ratings_per_user=1
    ),
    # A million users whose ids carry signal: synthetic-wide's 3 ratings a user
    # leave a user's taste unlearnable; 10 at least and synthetic-factors'
    # steeper spectrum let the full model clearly beat biases only.
    "synthetic-wide-dense": lambda: synthetic.generate_ratings(
        1_000_000, 20_000, 10_000_000, min_ratings_per_user=10, spectrum_decay=1.0
    ),
    # Where synthetic-signal's ids carry little beyond their biases: twice the
    # ratings per user and a steeper spectrum (a few strong factors the
    # users' ratings can pin down), so the full model clearly beats biases
    # only (the margin: benchmarks/README.md, results/extreme.json).
    "synthetic-factors": lambda: synthetic.generate_ratings(
        30_000, 6_000, 1_200_000, min_ratings_per_user=20, spectrum_decay=1.0
    ),
    "synthetic-100k-flat": _ml_100k_shaped(spectrum_decay=0.0, latent_dim=10),
    **{
        name: _ml_100k_shaped(spectrum_decay=float(name.split("-")[-1]))
        for name in CALIBRATION_SETS[1:]
    },
}


def frequency_ranks(ids: np.ndarray, train_rows: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Index of every row's id and the vocabulary counts, as Transform computes them.

    Returns ``(indices, counts)``: ``indices[i]`` is the rank of ``ids[i]`` by
    train-split frequency (0 = most frequent, ties broken by id), or
    ``len(counts)`` for an id absent from the train split; ``counts`` holds the
    train frequency of each rank, descending.
    """
    codes, uniques = pd.factorize(ids)
    train_counts = np.bincount(codes[train_rows], minlength=len(uniques))
    # Sort by count descending, then by the id itself, for a deterministic order.
    order = np.lexsort((np.argsort(np.argsort(np.asarray(uniques, dtype=str))), -train_counts))
    order = order[train_counts[order] > 0]
    vocab_size = len(order)
    rank_of_code = np.full(len(uniques), vocab_size, dtype=np.int64)
    rank_of_code[order] = np.arange(vocab_size)
    return rank_of_code[codes], train_counts[order].tolist()


def split_rows(num_rows: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic shuffled 85/15 split: (train row numbers, eval row numbers)."""
    order = np.random.default_rng(seed).permutation(num_rows)
    cut = int(round(TRAIN_FRACTION * num_rows))
    return order[:cut], order[cut:]


def prepare(ratings: movielens.Ratings, name: str) -> PreparedData:
    train_rows, eval_rows = split_rows(len(ratings))
    users, user_counts = frequency_ranks(ratings.user_ids, train_rows)
    movies, movie_counts = frequency_ranks(ratings.movie_ids, train_rows)
    labels = ratings.ratings.astype(np.float32)
    return PreparedData(
        name=name,
        source=ratings.source,
        train_users=users[train_rows],
        train_movies=movies[train_rows],
        train_ratings=labels[train_rows],
        eval_users=users[eval_rows],
        eval_movies=movies[eval_rows],
        eval_ratings=labels[eval_rows],
        user_counts=user_counts,
        movie_counts=movie_counts,
    )


def load(name: str) -> PreparedData:
    """The prepared split of a data set in ``DATASETS``.

    Raises:
      KeyError: unknown name.
      DatasetUnavailable: the data set's files are missing.
    """
    return prepare(DATASETS[name](), name)
