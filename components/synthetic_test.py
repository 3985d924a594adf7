"""Tests for the deterministic MovieLens-shaped ratings generator."""

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.movielens import read_ratings
from components.movielens import write_normalized_csv
from components.synthetic import DEFAULT_LATENT_DIM
from components.synthetic import DEFAULT_SPECTRUM_DECAY
from components.synthetic import factor_stds
from components.synthetic import generate_ratings
from components.synthetic import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_ratings():
    return generate_ratings()


def codes(ids: np.ndarray) -> np.ndarray:
    return pd.factorize(ids)[0]


def test_default_shape(default_ratings):
    ratings = default_ratings
    assert ratings.format == "synthetic"
    assert "seed=42" in ratings.source
    assert len(ratings) == 100_000
    assert ratings.num_users == 943
    assert 1600 <= ratings.num_movies <= 1682
    assert ratings.ratings.dtype == np.float32
    assert ratings.user_ids.dtype == object and type(ratings.user_ids[0]) is str
    assert set(ratings.user_ids) == {f"user_{i}" for i in range(1, 944)}
    assert set(ratings.movie_ids) <= {f"movie_{i}" for i in range(1, 1683)}


def test_same_seed_gives_identical_bytes_other_seed_differs(default_ratings, tmp_path):
    again = generate_ratings()
    assert default_ratings.user_ids.tolist() == again.user_ids.tolist()
    assert default_ratings.movie_ids.tolist() == again.movie_ids.tolist()
    assert default_ratings.ratings.tobytes() == again.ratings.tobytes()
    first = write_normalized_csv(default_ratings, tmp_path / "a.csv").read_bytes()
    second = write_normalized_csv(again, tmp_path / "b.csv").read_bytes()
    assert first == second
    other = generate_ratings(seed=43)
    assert write_normalized_csv(other, tmp_path / "c.csv").read_bytes() != first
    assert other.user_ids.tolist() != default_ratings.user_ids.tolist()


def test_every_user_has_the_minimum(default_ratings):
    per_user = np.bincount(codes(default_ratings.user_ids))
    assert per_user.min() >= 20
    small = generate_ratings(
        num_users=50, num_movies=40, num_ratings=600, seed=1, min_ratings_per_user=7
    )
    assert np.bincount(codes(small.user_ids)).min() >= 7


def test_no_duplicate_pairs(default_ratings):
    pairs = set(
        zip(default_ratings.user_ids.tolist(), default_ratings.movie_ids.tolist(), strict=False)
    )
    assert len(pairs) == len(default_ratings)


