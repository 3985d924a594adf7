"""Shared fixtures: small generated data and the real MovieLens-100K path."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def movielens_100k_dir() -> pathlib.Path:
    """../shared/data/ml-100k next to the checkout, or $MOVIELENS_100K_DIR."""
    override = os.environ.get("MOVIELENS_100K_DIR")
    if override:
        return pathlib.Path(override)
    return REPO_ROOT.parent / "shared" / "data" / "ml-100k"


@pytest.fixture
def ml_100k():
    path = movielens_100k_dir()
    if not (path / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {path} (set MOVIELENS_100K_DIR)")
    return path
