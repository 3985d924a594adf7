"""Tests for reading, writing and downloading MovieLens ratings."""

import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from components import movielens
from components.movielens import DATASETS
from components.movielens import DownloadError
from components.movielens import Ratings
from components.movielens import RatingsFormatError
from components.movielens import download_movielens
from components.movielens import find_ratings_file
from components.movielens import read_ratings
from components.movielens import write_normalized_csv
from conftest import movielens_100k_dir

REAL_100K = movielens_100k_dir()

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def format_error(path: Path, **kwargs) -> RatingsFormatError:
    with pytest.raises(RatingsFormatError) as caught:
        read_ratings(path, **kwargs)
    error = caught.value
    assert error.path == str(path)
    assert str(path) in str(error)
    return error


def assert_same(left: Ratings, right: Ratings):
    assert left.user_ids.tolist() == right.user_ids.tolist()
    assert left.movie_ids.tolist() == right.movie_ids.tolist()
    assert left.ratings.tolist() == right.ratings.tolist()


# --- the formats ------------------------------------------------------------


def test_reads_100k_u_data(tmp_path):
    path = write(tmp_path / "u.data", U_DATA)
    ratings = read_ratings(tmp_path)
    assert ratings.format == "100k"
    assert ratings.source == str(path)
    assert ratings.user_ids.tolist() == ["user_196", "user_186", "user_22"]
    assert ratings.movie_ids.tolist() == ["movie_242", "movie_302", "movie_377"]
    assert ratings.ratings.dtype == np.float32
    assert ratings.ratings.tolist() == [3.0, 3.0, 1.0]
    assert all(type(user) is str for user in ratings.user_ids)
    assert (len(ratings), ratings.num_users, ratings.num_movies) == (3, 3, 3)


def test_reads_1m_ratings_dat(tmp_path):
    write(tmp_path / "ml-1m" / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    ratings = read_ratings(tmp_path / "ml-1m")
    assert ratings.format == "1m"
    assert ratings.user_ids.tolist() == ["user_1", "user_1"]
    assert ratings.movie_ids.tolist() == ["movie_1193", "movie_661"]
    assert ratings.ratings.tolist() == [5.0, 3.0]


def test_reads_10m_half_stars_by_folder_name(tmp_path):
    write(tmp_path / "ml-10M100K" / "ratings.dat", "1::122::5::838985046\n2::185::3.5::838983525\n")
    ratings = read_ratings(tmp_path / "ml-10M100K")
    assert ratings.format == "10m"
    assert ratings.ratings.tolist() == [5.0, 3.5]


@pytest.mark.parametrize(
    "name, text, fmt, users, movies, stars",
    [
        (
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n",
            "csv",
            ["user_1", "user_1"],
            ["movie_1", "movie_3"],
            [4.0, 0.5],
        ),
        (  # any column order, extra columns ignored
            "mine.csv",
            "rating,timestamp,movie_id,user_id\n4.5,1,movie_9,user_7\n2.0,,movie_8,user_7\n",
            "normalized",
            ["user_7", "user_7"],
            ["movie_9", "movie_8"],
            [4.5, 2.0],
        ),
    ],
)
def test_reads_grouplens_and_normalized_csv(tmp_path, name, text, fmt, users, movies, stars):
    ratings = read_ratings(write(tmp_path / name, text))
    assert ratings.format == fmt
    assert ratings.user_ids.tolist() == users
    assert ratings.movie_ids.tolist() == movies
    assert ratings.ratings.tolist() == stars


def test_find_ratings_file_names_the_file_and_its_format(tmp_path):
    write(tmp_path / "u.data", U_DATA)
    assert find_ratings_file(tmp_path) == (tmp_path / "u.data", "100k")
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    assert find_ratings_file(tmp_path / "ratings.csv") == (tmp_path / "ratings.csv", "csv")
    write(tmp_path / "u1.base", U_DATA)
    assert find_ratings_file(tmp_path / "u1.base") == (tmp_path / "u1.base", "100k")


def test_missing_path_is_file_not_found(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere.*u.data"):
        read_ratings(missing)


def test_folder_without_ratings_lists_what_was_looked_for_and_suggests_subfolder(tmp_path):
    write(tmp_path / "ml-100k" / "u.data", U_DATA)
    with pytest.raises(FileNotFoundError) as caught:
        find_ratings_file(tmp_path)
    message = str(caught.value)
    for expected in (
        str(tmp_path),
        "u.data",
        "ratings.dat",
        "ratings.csv",
        str(tmp_path / "ml-100k"),
    ):
        assert expected in message


def test_unrecognised_file_name_is_value_error(tmp_path):
    path = write(tmp_path / "ratings.txt", U_DATA)
    with pytest.raises(ValueError, match="ratings.txt.*unrecognised"):
        read_ratings(path)


def test_csv_with_unknown_header_names_both_expected_headers(tmp_path):
    path = write(tmp_path / "ratings.csv", "a,b,c\n1,2,3\n")
    error = format_error(path)
    assert error.line == 1
    assert "userId,movieId,rating" in str(error) and "user_id,movie_id,rating" in str(error)


# --- validation ---------------------------------------------------------------

# (file name, content, line, field, fragment of the message)
# The GroupLens CSV header.
GL = "userId,movieId,rating,timestamp\n"
BAD_FILES = [
    ("u.data", "", None, None, "file is empty"),
    ("u.data", "\ufeff\n\n", None, None, "file is empty"),
    ("ratings.csv", GL, None, None, "no ratings"),
    ("ratings.csv", GL + "\n\n", None, None, "no ratings"),
    ("u.data", "196,242,3,881250949\n", 1, "item", "tab-separated user item rating timestamp"),
    ("ratings.dat", "1\t1193\t5\t978300760\n", 1, "movie", "'::'-separated"),
    ("u.data", U_DATA + "5\t6\t3\n", 4, "timestamp", "expected 4 fields"),
    ("u.data", U_DATA + "5\t6\t3\t1\t9\n", 4, None, "found 5"),
    ("ratings.csv", "userId,movieId,timestamp\n1,2,3\n", 1, "rating", "missing column 'rating'"),
    (
        "ratings.csv",
        GL + "1,2,4.0,1\n1,2\n",
        3,
        "rating",
        "expected 4 fields as in the header, found 2",
    ),
    ("ratings.csv", "userId,movieId,rating,rating\n1,2,4.0,1\n", 1, "rating", "appears 2 times"),
    ("u.data", U_DATA + "5\t6\tfour\t1\n", 4, "rating", "'four' is not a number"),
    ("u.data", U_DATA + "5\t6\t1_0\t1\n", 4, "rating", "not a number"),
    ("u.data", "5\t6\tNaN\t1\n", 1, "rating", "rating is NaN"),
    ("u.data", "5\t6\tinf\t1\n", 1, "rating", "infinite"),
    ("u.data", "5\t6\t1e999\t1\n", 1, "rating", "infinite"),
    ("u.data", "5\t6\t\t1\n", 1, "rating", "rating is empty"),
    ("u.data", U_DATA + "5\t6\t6\t1\n", 4, "rating", "rating 6 is outside the scale 1..5"),
    ("u.data", "5\t6\t0\t1\n", 1, "rating", "outside the scale"),
    ("u.data", "5\t6\t3.5\t1\n", 1, "rating", "rating 3.5 is not on the scale 1..5 in steps of 1"),
    ("ratings.dat", "1::2::3.5::4\n", 1, "rating", "a user_id,movie_id,rating CSV takes half"),
    ("ratings.csv", GL + "1,2,5.5,1\n", 2, "rating", "outside the scale 0.5..5"),
    ("ratings.csv", GL + "1,2,4.25,1\n", 2, "rating", "not on the scale"),
    ("u.data", U_DATA + "\t242\t3\t881250949\n", 4, "user", "user id is empty"),
    ("u.data", "1\t  \t3\t881250949\n", 1, "item", "movie id is empty"),
    ("ratings.csv", GL + "1,,4.0,1\n", 2, "movieId", "movie id is empty"),
    ("ratings.csv", "user_id,movie_id,rating\nu,m,3.0\n\n\nu,m,x\n", 5, "rating", "not a number"),
    ("u.data", b"1\t2\t3\t4\n5\t\xff\t3\t4\n", 2, None, "not UTF-8"),
]


@pytest.mark.parametrize("name, content, line, field, fragment", BAD_FILES)
def test_malformed_files_name_file_line_and_field(tmp_path, name, content, line, field, fragment):
    path = write(tmp_path / name, content)
    error = format_error(path)
    assert (error.line, error.field) == (line, field)
    message = str(error)
    assert fragment in message
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert f"field '{field}'" in message


def test_comma_file_named_u_data_points_at_the_delimiter(tmp_path):
    path = write(tmp_path / "u.data", "196,242,3,881250949\n")
    message = str(format_error(path))
    assert "commas" in message and "found 1" in message


def test_rating_scale_and_file_format_overrides(tmp_path):
    path = write(tmp_path / "u.data", "1\t2\t0\t1\n1\t3\t7.5\t1\n")
    assert read_ratings(path, rating_scale=(0, 10)).ratings.tolist() == [0.0, 7.5]
    renamed = write(tmp_path / "renamed" / "ratings.dat", "1::2::3.5::4\n")
    assert read_ratings(renamed, file_format="10m").ratings.tolist() == [3.5]
    with pytest.raises(ValueError, match="unknown file_format"):
        read_ratings(renamed, file_format="2m")
    with pytest.raises(ValueError, match="low < high"):
        read_ratings(path, rating_scale=(5, 1))


# --- encodings, whitespace, odd but valid content -----------------------------


def test_bom_and_crlf(tmp_path):
    path = write(tmp_path / "u.data", "\ufeff" + U_DATA.replace("\n", "\r\n"))
    ratings = read_ratings(path)
    assert ratings.user_ids.tolist() == ["user_196", "user_186", "user_22"]
    assert ratings.ratings.tolist() == [3.0, 3.0, 1.0]
    csv_path = write(
        tmp_path / "g" / "ratings.csv",
        "\ufeffuserId,movieId,rating,timestamp\r\n1,1,4.0,9\r\n2,5,3.5,9\r\n",
    )
    ratings = read_ratings(csv_path)
    assert ratings.format == "csv"
    assert ratings.user_ids.tolist() == ["user_1", "user_2"]
    assert ratings.ratings.tolist() == [4.0, 3.5]


def test_bom_and_crlf_error_line_numbers(tmp_path):
    path = write(tmp_path / "u.data", "\ufeff1\t2\t3\t4\r\n\r\n5\t6\tx\t4\r\n")
    error = format_error(path)
    assert (error.line, error.field) == (3, "rating")


def test_ids_kept_verbatim_and_rating_whitespace_stripped(tmp_path):
    path = write(tmp_path / "u.data", "Zoë\tfilm one\t 4 \t0\n 7 \t\u6620\u753b\t5\t0\r\n")
    ratings = read_ratings(path)
    assert ratings.user_ids.tolist() == ["user_Zoë", "user_ 7 "]
    assert ratings.movie_ids.tolist() == ["movie_film one", "movie_\u6620\u753b"]
    assert ratings.ratings.tolist() == [4.0, 5.0]


def test_duplicate_pairs_are_all_kept(tmp_path):
    path = write(tmp_path / "u.data", "1\t2\t3\t10\n1\t2\t5\t20\n")
    ratings = read_ratings(path)
    assert ratings.movie_ids.tolist() == ["movie_2", "movie_2"]
    assert ratings.ratings.tolist() == [3.0, 5.0]


def test_blank_lines_are_skipped(tmp_path):
    path = write(tmp_path / "u.data", "\n1\t2\t3\t4\n   \n\n5\t6\t4\t4\n\n")
    assert read_ratings(path).ratings.tolist() == [3.0, 4.0]


VALID_ODDITIES = [
    ("u.data", "1\t2\t3\t\n4\t5\t1\t\n"),  # empty timestamps: not used, so accepted
    ("u.data", "1\t2\t3\t4\r5\t6\t2\t4\r"),  # old Mac line endings
    ("u.data", '"1"\t2\t3\t4\n'),  # no quoting in tab files: the quotes are part of the id
    ("ratings.dat", "1::2::3::4\n\n10::20::5::40\n"),
    ("x.csv", 'user_id,movie_id,rating\n"a,b","say ""hi""",4.0\n"two\tparts",m,2.5\nu, m ,3\n'),
    ("x.csv", "user_id,movie_id,rating,note\nu,m,4.0,\nv,n,1.0,x\n"),
]


@pytest.mark.parametrize("name, content", VALID_ODDITIES)
def test_fast_and_careful_passes_agree(tmp_path, name, content):
    layout, data = _whole_file(write(tmp_path / name, content))
    whole = movielens.parse_range(layout, data, layout.data_start)
    assert_same(read_ratings(layout.path), _as_ratings(whole, layout))
    careful = movielens._parse_line_by_line(layout, data, lambda: 1)
    fast = movielens._parse_vectorised(layout, data)
    if fast is not None:
        assert_same(_as_ratings(fast, layout), _as_ratings(careful, layout))


def _whole_file(path: Path) -> tuple[movielens.FileLayout, bytes]:
    file_path, format_name = find_ratings_file(path)
    layout = movielens.ratings_layout(file_path, format_name)
    data, offset = movielens.read_range(layout, layout.data_start, layout.size)
    assert offset == layout.data_start
    return layout, data


def _as_ratings(rows: movielens.RangeRows, layout: movielens.FileLayout) -> Ratings:
    return Ratings(
        movielens._strings(rows.user_ids),
        movielens._strings(rows.movie_ids),
        rows.ratings,
        layout.path,
        layout.spec.name,
    )


def test_quoted_csv_ids(tmp_path):
    path = write(tmp_path / "x.csv", 'user_id,movie_id,rating\n"a,b","say ""hi""",4.0\n')
    ratings = read_ratings(path)
    assert ratings.user_ids.tolist() == ["a,b"]
    assert ratings.movie_ids.tolist() == ['say "hi"']


def test_reads_a_million_rows_quickly(tmp_path):
    rng = np.random.default_rng(0)
    users = rng.integers(1, 6041, 1_000_000)
    movies = rng.integers(1, 3707, 1_000_000)
    stars = rng.integers(1, 6, 1_000_000)
    lines = [
        f"{u}::{m}::{s}::978300760\n"
        for u, m, s in zip(users.tolist(), movies.tolist(), stars.tolist(), strict=False)
    ]
    path = write(tmp_path / "ml-1m" / "ratings.dat", "".join(lines))
    started = time.perf_counter()
    ratings = read_ratings(path)
    elapsed = time.perf_counter() - started
    assert len(ratings) == 1_000_000
    assert ratings.user_ids[-1] == f"user_{users[-1]}"
    assert ratings.ratings.sum() == stars.sum()
    assert elapsed < 10, f"reading 1M ratings took {elapsed:.1f}s"


@pytest.mark.skipif(
    not (REAL_100K / "u.data").is_file(),
    reason=f"real MovieLens-100K not found at {REAL_100K} (set MOVIELENS_100K_DIR)",
)
def test_real_movielens_100k():
    ratings = read_ratings(REAL_100K)
    assert ratings.format == "100k"
    assert (len(ratings), ratings.num_users, ratings.num_movies) == (100_000, 943, 1682)
    assert set(np.unique(ratings.ratings).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.5 < ratings.ratings.mean() < 3.56
    assert ratings.user_ids[0] == "user_196" and ratings.movie_ids[0] == "movie_242"


# --- byte ranges: the unit of ExampleGen's work -------------------------------

# BOM, CRLF and LF endings, blank lines, a last line without an end.
RANGED = (
    "\ufeff"
    + "".join(
        f"{u}\t{m}\t{1 + (u + m) % 5}\t0{end}"
        for u, m, end in ((u, u % 7, "\r\n" if u % 3 else "\n") for u in range(40))
    ).replace("\t0\r\n1\t", "\t0\r\n\n  \n1\t")
    + "41\t1\t2\t0"
)


def _read_in_ranges(layout, range_bytes):
    parts = [
        movielens.parse_range(layout, *movielens.read_range(layout, start, end))
        for start, end in movielens.byte_ranges(layout, range_bytes)
    ]
    return [
        (user, movie, rating)
        for part in parts
        for user, movie, rating in zip(
            part.user_ids.to_pylist(), part.movie_ids.to_pylist(), part.ratings, strict=True
        )
    ]


@pytest.mark.parametrize("range_bytes", [1, 2, 3, 7, 29, 64, 1 << 20])
def test_ranges_hold_every_line_once_wherever_their_edges_fall(tmp_path, range_bytes):
    path = write(tmp_path / "u.data", RANGED)
    layout = movielens.ratings_layout(path)
    whole = read_ratings(path)
    rows = _read_in_ranges(layout, range_bytes)
    assert [user.decode() for user, _, _ in rows] == whole.user_ids.tolist()
    assert [movie.decode() for _, movie, _ in rows] == whole.movie_ids.tolist()
    assert [rating for _, _, rating in rows] == whole.ratings.tolist()
    assert len(rows) == 41


@pytest.mark.parametrize("range_bytes", [7, 29, 64, 100, 1 << 20])
def test_ranges_are_the_fewest_that_fit_and_equal_in_size(tmp_path, range_bytes):
    # Each range becomes a shard that a worker reads whole: a short last
    # one would leave a worker idle.
    layout = movielens.ratings_layout(write(tmp_path / "u.data", RANGED))
    ranges = movielens.byte_ranges(layout, range_bytes)
    sizes = [end - start for start, end in ranges]
    data_bytes = layout.size - layout.data_start
    assert ranges[0][0] == layout.data_start and ranges[-1][1] == layout.size
    assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
    assert max(sizes) <= range_bytes and max(sizes) - min(sizes) <= 1
    assert len(ranges) == -(-data_bytes // range_bytes)


@pytest.mark.parametrize("range_bytes", [1, 5, 17, 1 << 20])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_a_bad_line_in_a_later_range_is_numbered_exactly(tmp_path, range_bytes, ending):
    lines = ["userId,movieId,rating,timestamp", ""] + [f"{i},{i % 9},4.0,1" for i in range(30)]
    lines[25] = "25,9,four,1"
    path = write(tmp_path / "ratings.csv", ending.join(lines) + ending)
    layout = movielens.ratings_layout(path)
    with pytest.raises(RatingsFormatError) as caught:
        _read_in_ranges(layout, range_bytes)
    assert (caught.value.line, caught.value.field) == (26, "rating")
    assert "'four' is not a number" in str(caught.value)


def test_a_quoted_line_break_is_refused_naming_line_and_field(tmp_path):
    path = write(tmp_path / "x.csv", 'user_id,movie_id,rating\nu,m,4.0\n"multi\nline",m,2.5\n')
    error = format_error(path)
    assert (error.line, error.field) == (3, "user_id")
    assert "cannot hold line breaks" in str(error)


def test_the_runner_checks_the_header_and_first_lines_only(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "PREVIEW_BYTES", 64)
    good = "".join(f"{i}\t{i}\t3\t0\n" for i in range(40))
    layout = movielens.check_ratings_file(
        write(tmp_path / "late" / "u.data", good + "1\t2\tx\t0\n")
    )
    assert (layout.spec.name, layout.size) == ("100k", len(good) + 8)
    with pytest.raises(RatingsFormatError, match="line 2, field 'rating'"):
        movielens.check_ratings_file(
            write(tmp_path / "early" / "u.data", "1\t2\t3\t0\n1\t2\tx\t0\n")
        )
    with pytest.raises(RatingsFormatError, match="no ratings: the file has a header"):
        movielens.check_ratings_file(write(tmp_path / "empty" / "ratings.csv", GL + "\n"))


def test_rating_counts_sum_each_id_over_every_range(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "RANGE_BYTES", 16)
    path = write(tmp_path / "u.data", "".join(f"{i % 7}\t{i % 3}\t3\t0\n" for i in range(50)))
    users, movies = movielens.rating_counts(movielens.ratings_layout(path))
    assert sorted(users) == [7, 7, 7, 7, 7, 7, 8] and sorted(movies) == [16, 17, 17]


# --- writing -------------------------------------------------------------------


def test_write_normalized_csv_round_trips_awkward_ids(tmp_path):
    original = Ratings(
        user_ids=["user_1", "a,b", 'say "hi"', "Zoë", "tab\tin"],
        movie_ids=["movie_1", "movie_2", "movie,3", "movie_4", "m"],
        ratings=[4, 3.5, 1, 5, 0.5],
        source="test",
        format="test",
    )
    path = write_normalized_csv(original, tmp_path / "deep" / "er" / "ratings.csv")
    assert path == tmp_path / "deep" / "er" / "ratings.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "user_id,movie_id,rating"
    assert lines[1] == "user_1,movie_1,4.0"
    assert lines[2] == '"a,b",movie_2,3.5'
    assert lines[3] == '"say ""hi""","movie,3",1.0'
    back = read_ratings(path)
    assert back.format == "normalized"
    assert_same(back, original)
    assert os.listdir(path.parent) == ["ratings.csv"]


def test_write_normalized_csv_always_writes_a_decimal_point(tmp_path):
    ratings = Ratings(["u"] * 3, ["a", "b", "c"], [1, 2.5, 5], "test", "test")
    path = write_normalized_csv(ratings, tmp_path / "r.csv")
    assert [line.split(",")[2] for line in path.read_text().splitlines()[1:]] == [
        "1.0",
        "2.5",
        "5.0",
    ]


def test_write_normalized_csv_is_atomic(tmp_path):
    class Unprintable:
        def __str__(self):
            raise RuntimeError("boom")

    target = write(tmp_path / "ratings.csv", "old content\n")
    broken = Ratings(
        ["user_1"] * 3, ["movie_1", "movie_2", Unprintable()], [1, 2, 3], "test", "test"
    )
    with pytest.raises(RuntimeError, match="boom"):
        write_normalized_csv(broken, target)
    assert target.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["ratings.csv"]


def test_write_normalized_csv_refuses_empty_or_non_finite(tmp_path):
    with pytest.raises(ValueError, match="no ratings"):
        write_normalized_csv(Ratings([], [], [], "test", "test"), tmp_path / "r.csv")
    with pytest.raises(ValueError, match="non-finite"):
        write_normalized_csv(Ratings(["u"], ["m"], [np.nan], "test", "test"), tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_ratings_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one length"):
        Ratings(["u", "v"], ["m"], [1.0], "test", "test")


# --- download -----------------------------------------------------------------


def make_archive(folder: Path, name="ml-100k", inner="ml-100k/u.data", content=U_DATA) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(inner, content)
        bundle.writestr("ml-100k/README", "fake")
    return archive


def test_official_urls():
    assert DATASETS["ml-100k"].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert DATASETS["ml-1m"].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert DATASETS["ml-20m"].url == "https://files.grouplens.org/datasets/movielens/ml-20m.zip"
    assert DATASETS["ml-latest-small"].url.endswith("/movielens/ml-latest-small.zip")
    assert (DATASETS["ml-20m"].folder, DATASETS["ml-20m"].ratings_file) == ("ml-20m", "ratings.csv")


def test_download_via_file_url_then_reuses_the_cache(tmp_path):
    archive = make_archive(tmp_path / "mirror")
    cache = tmp_path / "cache"
    folder = download_movielens("ml-100k", cache, base_url=(tmp_path / "mirror").as_uri())
    assert folder == cache / "ml-100k"
    assert read_ratings(folder).user_ids.tolist() == ["user_196", "user_186", "user_22"]
    assert sorted(os.listdir(cache)) == ["ml-100k"]
    archive.unlink()
    assert download_movielens("ml-100k", cache, base_url=(tmp_path / "mirror").as_uri()) == folder
    assert download_movielens("ml-100k", cache) == folder


def test_download_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match="ml-100k.*ml-1m.*ml-20m.*ml-latest-small"):
        download_movielens("ml-3m", tmp_path)


def test_download_failure_names_url_and_manual_route(tmp_path):
    base_url = (tmp_path / "empty-mirror").as_uri()
    with pytest.raises(DownloadError) as caught:
        download_movielens("ml-1m", tmp_path / "cache", base_url=base_url)
    message = str(caught.value)
    assert f"{base_url}/ml-1m.zip" in message
    assert "yourself" in message and "ratings.dat" in message
    assert os.listdir(tmp_path / "cache") == []


def test_download_with_unexpected_layout_says_what_was_expected(tmp_path):
    make_archive(tmp_path / "mirror", inner="other/u.data")
    with pytest.raises(DownloadError, match="expected ml-100k/u.data inside"):
        download_movielens("ml-100k", tmp_path / "cache", base_url=(tmp_path / "mirror").as_uri())
    assert not (tmp_path / "cache" / "ml-100k").exists()


def test_download_rejects_a_non_zip(tmp_path):
    write(tmp_path / "mirror" / "ml-100k.zip", "<html>not found</html>")
    with pytest.raises(DownloadError, match="not a zip"):
        download_movielens("ml-100k", tmp_path / "cache", base_url=(tmp_path / "mirror").as_uri())
    assert os.listdir(tmp_path / "cache") == []


@pytest.mark.parametrize(
    "name, content, rows",
    [
        ("u.data", U_DATA, 3),
        ("ratings.dat", "1::1193::5::978300760\n", 1),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n", 1),
        ("x.csv", 'user_id,movie_id,rating\n"a,b",m,4.0\n', 1),
    ],
)
def test_well_formed_files_take_the_vectorised_pass(tmp_path, name, content, rows):
    layout, data = _whole_file(write(tmp_path / name, content))
    assert len(movielens._parse_vectorised(layout, data)) == rows


def test_rewriting_identical_ratings_keeps_the_file_and_its_mtime(tmp_path):
    """ExampleGen's cache fingerprint includes mtime: same ratings, same file."""
    ratings = Ratings(["user_1"], ["movie_1"], [4.0], source="test", format="normalized")
    path = write_normalized_csv(ratings, tmp_path / "ratings.csv")
    os.utime(path, (1_000_000, 1_000_000))
    write_normalized_csv(ratings, path)
    assert path.stat().st_mtime == 1_000_000
    changed = Ratings(["user_1"], ["movie_1"], [5.0], source="test", format="normalized")
    write_normalized_csv(changed, path)
    assert path.stat().st_mtime != 1_000_000
    assert path.read_text().splitlines()[1] == "user_1,movie_1,5.0"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- files that are not plain ratings text ----------------------------------


@pytest.mark.parametrize(
    "name, content, line, field",
    [
        ("u.data", "x\0a\t1\t4\t0\nx\0b\t2\t3\t0\n", 1, "user"),
        ("ratings.dat", "1::2::3::4\nx\0a::2::3::4\n", 2, "user"),
        ("x.csv", "user_id,movie_id,rating\nu1,m1,4.0\nx\0a,m2,3.0\n", 3, "user_id"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,4.0,1\n1,x\0b,4.0,1\n", 3, "movieId"),
    ],
)
def test_nul_byte_in_an_id_is_refused_with_line_and_field(tmp_path, name, content, line, field):
    # pandas would end the id at the NUL: x\0a and x\0b would become one user x.
    error = format_error(write(tmp_path / name, content))
    assert (error.line, error.field) == (line, field)
    assert "NUL byte" in str(error)


def test_nul_byte_in_a_rating_or_the_header(tmp_path):
    error = format_error(write(tmp_path / "u.data", "1\t2\t3\0\t4\n"))
    assert (error.line, error.field) == (1, "rating") and "NUL" in str(error)
    error = format_error(write(tmp_path / "x.csv", "user_id,mo\0vie_id,rating\nu,m,4.0\n"))
    assert error.line == 1 and "NUL" in str(error)


@pytest.mark.parametrize(
    "content, users, movies",
    [
        ("user_id,movie_id,rating\n196,m1,3.0\n186,m2,3.0\n", ["196", "186"], ["m1", "m2"]),
        ("user_id,movie_id,rating\nu1,1.5,3.0\nu2,2,3.0\n", ["u1", "u2"], ["1.5", "2"]),
        ("user_id,movie_id,rating\nu1,true,3.0\nu2,NA,3.0\n", ["u1", "u2"], ["true", "NA"]),
    ],
)
def test_normalized_csv_ids_that_look_like_numbers_or_missing_values_are_kept(
    tmp_path, content, users, movies
):
    # ExampleGen writes every id as bytes, whatever it looks like: no type inference.
    ratings = read_ratings(write(tmp_path / "r.csv", content))
    assert ratings.user_ids.tolist() == users
    assert ratings.movie_ids.tolist() == movies


def test_numeric_ids_mixed_with_others_and_grouplens_ids_are_kept(tmp_path):
    ratings = read_ratings(
        write(tmp_path / "r.csv", "user_id,movie_id,rating\n196,m,3.0\nabc,n,1.0\n")
    )
    assert ratings.user_ids.tolist() == ["196", "abc"]
    ratings = read_ratings(
        write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,4.0,1\n")
    )
    assert ratings.user_ids.tolist() == ["user_1"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_opening_it(tmp_path):
    # Opening a FIFO for reading blocks until a writer comes: the check must not open it.
    fifo = tmp_path / "ratings.csv"
    os.mkfifo(fifo)
    with pytest.raises(RatingsFormatError, match="FIFO.*not a regular file"):
        read_ratings(fifo)
    folder = tmp_path / "ml"
    folder.mkdir()
    os.mkfifo(folder / "u.data")
    with pytest.raises(RatingsFormatError, match="FIFO"):
        read_ratings(folder)


def test_folder_with_two_ratings_files_is_refused_naming_both(tmp_path):
    write(tmp_path / "u.data", U_DATA)
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    with pytest.raises(RatingsFormatError) as caught:
        read_ratings(tmp_path)
    message = str(caught.value)
    assert "u.data and ratings.csv" in message and str(tmp_path / "u.data") in message


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def _zip(data: bytes) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("u.data", data)
    return buffer.getvalue()


def _bz2(data: bytes) -> bytes:
    import bz2

    return bz2.compress(data)


@pytest.mark.parametrize(
    "name, compress, fragment",
    [
        ("u.data", _gzip, "compressed (gzip); decompress it first"),
        ("ratings.csv", _gzip, "compressed (gzip)"),
        ("ratings.csv.gz", _gzip, "compressed (gzip)"),
        ("u.data", _zip, "zip archive; unzip it"),
        ("ratings.dat", _bz2, "compressed (bzip2)"),
    ],
)
def test_compressed_file_is_named_as_such_whatever_its_name(tmp_path, name, compress, fragment):
    path = write(tmp_path / name, compress(U_DATA.encode()))
    with pytest.raises(RatingsFormatError, match=re.escape(fragment)):
        read_ratings(path)
    if name.endswith(".gz"):  # a folder holding only ratings.csv.gz points at it
        with pytest.raises(FileNotFoundError, match="ratings.csv.gz: decompress it"):
            read_ratings(tmp_path)
    else:
        with pytest.raises(RatingsFormatError, match=re.escape(fragment)):
            read_ratings(tmp_path)


def test_out_of_scale_hint_names_what_a_user_can_do(tmp_path):
    for number, content in enumerate(("5\t6\t7\t1\n", "5\t6\t3.5\t1\n")):
        folder = tmp_path / str(number)
        folder.mkdir()
        with pytest.raises(movielens.RatingsFormatError) as caught:
            read_ratings(write(folder / "u.data", content))
        message = str(caught.value)
        assert "rating_scale" not in message  # a Python argument; the command line has none
        assert "rescaled" in message and "half stars" in message


# --- the split-size message (ExampleGen raises it) ---------------------------


def test_too_few_ratings_names_the_count_the_empty_split_and_the_minimum():
    error = movielens.too_few_ratings_error({"train": 3, "eval": 0}, [("train", 17), ("eval", 3)])
    message = str(error)
    assert isinstance(error, movielens.TooFewRatingsError)
    assert message.startswith("too few ratings to split into train and eval: ")
    assert "(train 17, eval 3 buckets)" in message
    assert "none of these 3 lands in eval" in message
    assert "at least 2" in message and "\n" not in message