def test_ratings_are_whole_stars_with_movielens_mean(default_ratings):
    values = default_ratings.ratings
    assert set(np.unique(values).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.45 < values.mean() < 3.6
    shares = np.bincount(values.astype(int), minlength=6)[1:] / len(values)
    assert shares[3] == shares.max()  # 4 stars is the most common, as in MovieLens


def test_popularity_and_activity_are_long_tailed(default_ratings):
    per_movie = np.sort(np.bincount(codes(default_ratings.movie_ids)))[::-1]
    top_tenth = per_movie[: len(per_movie) // 10].sum() / per_movie.sum()
    assert top_tenth > 0.40
    per_user = np.bincount(codes(default_ratings.user_ids))
    assert per_user.max() > 5 * np.median(per_user)
    assert per_user.max() <= 1682


def fit_bias_model(users, movies, values, rounds=10, shrinkage=5.0):
    mean = values.mean()
    user_bias = np.zeros(users.max() + 1)
    movie_bias = np.zeros(movies.max() + 1)
    for _ in range(rounds):
        residual = values - mean - user_bias[users]
        movie_bias = np.bincount(movies, residual, minlength=len(movie_bias)) / (
            np.bincount(movies, minlength=len(movie_bias)) + shrinkage
        )
        residual = values - mean - movie_bias[movies]
        user_bias = np.bincount(users, residual, minlength=len(user_bias)) / (
            np.bincount(users, minlength=len(user_bias)) + shrinkage
        )
    return mean, user_bias, movie_bias


def test_ratings_carry_learnable_signal(default_ratings):
    users, movies = codes(default_ratings.user_ids), codes(default_ratings.movie_ids)
    values = default_ratings.ratings.astype(np.float64)
    order = np.random.default_rng(0).permutation(len(values))
    train, test = order[: int(0.85 * len(values))], order[int(0.85 * len(values)) :]
    mean, user_bias, movie_bias = fit_bias_model(users[train], movies[train], values[train])
    predicted = mean + user_bias[users[test]] + movie_bias[movies[test]]
    rmse_mean = np.sqrt(np.mean((values[test] - mean) ** 2))
    rmse_bias = np.sqrt(np.mean((values[test] - predicted) ** 2))
    assert rmse_bias < 0.9 * rmse_mean, (rmse_bias, rmse_mean)


def test_dense_requests_fill_the_matrix_without_duplicates():
    full = generate_ratings(
        num_users=10, num_movies=12, num_ratings=120, seed=3, min_ratings_per_user=1
    )
    assert len(set(zip(full.user_ids, full.movie_ids, strict=False))) == 120
    dense = generate_ratings(
        num_users=30, num_movies=20, num_ratings=500, seed=4, min_ratings_per_user=5
    )
    assert len(set(zip(dense.user_ids, dense.movie_ids, strict=False))) == 500
    assert np.bincount(codes(dense.user_ids)).min() >= 5


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"num_users": 500_000, "num_movies": 50_000, "num_ratings": 3_000_000}, "at most 6"),
        (
            {"num_users": 10, "num_movies": 10, "num_ratings": 101, "min_ratings_per_user": 1},
            "exceeds the 100",
        ),
        ({"num_users": 10, "num_movies": 10, "min_ratings_per_user": 11}, "exceeds num_movies"),
        ({"num_users": 0}, "positive integer"),
    ],
)
def test_impossible_requests_explain_themselves(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        generate_ratings(**kwargs)


def test_movielens_1m_size_is_fast():
    started = time.perf_counter()
    ratings = generate_ratings(num_users=6040, num_movies=3706, num_ratings=1_000_000)
    elapsed = time.perf_counter() - started
    assert len(ratings) == 1_000_000 and ratings.num_users == 6040
    assert elapsed < 30, f"took {elapsed:.1f}s"


def test_large_vocabularies():
    started = time.perf_counter()
    ratings = generate_ratings(
        num_users=500_000, num_movies=50_000, num_ratings=3_000_000, min_ratings_per_user=5
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"took {elapsed:.1f}s"
    assert len(ratings) == 3_000_000
    users, movies = codes(ratings.user_ids), codes(ratings.movie_ids)
    assert users.max() + 1 == 500_000
    assert len(np.unique(users.astype(np.int64) * 50_000 + movies)) == 3_000_000


def test_cli_writes_readable_normalized_csv(tmp_path, capsys):
    out = tmp_path / "sub" / "ratings.csv"
    assert (
        main(
            [
                "--out",
                str(out),
                "--users",
                "50",
                "--movies",
                "40",
                "--ratings",
                "1000",
                "--seed",
                "7",
                "--min-ratings-per-user",
                "5",
            ]
        )
        == 0
    )
    assert "1,000 ratings" in capsys.readouterr().out
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id,movie_id,rating"
    assert all(line.rsplit(",", 1)[1] in {"1.0", "2.0", "3.0", "4.0", "5.0"} for line in lines[1:])
    back = read_ratings(out)
    expected = generate_ratings(50, 40, 1000, seed=7, min_ratings_per_user=5)
    assert back.user_ids.tolist() == expected.user_ids.tolist()
    assert back.ratings.tolist() == expected.ratings.tolist()


def test_cli_rejects_impossible_request(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--out", str(tmp_path / "r.csv"), "--users", "100", "--ratings", "100"])
    assert caught.value.code == 2
    assert "min_ratings_per_user" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_runs_as_a_module(tmp_path):
    out = tmp_path / "r.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "components.synthetic",
            "--out",
            str(out),
            "--users",
            "20",
            "--movies",
            "30",
            "--ratings",
            "500",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert len(read_ratings(out)) == 500


def digest(ratings) -> str:
    return hashlib.sha256(
        ratings.ratings.tobytes()
        + "|".join(ratings.user_ids).encode()
        + "|".join(ratings.movie_ids).encode()
    ).hexdigest()


def test_flat_rank_10_spectrum_reproduces_the_first_generator():
    # Digest of generate_ratings(50, 40, 1000, seed=7, min_ratings_per_user=5)
    # from the generator before the spectrum knob (commit 78bb227, numpy as pinned).
    ratings = generate_ratings(
        50, 40, 1000, seed=7, min_ratings_per_user=5, spectrum_decay=0, latent_dim=10
    )
    assert digest(ratings) == "a961bda381554b36ae06ca621139dc0a92b5a50ff2c4417b7d53ad9ace16da67"


def test_factor_stds_keep_the_total_and_move_the_split():
    flat = factor_stds(0.0, 10)
    np.testing.assert_allclose(flat, np.full(10, 0.6 / np.sqrt(10)), rtol=0, atol=0)
    for decay, dim in ((0.0, 32), (0.5, 10), (1.0, 32), (3.0, 5)):
        assert np.sum(factor_stds(decay, dim) ** 2) == pytest.approx(0.36)
    decaying = factor_stds(1.0, 32)
    assert np.all(np.diff(decaying) < 0)
    assert decaying[0] ** 2 / 0.36 > 0.5  # the first factor holds most of the variance
    assert decaying[0] / decaying[3] == pytest.approx(4.0)
    assert factor_stds(2.0, 32)[0] > decaying[0] > factor_stds(0.0, 32)[0]


def test_default_spectrum_decays():
    stds = factor_stds(DEFAULT_SPECTRUM_DECAY, DEFAULT_LATENT_DIM)
    assert DEFAULT_SPECTRUM_DECAY > 0 and stds[0] > 2 * stds[-1]


def test_spectrum_is_deterministic_and_changes_the_ratings():
    kwargs = {"num_users": 60, "num_movies": 50, "num_ratings": 1500, "min_ratings_per_user": 5}
    steep = generate_ratings(**kwargs, spectrum_decay=1.5, latent_dim=16)
    assert digest(steep) == digest(generate_ratings(**kwargs, spectrum_decay=1.5, latent_dim=16))
    assert "spectrum_decay=1.5, latent_dim=16" in steep.source
    flat = generate_ratings(**kwargs, spectrum_decay=0, latent_dim=16)
    # Same pairs (drawn before the scores), different stars.
    assert steep.user_ids.tolist() == flat.user_ids.tolist()
    assert steep.ratings.tolist() != flat.ratings.tolist()


def test_steep_spectrum_is_nearly_rank_one():
    # Scores from a steep spectrum are explained by one factor far better
    # than scores from a flat one: compare the top singular value's share of
    # a dense generated matrix (every pair rated, so no sampling noise in
    # which pairs exist).
    def top_share(decay):
        ratings = generate_ratings(
            80, 60, 4800, seed=2, min_ratings_per_user=1, spectrum_decay=decay, latent_dim=10
        )
        matrix = np.zeros((80, 60))
        matrix[codes(ratings.user_ids), codes(ratings.movie_ids)] = ratings.ratings
        matrix -= matrix.mean(axis=1, keepdims=True)
        matrix -= matrix.mean(axis=0, keepdims=True)
        singular = np.linalg.svd(matrix, compute_uv=False)
        return singular[0] ** 2 / np.sum(singular[:10] ** 2)

    assert top_share(3.0) > top_share(0.0) + 0.1


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"spectrum_decay": -0.5}, "spectrum_decay must be a finite number >= 0"),
        ({"spectrum_decay": float("nan")}, "spectrum_decay must be"),
        ({"spectrum_decay": float("inf")}, "spectrum_decay must be"),
        ({"spectrum_decay": "1"}, "spectrum_decay must be"),
        ({"spectrum_decay": True}, "spectrum_decay must be"),
        ({"latent_dim": 0}, "latent_dim must be a positive integer"),
        ({"latent_dim": 2.0}, "latent_dim must be a positive integer"),
    ],
)
def test_bad_spectrum_explains_itself(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        generate_ratings(
            num_users=10, num_movies=10, num_ratings=50, min_ratings_per_user=1, **kwargs
        )


def test_cli_passes_the_spectrum(tmp_path, capsys):
    out = tmp_path / "r.csv"
    args = ["--out", str(out), "--users", "30", "--movies", "40", "--ratings", "700"]
    assert main(args + ["--spectrum-decay", "2", "--latent-dim", "8"]) == 0
    expected = generate_ratings(30, 40, 700, spectrum_decay=2.0, latent_dim=8)
    assert read_ratings(out).ratings.tolist() == expected.ratings.tolist()
    with pytest.raises(SystemExit):
        main(args + ["--spectrum-decay", "-1"])
    assert "spectrum_decay" in capsys.readouterr().err
