"""Fixtures shared by the tests beside the modules and those in tests/."""

import os
import pathlib
import tempfile

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent


from benchmarks.datasets import movielens_100k_dir  # noqa: E402  the one ML-100K locator


@pytest.fixture
def ml_100k() -> pathlib.Path:
    path = movielens_100k_dir()
    if not (path / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {path} (set MOVIELENS_100K_DIR)")
    return path


def raw_row(user: str, movie: str, rating: float) -> dict:
    return {"user_id": [user.encode()], "movie_id": [movie.encode()], "rating": [rating]}


# Six train rows: by frequency user_b > user_a > user_c and movie_x > movie_y.
TINY_TRAIN = (
    [raw_row("user_b", "movie_x", 4.0)] * 3
    + [raw_row("user_a", "movie_y", 2.0)] * 2
    + [raw_row("user_c", "movie_x", 5.0)]
)


def raw_metadata():
    """TF-Transform metadata of the raw examples: string ids and a float rating."""
    import tensorflow as tf
    from tensorflow_transform.tf_metadata import dataset_metadata
    from tensorflow_transform.tf_metadata import schema_utils

    raw_spec = {
        "user_id": tf.io.FixedLenFeature([1], tf.string),
        "movie_id": tf.io.FixedLenFeature([1], tf.string),
        "rating": tf.io.FixedLenFeature([1], tf.float32),
    }
    return dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))


@pytest.fixture(scope="session")
def tiny_transform(tmp_path_factory):
    """Runs preprocessing_fn with TF-Transform's Beam implementation.

    Returns (transform function, output folder, transformed TINY_TRAIN).
    """
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io

    from components import preprocessing

    metadata = raw_metadata()
    work = str(tmp_path_factory.mktemp("tft"))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=work)):
        (transformed, _), transform_fn = (
            TINY_TRAIN,
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(work)
    # Transform in TFX writes the raw schema too; serving parses with it.
    metadata_io.write_metadata(metadata, os.path.join(work, "metadata"))
    return (transform_fn, metadata), work, transformed


def local_runner_command(*args) -> list:
    """``python local_runner.py ARGS`` with this interpreter."""
    import sys

    return [sys.executable, str(REPO_ROOT / "local_runner.py"), *map(str, args)]


def run_local_runner(*args, env=None, timeout=1200):
    """Runs local_runner.py in a fresh process, as a user would."""
    import subprocess

    return subprocess.run(
        local_runner_command(*args),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_synthetic_ratings(path, num_users, num_movies, num_ratings, seed):
    """A small generated ratings CSV; returns the Ratings written."""
    from components import movielens
    from components import synthetic

    ratings = synthetic.generate_ratings(
        num_users=num_users, num_movies=num_movies, num_ratings=num_ratings, seed=seed
    )
    movielens.write_normalized_csv(ratings, path)
    return ratings


def serialized_examples(pairs, features=("user_id", "movie_id")):
    """Serialized tf.Examples holding the given (user, movie) string ids.

    ``features`` names which of the two to fill, to build examples missing one.
    """
    import tensorflow as tf

    serialized = []
    for user, movie in pairs:
        example = tf.train.Example()
        for name, value in (("user_id", user), ("movie_id", movie)):
            if name in features:
                example.features.feature[name].bytes_list.value.append(value.encode())
        serialized.append(example.SerializeToString())
    return tf.constant(serialized)


def dockerfile_instructions():
    """The Dockerfile's (INSTRUCTION, arguments) pairs: continuations joined, comments dropped."""
    instructions = []
    pending = ""
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions
