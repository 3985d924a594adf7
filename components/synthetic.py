"""Deterministic MovieLens-shaped ratings, the pipeline's built-in default data.

The shape follows ML-100K: user activity is long-tailed above a floor of
``min_ratings_per_user``, movie popularity is Zipf-like, no (user, movie) pair
repeats, and ratings are whole stars 1..5 with ML-100K's histogram (mean
about 3.53). Each rating comes from a latent score: user bias + movie bias
(more popular movies score a little higher, as in MovieLens) + a low-rank
user/movie interaction + noise, cut into stars at the quantiles of that
histogram. Biases alone explain part of the variance and the interaction
another part, so both a bias baseline and a factorisation model have
something real to learn, and neither can reach zero error.

The interaction's strength is spread over its ``latent_dim`` factors by a
power law: factor k (0-based) has a standard deviation proportional to
``(k + 1) ** -spectrum_decay``, rescaled so that the interaction's total
variance is the same at every decay (only its split over the factors moves).
The first generator used ``spectrum_decay=0`` with 10 factors: ten equally
strong factors. Real rating matrices are not like that: a few factors carry
most of the signal and a long tail of weak ones the rest, so on ML-100K a
narrow table comes close to a 64-d one, while on the flat spectrum it lost
far more (``benchmarks/results/calibration.md``), and any comparison of
narrow or compressed tables on generated data measured the spectrum more
than the technique. A power law
rather than a geometric decay because singular values of real rating
matrices fall off slowly, with a heavy tail, where a geometric series leaves
the tail negligible after a few factors; ``latent_dim`` gives that tail
room. The default, decay 0.5 over 32 factors (factor k's variance falls as
``1 / (k + 1)``), is calibrated with ``python -m benchmarks.quality --group calibration``:
of the decays it tried (0.25 to 2), it best matches ML-100K's RMSE gaps
between a full 64-d model and 8-, 4- and 2-d tables
(``benchmarks/results/calibration.md``). ``spectrum_decay=0`` with
``latent_dim=10`` reproduces the first generator exactly.

Everything is vectorised numpy drawn from one ``np.random.default_rng(seed)``
in a fixed order, so a seed always gives identical output (for a given
numpy version).

CLI::

    python -m components.synthetic --out data/ratings.csv \\
        [--users N --movies N --ratings N --seed S --min-ratings-per-user N] \\
        [--spectrum-decay D --latent-dim K]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from components.movielens import MOVIE_PREFIX
from components.movielens import USER_PREFIX
from components.movielens import Ratings
from components.movielens import write_normalized_csv

# Share of each star value in ML-100K, 1 to 5.
MOVIELENS_STAR_SHARES = np.array([0.0611, 0.1137, 0.27145, 0.34174, 0.21201])

# Calibrated against ML-100K (module docstring); 0 is the first generator's flat spectrum.
DEFAULT_SPECTRUM_DECAY = 0.5
DEFAULT_LATENT_DIM = 32
_USER_BIAS_STD = 0.4
_MOVIE_BIAS_STD = 0.5
_INTERACTION_STD = 0.6
_NOISE_STD = 0.7
# How strongly a movie's bias follows its popularity (a correlation).
_POPULARITY_BIAS_CORRELATION = 0.5
# Spread of user activity above the floor; ML-100K's mean/median ratio of
# about 1.9 matches a log-normal with sigma near 1.1.
_ACTIVITY_SIGMA = 1.1
# No user rates more than this share of the catalogue unless the requested
# density forces it (ML-100K's busiest user rated 44%, ML-1M's 62%).
_MAX_SHARE_PER_USER = 0.6
# Popularity falls as (rank + head)^-exponent; the head offset keeps the top
# movies from being rated by nearly every user (ML-100K's most rated movie
# has 62% of users) while the tail stays Zipf-like.
_POPULARITY_EXPONENT = 1.4
_POPULARITY_HEAD = 40
_POPULARITY_JITTER = 0.3
# Pair sampling rounds before the few users still short are sampled exactly.
_SAMPLING_ROUNDS = 8
_SCORE_CHUNK = 1_000_000


def generate_ratings(
    num_users: int = 943,
    num_movies: int = 1682,
    num_ratings: int = 100_000,
    seed: int = 42,
    min_ratings_per_user: int = 20,
    *,
    spectrum_decay: float = DEFAULT_SPECTRUM_DECAY,
    latent_dim: int = DEFAULT_LATENT_DIM,
) -> Ratings:
    """Generate ``num_ratings`` distinct (user, movie) ratings; format "synthetic".

    Every one of the ``num_users`` users gets at least ``min_ratings_per_user``
    ratings (so all appear); movies with very low popularity may get none.
    Ids are "user_1".."user_N" and "movie_1".."movie_M"; rows are shuffled.
    The interaction has ``latent_dim`` factors whose standard deviations fall
    as ``(k + 1) ** -spectrum_decay`` (see ``factor_stds``).
    """
    _check_arguments(num_users, num_movies, num_ratings, min_ratings_per_user)
    stds = factor_stds(spectrum_decay, latent_dim)
    rng = np.random.default_rng(seed)
    per_user = _ratings_per_user(rng, num_users, num_movies, num_ratings, min_ratings_per_user)
    popularity = _movie_popularity(rng, num_movies)
    users, movies = _sample_pairs(rng, per_user, popularity)
    stars = _stars(rng, users, movies, num_users, popularity, stds)
    order = rng.permutation(len(users))
    users, movies, stars = users[order], movies[order], stars[order]
    user_names = np.array([f"{USER_PREFIX}{i}" for i in range(1, num_users + 1)], dtype=object)
    movie_names = np.array([f"{MOVIE_PREFIX}{i}" for i in range(1, num_movies + 1)], dtype=object)
    return Ratings(
        user_ids=user_names[users],
        movie_ids=movie_names[movies],
        ratings=stars.astype(np.float32),
        source=(
            f"synthetic(num_users={num_users}, num_movies={num_movies}, "
            f"num_ratings={num_ratings}, seed={seed}, min_ratings_per_user={min_ratings_per_user}, "
            f"spectrum_decay={spectrum_decay:g}, latent_dim={latent_dim})"
        ),
        format="synthetic",
    )


def factor_stds(spectrum_decay: float, latent_dim: int) -> np.ndarray:
    """Standard deviation of each interaction factor's contribution to the score.

    Proportional to ``(k + 1) ** -spectrum_decay`` for factor k = 0, 1, ...;
    the squares sum to ``_INTERACTION_STD ** 2`` at every decay and rank.
    """
    if (
        isinstance(spectrum_decay, bool)
        or not isinstance(spectrum_decay, (int, float, np.integer, np.floating))
        or not np.isfinite(spectrum_decay)
        or spectrum_decay < 0
    ):
        raise ValueError(
            f"spectrum_decay must be a finite number >= 0 (0 = equally strong factors), "
            f"got {spectrum_decay!r}"
        )
    if (
        isinstance(latent_dim, bool)
        or not isinstance(latent_dim, (int, np.integer))
        or latent_dim < 1
    ):
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    weights = (np.arange(latent_dim) + 1.0) ** -float(spectrum_decay)
    # Evaluated in this order so that a flat spectrum gives exactly the first
    # generator's per-factor std, _INTERACTION_STD / sqrt(latent_dim).
    return _INTERACTION_STD * weights / np.sqrt(np.sum(weights**2))


def _check_arguments(num_users, num_movies, num_ratings, min_per_user) -> None:
    for name, value in (
        ("num_users", num_users),
        ("num_movies", num_movies),
        ("num_ratings", num_ratings),
        ("min_ratings_per_user", min_per_user),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if min_per_user > num_movies:
        raise ValueError(
            f"min_ratings_per_user={min_per_user} exceeds num_movies={num_movies}: "
            "a user cannot rate a movie twice"
        )
    if num_ratings < num_users * min_per_user:
        raise ValueError(
            f"num_ratings={num_ratings:,} cannot give each of {num_users:,} users "
            f"{min_per_user} ratings ({num_users * min_per_user:,} needed); lower "
            f"min_ratings_per_user to at most {num_ratings // num_users} or raise num_ratings"
        )
    if num_ratings > num_users * num_movies:
        raise ValueError(
            f"num_ratings={num_ratings:,} exceeds the {num_users * num_movies:,} "
            "distinct (user, movie) pairs"
        )


def _ratings_per_user(rng, num_users, num_movies, num_ratings, min_per_user) -> np.ndarray:
    weights = rng.lognormal(0.0, _ACTIVITY_SIGMA, num_users)
    cap = max(min_per_user, int(np.ceil(_MAX_SHARE_PER_USER * num_movies)))
    if num_ratings > num_users * cap:
        cap = num_movies
    counts = min_per_user + rng.multinomial(
        num_ratings - num_users * min_per_user, weights / weights.sum()
    )
    # Hand what exceeds the cap to users with room, by weight, then greedily
    # if a dense request still leaves some over.
    for _ in range(20):
        excess = np.maximum(counts - cap, 0)
        if not excess.any():
            return counts
        counts -= excess
        room = weights * (counts < cap)
        counts += rng.multinomial(excess.sum(), room / room.sum())
    excess = np.maximum(counts - cap, 0).sum()
    counts = np.minimum(counts, cap)
    room = cap - counts
    already_given = np.cumsum(room) - room
    counts += np.clip(excess - already_given, 0, room)
    return counts


def _movie_popularity(rng, num_movies) -> np.ndarray:
    ranks = rng.permutation(num_movies) + 1.0
    jitter = rng.lognormal(0.0, _POPULARITY_JITTER, num_movies)
    weights = (ranks + _POPULARITY_HEAD) ** -_POPULARITY_EXPONENT * jitter
    return weights / weights.sum()


def _sample_pairs(
    rng, per_user: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's movies, drawn by popularity without replacement.

    Draws with replacement in bulk and keeps each user's first distinct
    movies, which is exactly sequential sampling without replacement; users
    still short draw again, oversampling more each round.
    """
    num_movies = len(popularity)
    cumulative = np.cumsum(popularity)
    cumulative /= cumulative[-1]
    chosen = np.empty(0, dtype=np.int64)  # sorted user * num_movies + movie
    short = per_user.astype(np.int64)
    for round_number in range(_SAMPLING_ROUNDS):
        if not short.any():
            break
        oversampled = np.minimum(np.ceil(short * (1.5 * 2**round_number)) + 8, 20 * num_movies)
        draws_per_user = np.where(short > 0, oversampled, 0).astype(np.int64)
        users = np.repeat(np.arange(len(per_user), dtype=np.int64), draws_per_user)
        movies = np.searchsorted(cumulative, rng.random(len(users)), side="right")
        movies = np.minimum(movies, num_movies - 1)  # guards against rounding at the top
        keys = users * num_movies + movies
        if len(chosen):
            at = np.minimum(np.searchsorted(chosen, keys), len(chosen) - 1)
            keys = keys[chosen[at] != keys]
        distinct, first_seen = np.unique(keys, return_index=True)
        # Rank each user's new movies by when they were first drawn.
        order = np.lexsort((first_seen, distinct // num_movies))
        distinct = distinct[order]
        owners = distinct // num_movies
        group_start = np.searchsorted(owners, owners, side="left")
        rank = np.arange(len(distinct)) - group_start
        chosen = np.union1d(chosen, distinct[rank < short[owners]])
        short = per_user - np.bincount(chosen // num_movies, minlength=len(per_user))
    for user in np.flatnonzero(short):
        # Rare: a user rating most of the catalogue needs its unpopular tail.
        taken = chosen[(chosen // num_movies) == user] % num_movies
        free = np.setdiff1d(np.arange(num_movies), taken)
        weights = popularity[free] / popularity[free].sum()
        picked = rng.choice(free, size=short[user], replace=False, p=weights)
        chosen = np.union1d(chosen, user * num_movies + picked)
    return chosen // num_movies, chosen % num_movies


def _stars(rng, users, movies, num_users, popularity, stds) -> np.ndarray:
    num_movies = len(popularity)
    user_bias = rng.normal(0.0, _USER_BIAS_STD, num_users)
    log_popularity = np.log(popularity)
    popularity_z = (log_popularity - log_popularity.mean()) / (log_popularity.std() or 1.0)
    movie_bias = _MOVIE_BIAS_STD * (
        _POPULARITY_BIAS_CORRELATION * popularity_z
        + np.sqrt(1 - _POPULARITY_BIAS_CORRELATION**2) * rng.standard_normal(num_movies)
    )
    # Same draws as rng.normal(0, std, ...), which the first generator used.
    user_factors = (rng.standard_normal((num_users, len(stds))) * stds).astype(np.float32)
    movie_factors = rng.standard_normal((num_movies, len(stds))).astype(np.float32)
    scores = user_bias[users] + movie_bias[movies] + rng.normal(0.0, _NOISE_STD, len(users))
    for start in range(0, len(users), _SCORE_CHUNK):
        part = slice(start, start + _SCORE_CHUNK)
        scores[part] += np.einsum(
            "ij,ij->i", user_factors[users[part]], movie_factors[movies[part]]
        )
    cut_points = np.quantile(scores, np.cumsum(MOVIELENS_STAR_SHARES)[:-1])
    return 1 + np.searchsorted(cut_points, scores, side="right")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.synthetic",
        description="Write deterministic MovieLens-shaped ratings as user_id,movie_id,rating CSV.",
    )
    parser.add_argument("--out", required=True, help="CSV file to write (folders are created)")
    parser.add_argument("--users", type=int, default=943, help="number of users (default: 943)")
    parser.add_argument("--movies", type=int, default=1682, help="number of movies (default: 1682)")
    parser.add_argument(
        "--ratings", type=int, default=100_000, help="number of ratings (default: 100000)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--min-ratings-per-user",
        type=int,
        default=20,
        help="floor on each user's ratings (default: 20)",
    )
    parser.add_argument(
        "--spectrum-decay",
        type=float,
        default=DEFAULT_SPECTRUM_DECAY,
        help="factor k's std falls as (k+1)^-D; 0 = equally strong factors (default: %(default)s)",
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=DEFAULT_LATENT_DIM,
        help="interaction factors (default: %(default)s; the first generator: "
        "--spectrum-decay 0 --latent-dim 10)",
    )
    args = parser.parse_args(argv)
    try:
        ratings = generate_ratings(
            args.users,
            args.movies,
            args.ratings,
            args.seed,
            args.min_ratings_per_user,
            spectrum_decay=args.spectrum_decay,
            latent_dim=args.latent_dim,
        )
    except ValueError as error:
        parser.error(str(error))
    path = write_normalized_csv(ratings, args.out)
    print(
        f"wrote {len(ratings):,} ratings ({args.users:,} users, {ratings.num_movies:,} movies "
        f"rated) to {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
