"""Reading MovieLens ratings in the GroupLens formats, and the download cache.

Formats (``FORMATS``), each with the rating scale it enforces by default:

- ``100k``: ``u.data`` (and its ``*.base`` / ``*.test`` splits), no header,
  tab-separated ``user item rating timestamp``. Scale 1..5, whole stars.
- ``1m``: ``ratings.dat``, no header, ``user::movie::rating::timestamp``.
  Scale 1..5, whole stars.
- ``10m``: the same layout in a folder named ``ml-10m*`` (the official zip
  unpacks to ``ml-10M100K``). Scale 0.5..5, half stars.
- ``csv``: ``ratings.csv`` of ML-20M, ML-25M and ml-latest(-small), header
  ``userId,movieId,rating,timestamp``. Scale 0.5..5, half stars.
- ``normalized``: this project's CSV, header ``user_id,movie_id,rating``, in
  any order; further columns are allowed and ignored. Scale 0.5..5, half stars.

Whole-star ratings lie on the half-star grid, so the ``normalized`` default
accepts whatever a MovieLens variant or ``components.synthetic`` produced.
``ratings.dat`` carries no sign of whether it came from ML-1M or ML-10M, so
the folder name decides; pass ``file_format="10m"`` or ``rating_scale`` to
``read_ratings`` when the folder was renamed.

Ids are kept as strings with a ``user_`` / ``movie_`` prefix ("user_196")
because CsvExampleGen infers INT64 for bare numeric ids. Ids in a
``normalized`` file were written by ``write_normalized_csv`` and are taken
verbatim. Ids are otherwise kept exactly as written (spaces and any Unicode
included); only the rating has surrounding whitespace stripped before it is
parsed as a number.

Ids are kept as written or refused: a NUL byte anywhere is an error (pandas
would end the id there), and so are ``normalized`` ids that ExampleGen's CSV
type inference would not read as strings (all numbers, or ``NA``-like
values it reads as missing). What is not a regular file (a FIFO, which would
block), or is compressed, is refused before it is opened for reading.

Duplicate (user, movie) rows are all kept: each is treated as an
independent observation (the GroupLens files contain none).

Reading is a fast vectorised pass with pandas; when that pass meets anything
unusual, a line-by-line pass reads the file again and either returns the same
result or raises ``RatingsFormatError`` naming the file, line and field.
"""

from __future__ import annotations

import csv
import dataclasses
import filecmp
import http.client
import io
import math
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

USER_PREFIX = "user_"
MOVIE_PREFIX = "movie_"
NORMALIZED_COLUMNS = ("user_id", "movie_id", "rating")

# Fewest ratings a run can take: ExampleGen must put at least one in the
# train split and one in eval (``check_example_gen_splits`` tells, for a
# small file, whether its hash split does).
MIN_RATINGS = 2

# Large enough that pandas overhead is amortised, small enough that the
# per-chunk Python string objects stay in the hundreds of megabytes on ML-25M.
_CHUNK_ROWS = 1_000_000


class RatingsFormatError(ValueError):
    """A ratings file that cannot be read; the message names file, line and field."""

    def __init__(
        self,
        path: os.PathLike | str,
        problem: str,
        line: int | None = None,
        field: str | None = None,
    ):
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.field = field
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}")


class DownloadError(OSError):
    """A MovieLens archive could not be fetched or unpacked."""


@dataclasses.dataclass(frozen=True)
class RatingScale:
    """Allowed ratings: ``low <= r <= high`` and, if ``step`` is set, on that grid from ``low``."""

    low: float
    high: float
    step: float | None = None

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"rating scale needs finite low < high, got ({self.low}, {self.high})")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"rating scale step must be positive, got {self.step}")

    def problem_with(self, value: float) -> str | None:
        """Why ``value`` is not on this scale, or None when it is."""
        tolerance = 1e-9 * max(1.0, abs(self.high))
        if not self.low - tolerance <= value <= self.high + tolerance:
            return f"rating {value:g} is outside the scale {self}"
        if self.step is not None:
            steps = (value - self.low) / self.step
            if abs(steps - round(steps)) > 1e-6:
                return f"rating {value:g} is not on the scale {self}"
        return None

    def __str__(self) -> str:
        text = f"{self.low:g}..{self.high:g}"
        return text if self.step is None else f"{text} in steps of {self.step:g}"


WHOLE_STARS = RatingScale(1.0, 5.0, 1.0)
HALF_STARS = RatingScale(0.5, 5.0, 0.5)


@dataclasses.dataclass(frozen=True)
class RatingsFormat:
    """How one kind of ratings file is laid out.

    ``columns`` lists every field of a headerless format in order; for a format
    with a header it lists only the user, movie and rating columns to find in it.
    """

    name: str
    description: str
    delimiter: str
    columns: tuple[str, ...]
    has_header: bool
    prefix_ids: bool
    scale: RatingScale


FORMATS: dict[str, RatingsFormat] = {
    "100k": RatingsFormat(
        "100k",
        "tab-separated user item rating timestamp",
        "\t",
        ("user", "item", "rating", "timestamp"),
        False,
        True,
        WHOLE_STARS,
    ),
    "1m": RatingsFormat(
        "1m",
        "'::'-separated user::movie::rating::timestamp",
        "::",
        ("user", "movie", "rating", "timestamp"),
        False,
        True,
        WHOLE_STARS,
    ),
    "10m": RatingsFormat(
        "10m",
        "'::'-separated user::movie::rating::timestamp",
        "::",
        ("user", "movie", "rating", "timestamp"),
        False,
        True,
        HALF_STARS,
    ),
    "csv": RatingsFormat(
        "csv",
        "comma-separated with header userId,movieId,rating,timestamp",
        ",",
        ("userId", "movieId", "rating"),
        True,
        True,
        HALF_STARS,
    ),
    "normalized": RatingsFormat(
        "normalized",
        "comma-separated with header user_id,movie_id,rating",
        ",",
        NORMALIZED_COLUMNS,
        True,
        False,
        HALF_STARS,
    ),
}

RATINGS_FILE_NAMES = ("u.data", "ratings.dat", "ratings.csv")


@dataclasses.dataclass(frozen=True, eq=False)
class Ratings:
    """Parallel arrays of ratings: ids are ``str`` objects, ratings float32."""

    user_ids: np.ndarray
    movie_ids: np.ndarray
    ratings: np.ndarray
    source: str
    format: str

    def __post_init__(self):
        object.__setattr__(self, "user_ids", np.asarray(self.user_ids, dtype=object))
        object.__setattr__(self, "movie_ids", np.asarray(self.movie_ids, dtype=object))
        object.__setattr__(self, "ratings", np.asarray(self.ratings, dtype=np.float32))
        shapes = {self.user_ids.shape, self.movie_ids.shape, self.ratings.shape}
        if len(shapes) != 1 or self.ratings.ndim != 1:
            raise ValueError(
                "user_ids, movie_ids and ratings must be 1-D arrays of one length, got shapes "
                f"{self.user_ids.shape}, {self.movie_ids.shape}, {self.ratings.shape}"
            )

    def __len__(self) -> int:
        return len(self.ratings)

    @property
    def num_users(self) -> int:
        return len(set(self.user_ids))

    @property
    def num_movies(self) -> int:
        return len(set(self.movie_ids))


# --------------------------------------------------------------------------
# Locating a ratings file


def find_ratings_file(path: os.PathLike | str) -> tuple[Path, str]:
    """Return ``(file, format name)`` for a ratings file or a folder holding one.

    A folder must hold exactly one of ``u.data``, ``ratings.dat`` and
    ``ratings.csv``: with two, which one was meant is the user's call, so the
    error asks for the file itself. A file is recognised by its name
    (``u.data``, ``*.base``, ``*.test``, ``*.dat``, ``*.csv``); a CSV by its
    header. Only regular files are read (a FIFO would block forever), and a
    compressed file is refused with what to do, whatever its name.
    """
    path = Path(path)
    if path.is_dir():
        present = [name for name in RATINGS_FILE_NAMES if os.path.lexists(path / name)]
        if len(present) > 1:
            raise RatingsFormatError(
                path,
                f"holds {' and '.join(present)}, more than one ratings file; pass the one "
                f"to use (e.g. {path / present[0]}) instead of the folder",
            )
        if present:
            candidate = path / present[0]
            _check_regular_file(candidate)
            return candidate, _format_of_file(candidate)
        nested = sorted(
            str(sub)
            for sub in path.iterdir()
            if sub.is_dir() and any((sub / n).is_file() for n in RATINGS_FILE_NAMES)
        )
        hint = f"; these subfolders have one: {', '.join(nested)}" if nested else ""
        packed = sorted(
            sub.name
            for sub in path.iterdir()
            if any(sub.name.startswith(name + ".") for name in RATINGS_FILE_NAMES)
        )
        if packed:
            hint += f"; found {', '.join(packed)}: decompress it first"
        raise FileNotFoundError(
            f"{path}: no ratings file in this folder "
            f"(looked for {', '.join(RATINGS_FILE_NAMES)}){hint}"
        )
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file or folder (expected a MovieLens folder or a ratings file: "
            f"{', '.join(RATINGS_FILE_NAMES)} or a CSV with header user_id,movie_id,rating)"
        )
    _check_regular_file(path)
    return path, _format_of_file(path)


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)

# Leading bytes of compressed files: (magic, what it is, what to do).
_COMPRESSED = (
    (b"\x1f\x8b", "compressed (gzip)", "decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive", "unzip it and pass the folder or ratings file inside"),
    (
        b"PK\x05\x06",
        "an (empty) zip archive",
        "unzip it and pass the folder or ratings file inside",
    ),
    (b"\xfd7zXZ\x00", "compressed (xz)", "decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "compressed (zstd)", "decompress it first (unzstd)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "unpack it and pass the ratings file inside"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")


def _check_regular_file(path: Path) -> None:
    """Refuses what is not a plain, uncompressed file, before anything opens it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read it ({error.strerror})") from None
    for is_kind, kind in _SPECIAL_FILES:
        if is_kind(mode):
            raise RatingsFormatError(
                path, f"is {kind}, not a regular file; save the ratings to a file and pass that"
            )
    if not stat.S_ISREG(mode):
        raise RatingsFormatError(path, "is not a regular file; pass a ratings file or a folder")
    with open(path, "rb") as handle:
        start = handle.read(16)
    for magic, kind, fix in _COMPRESSED:
        if start.startswith(magic):
            raise RatingsFormatError(path, f"is {kind}; {fix}")
    if _BZIP2.match(start):
        raise RatingsFormatError(path, "is compressed (bzip2); decompress it first (bunzip2)")


def _format_of_file(path: Path) -> str:
    name = path.name.lower()
    if name == "u.data" or path.suffix.lower() in (".data", ".base", ".test"):
        return "100k"
    if path.suffix.lower() == ".dat":
        return "10m" if path.parent.name.lower().startswith("ml-10m") else "1m"
    if path.suffix.lower() == ".csv":
        return _format_of_csv(path)
    raise ValueError(
        f"{path}: unrecognised ratings file name (expected u.data, *.base, *.test, ratings.dat "
        f"or a .csv with header userId,movieId,rating,timestamp or user_id,movie_id,rating)"
    )


def _format_of_csv(path: Path) -> str:
    _check_not_empty(
        path, "a CSV with header userId,movieId,rating,timestamp or user_id,movie_id,rating"
    )
    line, header = _read_header(path)
    names = set(header)
    if names & {"userId", "movieId"}:
        return "csv"
    if names & {"user_id", "movie_id"}:
        return "normalized"
    raise RatingsFormatError(
        path,
        f"header {','.join(header)!r} names neither the GroupLens columns "
        f"userId,movieId,rating,timestamp nor this project's user_id,movie_id,rating",
        line=line,
    )


def _check_not_empty(path: Path, expected: str) -> None:
    with open(path, "rb") as handle:
        start = handle.read(64)
    if not start.removeprefix(b"\xef\xbb\xbf").strip():
        with open(path, "rb") as handle:
            if not handle.read().removeprefix(b"\xef\xbb\xbf").strip():
                raise RatingsFormatError(path, f"file is empty (expected {expected})")


def _read_header(path: Path) -> tuple[int, list[str]]:
    """The first non-blank CSV record, names stripped, and its line number."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            for record in reader:
                if not _is_blank_record(record):
                    return reader.line_num, [name.strip() for name in record]
    except csv.Error as error:  # Python 3.10's csv refuses NUL bytes
        raise RatingsFormatError(path, f"cannot read the header ({error})", line=1) from None
    except UnicodeDecodeError:
        raise RatingsFormatError(
            path, "is not UTF-8 text", line=_first_undecodable_line(path)
        ) from None
    raise RatingsFormatError(path, "file is empty (expected a header line)")


def _is_blank_record(record: list[str]) -> bool:
    # pandas skips lines holding nothing but spaces, so the careful pass must too.
    return not record or (len(record) == 1 and not record[0].strip(" "))


def _first_undecodable_line(path: Path) -> int | None:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _check_no_nul(path: Path, spec: RatingsFormat) -> None:
    """Refuses a NUL byte anywhere, naming its line and field.

    pandas' parser ends a field at a NUL, so ``x\\0a`` and ``x\\0b`` would both
    be read as ``x``; ids are kept as written or refused.
    """
    at, offset = None, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_NUL_SCAN_BYTES):
            found = chunk.find(b"\0")
            if found >= 0:
                at = offset + found
                break
            offset += len(chunk)
    if at is None:
        return
    line, line_start, position = 1, 0, 0
    with open(path, "rb") as handle:
        while position < at:
            chunk = handle.read(min(_NUL_SCAN_BYTES, at - position))
            if chunk.count(b"\n"):
                line += chunk.count(b"\n")
                line_start = position + chunk.rindex(b"\n") + 1
            position += len(chunk)
        handle.seek(line_start)
        text = handle.readline().decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff")
    field = _field_at(path, spec, text)
    raise RatingsFormatError(
        path,
        "contains a NUL byte (\\0): remove it (ids are kept exactly as written, and a NUL "
        "would cut one short)",
        line=line,
        field=field,
    )


_NUL_SCAN_BYTES = 1 << 24


def _field_at(path: Path, spec: RatingsFormat, line_text: str) -> str | None:
    """The column name of the first field holding a NUL in ``line_text``."""
    marked = line_text.replace("\0", "\ufffe")
    if spec.has_header:
        fields = next(csv.reader([marked]), [])
        try:
            _, names = _read_header(path)
        except csv.Error:  # the NUL is in the header itself
            return None
    else:
        fields, names = marked.split(spec.delimiter), list(spec.columns)
    for position, value in enumerate(fields):
        if "\ufffe" in value and position < len(names):
            return names[position]
    return None


# --------------------------------------------------------------------------
# Reading


class _BadField(Exception):
    """A field value that is wrong wherever it appears; carries the reason."""


class _NeedsCarefulPass(Exception):
    """The vectorised pass met something it cannot judge or locate."""


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _parse_rating(text: str, scale: RatingScale) -> float:
    stripped = text.strip()
    if not stripped:
        raise _BadField("rating is empty")
    bare = stripped.lower().lstrip("+-")
    if bare == "nan":
        raise _BadField("rating is NaN")
    if bare in ("inf", "infinity"):
        raise _BadField(f"rating {stripped!r} is infinite")
    if not _NUMBER.fullmatch(stripped):
        raise _BadField(f"rating {text!r} is not a number")
    value = float(stripped)
    if not math.isfinite(value):
        raise _BadField(f"rating {stripped!r} is infinite")
    problem = scale.problem_with(value)
    if problem:
        hint = "fix or remove the row; ratings on another scale must be rescaled to this one"
        if scale.step == 1:
            hint += " (a user_id,movie_id,rating CSV takes half stars, 0.5..5)"
        raise _BadField(f"{problem}: {hint}")
    return value


def _check_id(text: str, kind: str) -> None:
    if not text.strip():
        raise _BadField(f"{kind} id is empty")


def read_ratings(
    path: os.PathLike | str,
    rating_scale: Sequence[float] | None = None,
    *,
    file_format: str | None = None,
) -> Ratings:
    """Read every rating in a MovieLens folder or ratings file.

    Args:
      path: a folder holding u.data / ratings.dat / ratings.csv, or the file.
      rating_scale: ``(low, high)`` to accept any rating in that closed range
        instead of the format's default scale (see the module docstring);
        ``(low, high, step)`` also requires the rating to lie on that grid.
      file_format: a key of ``FORMATS``, for a file whose name or folder does
        not tell its format.

    Raises:
      FileNotFoundError: nothing at ``path``, or no ratings file in the folder.
      RatingsFormatError: the content is malformed; the message names the file,
        the 1-based line and the field.
    """
    file_path, detected = find_ratings_file(path)
    name = file_format or detected
    if name not in FORMATS:
        raise ValueError(f"unknown file_format {name!r}; known: {', '.join(FORMATS)}")
    spec = FORMATS[name]
    scale = spec.scale if rating_scale is None else RatingScale(*map(float, rating_scale))
    _check_not_empty(file_path, spec.description)
    _check_no_nul(file_path, spec)
    try:
        return _read_vectorised(file_path, spec, scale)
    except _NeedsCarefulPass:
        return _read_line_by_line(file_path, spec, scale)


class _Vocabulary:
    """Maps id strings to dense codes so each distinct id is stored once."""

    def __init__(self):
        self._codes: dict[str, int] = {}

    def codes_for(self, values: np.ndarray, kind: str) -> np.ndarray:
        local_codes, uniques = pd.factorize(values)
        for text in uniques:
            if not text.strip():
                raise _BadField(f"{kind} id is empty")
        codes = self._codes
        global_codes = np.fromiter(
            (codes.setdefault(text, len(codes)) for text in uniques),
            dtype=np.int64,
            count=len(uniques),
        )
        return global_codes[local_codes]

    def texts(self) -> list[str]:
        return list(self._codes)

    def ids(self, codes: np.ndarray, prefix: str) -> np.ndarray:
        strings = np.empty(len(self._codes), dtype=object)
        strings[:] = [prefix + text for text in self._codes]
        return strings[codes]


def _assemble(
    users: _Vocabulary,
    user_codes: np.ndarray,
    movies: _Vocabulary,
    movie_codes: np.ndarray,
    ratings: np.ndarray,
    path: Path,
    spec: RatingsFormat,
) -> Ratings:
    if not spec.prefix_ids:
        for vocabulary, column in zip((users, movies), spec.columns, strict=False):
            _check_ids_stay_strings(vocabulary.texts(), column, path)
    return Ratings(
        user_ids=users.ids(user_codes, USER_PREFIX if spec.prefix_ids else ""),
        movie_ids=movies.ids(movie_codes, MOVIE_PREFIX if spec.prefix_ids else ""),
        ratings=ratings.astype(np.float32),
        source=str(path),
        format=spec.name,
    )


# How ExampleGen (components/arrow_csv_example_gen.py) reads the CSV handed
# to it: Arrow infers each column's type, and reads these cells as missing.
_EXAMPLE_GEN_CONVERT_OPTIONS = dict(strings_can_be_null=True, timestamp_parsers=[])
_ARROW_TYPE_NAMES = {"int64": "integers", "double": "numbers", "bool": "true/false values"}


def _check_ids_stay_strings(texts: list[str], column: str, path: Path) -> None:
    """Refuses ids that ExampleGen's type inference would not read as strings.

    A ``user_id,movie_id,rating`` file's ids go to ExampleGen verbatim. If all
    of a column's ids look like numbers, Arrow types the column as numbers and
    the raw schema (strings) rejects it after ExampleGen and StatisticsGen
    ran; an id such as ``NA`` or ``null`` would arrive as a missing value.
    """
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.csv as pa_csv  # pylint: disable=g-import-not-at-top

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quoted as write_normalized_csv quotes
    writer.writerow([column])
    writer.writerows([text] for text in texts)
    data = buffer.getvalue().encode("utf-8")
    values = pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(block_size=max(len(data), 1 << 20)),
        convert_options=pa_csv.ConvertOptions(**_EXAMPLE_GEN_CONVERT_OPTIONS),
    ).column(0)
    if not pa.types.is_string(values.type):
        kind = _ARROW_TYPE_NAMES.get(str(values.type), f"{values.type} values")
        raise RatingsFormatError(
            path,
            f"ExampleGen's CSV reader would type this column as {kind} (every id looks like "
            f"one, e.g. {texts[0]!r}), not as the strings the schema expects; "
            f"write the ids with a prefix (e.g. {column.removesuffix('_id')}_{texts[0]}), or "
            "give the file the GroupLens header userId,movieId,rating,timestamp, whose ids "
            "are read as user_<id> and movie_<id>",
            field=column,
        )
    if values.null_count:
        missing = texts[values.to_pylist().index(None)]
        raise RatingsFormatError(
            path,
            f"the id {missing!r} would reach ExampleGen as a missing value (its CSV reader takes "
            "NA, null, NaN, N/A and the like for no value); rename it",
            field=column,
        )


def _column_positions(path: Path, spec: RatingsFormat) -> tuple[int, int, int, int]:
    """(user, movie, rating) field positions and the number of fields per row."""
    if not spec.has_header:
        return 0, 1, 2, len(spec.columns)
    line, header = _read_header(path)
    positions = []
    for column in spec.columns:
        found = [i for i, name in enumerate(header) if name == column]
        if not found:
            raise RatingsFormatError(
                path,
                f"missing column {column!r}: the header is {','.join(header)!r}, "
                f"expected {spec.description}",
                line=line,
                field=column,
            )
        if len(found) > 1:
            raise RatingsFormatError(
                path,
                f"column {column!r} appears {len(found)} times in the header",
                line=line,
                field=column,
            )
        positions.append(found[0])
    return (*positions, len(header))


def _read_vectorised(path: Path, spec: RatingsFormat, scale: RatingScale) -> Ratings:
    user_at, movie_at, rating_at, width = _column_positions(path, spec)
    if spec.delimiter == "::":
        # pandas only splits on one character with its C parser; "a::b" on ':'
        # gives a, '', b, so real fields sit at even positions.
        separator, raw_width = ":", 2 * width - 1
        user_at, movie_at, rating_at = 2 * user_at, 2 * movie_at, 2 * rating_at
    else:
        separator, raw_width = spec.delimiter, width
    users, movies = _Vocabulary(), _Vocabulary()
    user_parts, movie_parts, rating_parts = [], [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            reader = pd.read_csv(
                path,
                sep=separator,
                header=0 if spec.has_header else None,
                index_col=False,
                dtype=str,
                na_filter=False,
                engine="c",
                encoding="utf-8-sig",
                quoting=csv.QUOTE_MINIMAL if spec.has_header else csv.QUOTE_NONE,
                chunksize=_CHUNK_ROWS,
            )
            with reader:
                for chunk in reader:
                    if chunk.shape[1] != raw_width:
                        raise _NeedsCarefulPass
                    fields = [chunk.iloc[:, i].to_numpy(dtype=object) for i in range(raw_width)]
                    for position, values in enumerate(fields):
                        # pandas reads a missing trailing field as "", like an
                        # empty one; only the careful pass can tell them apart.
                        empty = values == ""
                        if spec.delimiter == "::" and position % 2 == 1:
                            if not empty.all():
                                raise _NeedsCarefulPass
                        elif empty.any():
                            raise _NeedsCarefulPass
                    user_parts.append(users.codes_for(fields[user_at], "user"))
                    movie_parts.append(movies.codes_for(fields[movie_at], "movie"))
                    rating_codes, rating_texts = pd.factorize(fields[rating_at])
                    values = np.array([_parse_rating(text, scale) for text in rating_texts])
                    rating_parts.append(values[rating_codes])
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, _BadField):
        raise _NeedsCarefulPass from None
    if not rating_parts or sum(len(part) for part in rating_parts) == 0:
        raise _NeedsCarefulPass
    return _assemble(
        users,
        np.concatenate(user_parts),
        movies,
        np.concatenate(movie_parts),
        np.concatenate(rating_parts),
        path,
        spec,
    )


def _records(handle, spec: RatingsFormat) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line, the header included."""
    if spec.has_header:
        reader = csv.reader(handle)
        start = 1
        for record in reader:
            if not _is_blank_record(record):
                yield start, record
            start = reader.line_num + 1
    else:
        for number, line in enumerate(handle, 1):
            text = line.rstrip("\r\n")
            if text.strip(" "):
                yield number, text.split(spec.delimiter)


def _delimiter_hint(fields: list[str], spec: RatingsFormat) -> str:
    text = spec.delimiter.join(fields)
    candidates = (("\t", "tabs"), ("::", "'::'"), (",", "commas"), (";", "semicolons"))
    seen = [
        shown
        for delimiter, shown in candidates
        if delimiter != spec.delimiter and delimiter in text
    ]
    return (
        f"; the line contains {' and '.join(seen)}: is the file in another format?" if seen else ""
    )


def _read_line_by_line(path: Path, spec: RatingsFormat, scale: RatingScale) -> Ratings:
    user_texts, movie_texts, values = [], [], []
    rating_cache: dict[str, float] = {}
    user_at, movie_at, rating_at, width = 0, 1, 2, len(spec.columns)
    names = list(spec.columns)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            records = _records(handle, spec)
            if spec.has_header:
                # The header was checked by _column_positions; only skip it here.
                _, header = next(records)
                names = [name.strip() for name in header]
                user_at, movie_at, rating_at = (names.index(column) for column in spec.columns)
                width = len(names)
            for line, fields in records:
                if len(fields) != width:
                    if spec.has_header:
                        problem = f"expected {width} fields as in the header, found {len(fields)}"
                    else:
                        problem = (
                            f"expected {width} fields in the {spec.name} format "
                            f"({spec.description}), found {len(fields)}"
                        )
                    missing = names[len(fields)] if len(fields) < width else None
                    if missing:
                        problem += f"; missing {missing!r}"
                    raise RatingsFormatError(
                        path, problem + _delimiter_hint(fields, spec), line=line, field=missing
                    )
                for position, kind in ((user_at, "user"), (movie_at, "movie")):
                    try:
                        _check_id(fields[position], kind)
                    except _BadField as error:
                        raise RatingsFormatError(
                            path, str(error), line=line, field=names[position]
                        ) from None
                text = fields[rating_at]
                value = rating_cache.get(text)
                if value is None:
                    try:
                        value = rating_cache[text] = _parse_rating(text, scale)
                    except _BadField as error:
                        raise RatingsFormatError(
                            path, str(error), line=line, field=names[rating_at]
                        ) from None
                user_texts.append(fields[user_at])
                movie_texts.append(fields[movie_at])
                values.append(value)
    except UnicodeDecodeError:
        raise RatingsFormatError(
            path, "is not UTF-8 text", line=_first_undecodable_line(path)
        ) from None
    if not values:
        what = "a header but no data rows" if spec.has_header else "only blank lines"
        raise RatingsFormatError(path, f"no ratings: the file has {what}")
    users, movies = _Vocabulary(), _Vocabulary()
    user_codes = users.codes_for(np.array(user_texts, dtype=object), "user")
    movie_codes = movies.codes_for(np.array(movie_texts, dtype=object), "movie")
    return _assemble(users, user_codes, movies, movie_codes, np.array(values), path, spec)


# --------------------------------------------------------------------------
# Writing


def _format_rating(value: np.float32) -> str:
    # trim="0" keeps one digit after the point, so 4 is written "4.0" and
    # CsvExampleGen infers FLOAT for the column.
    return np.format_float_positional(value, unique=True, trim="0")


def write_normalized_csv(ratings: Ratings, path: os.PathLike | str) -> Path:
    """Write ``user_id,movie_id,rating`` atomically; returns the path written.

    The file appears complete or not at all: it is written beside its final
    place and renamed over it, so a crash leaves at most a hidden temp file.
    An existing file with the same bytes is left untouched: ExampleGen's input
    fingerprint includes the file's modification time, so rewriting identical
    ratings would defeat the pipeline's cache.
    """
    path = Path(path)
    if len(ratings) == 0:
        raise ValueError(f"{path}: no ratings to write")
    if not np.isfinite(ratings.ratings).all():
        raise ValueError(f"{path}: refusing to write non-finite ratings")
    path.parent.mkdir(parents=True, exist_ok=True)
    distinct, inverse = np.unique(ratings.ratings, return_inverse=True)
    texts = np.array([_format_rating(value) for value in distinct], dtype=object)[inverse]
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(NORMALIZED_COLUMNS)
            writer.writerows(zip(ratings.user_ids, ratings.movie_ids, texts, strict=False))
            handle.flush()
            os.fsync(handle.fileno())
        if path.is_file() and filecmp.cmp(temp_name, path, shallow=False):
            Path(temp_name).unlink()
            return path
        _apply_default_permissions(Path(temp_name))
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


# Files with more rows than this are not split-checked: with n distinct rows
# the chance that one of an 85/15 hash split's sides is empty is below
# 0.85 ** n, 1e-70 for 1,000.
SPLIT_CHECK_MAX_ROWS = 1000


class TooFewRatingsError(ValueError):
    """The ratings would leave ExampleGen's train or eval split empty."""


def _fingerprint64(data: bytes) -> int:
    """farmhash's Fingerprint64, which ExampleGen's tf.strings.to_hash_bucket_fast computes.

    pyfarmhash rather than TensorFlow: the runner checks a small file's split
    before any TensorFlow import.
    """
    import farmhash  # pylint: disable=g-import-not-at-top

    return farmhash.fingerprint64(data.decode("utf-8"))


def example_gen_split_sizes(
    path: os.PathLike | str, split_buckets: Sequence[tuple[str, int]]
) -> dict[str, int] | None:
    """Rows per split as ExampleGen's hash split will cut a CSV written here.

    ``components/arrow_csv_example_gen.py`` sends a row to the split of
    ``Fingerprint64(its cells as Arrow text, joined by \\x1f) % total buckets``;
    this does the same without TensorFlow. Returns None, reading at most
    ``SPLIT_CHECK_MAX_ROWS`` lines, for a larger file.

    Args:
      path: a CSV written by ``write_normalized_csv``.
      split_buckets: ``[(split name, hash buckets), ...]`` in ExampleGen's
        order, e.g. ``[("train", 17), ("eval", 3)]``.
    """
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.compute as pc  # pylint: disable=g-import-not-at-top
    import pyarrow.csv as pa_csv  # pylint: disable=g-import-not-at-top

    with open(path, "rb") as handle:
        lines = [line for _, line in zip(range(SPLIT_CHECK_MAX_ROWS + 2), handle, strict=False)]
    if len(lines) > SPLIT_CHECK_MAX_ROWS + 1:
        return None
    table = pa_csv.read_csv(
        io.BytesIO(b"".join(lines)),
        convert_options=pa_csv.ConvertOptions(**_EXAMPLE_GEN_CONVERT_OPTIONS),
    )
    names = [name for name, _ in split_buckets]
    sizes = dict.fromkeys(names, 0)
    if table.num_rows == 0:
        return sizes
    # arrow_csv_example_gen.row_keys, on the whole table.
    cells = [pc.fill_null(column.cast(pa.string()), "") for column in table.columns]
    keys = pc.binary_join_element_wise(*cells, "\x1f").to_pylist()
    edges = np.cumsum([buckets for _, buckets in split_buckets])
    buckets = np.array([_fingerprint64(key.encode()) % int(edges[-1]) for key in keys])
    for split in np.searchsorted(edges, buckets, side="right"):
        sizes[names[split]] += 1
    return sizes


def check_example_gen_splits(
    path: os.PathLike | str, split_buckets: Sequence[tuple[str, int]]
) -> None:
    """Raises ``TooFewRatingsError`` when a split of the CSV would be empty.

    ExampleGen assigns each row by a hash of its content, so a small file
    can land wholly in one split, and Transform or the Trainer then fails on
    the other ("No examples in ...Split-eval"). Only files of at most
    ``SPLIT_CHECK_MAX_ROWS`` rows are read.
    """
    sizes = example_gen_split_sizes(path, split_buckets)
    if sizes is None or all(sizes.values()):
        return
    total = sum(sizes.values())
    empty = [name for name, size in sizes.items() if not size]
    shares = ", ".join(f"{name} {buckets}" for name, buckets in split_buckets)
    raise TooFewRatingsError(
        f"too few ratings to split into {' and '.join(name for name, _ in split_buckets)}: "
        f"ExampleGen splits rows by a hash of their content ({shares} buckets) and none of "
        f"these {total} lands in {' or '.join(empty)}; add ratings (at least {MIN_RATINGS} "
        "different rows; from 30 on, an empty split has under 1% chance)"
    )


def _apply_default_permissions(path: Path) -> None:
    # mkstemp creates files readable by the owner only; the final
    # file should be as readable as any other the user creates.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


# --------------------------------------------------------------------------
# Download cache

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens"


@dataclasses.dataclass(frozen=True)
class MovieLensDataset:
    """One GroupLens archive: ``<name>.zip`` unpacks to ``folder/ratings_file``."""

    name: str
    folder: str
    ratings_file: str

    @property
    def url(self) -> str:
        return f"{GROUPLENS_BASE_URL}/{self.name}.zip"


DATASETS: dict[str, MovieLensDataset] = {
    dataset.name: dataset
    for dataset in (
        MovieLensDataset("ml-100k", "ml-100k", "u.data"),
        MovieLensDataset("ml-1m", "ml-1m", "ratings.dat"),
        MovieLensDataset("ml-10m", "ml-10M100K", "ratings.dat"),
        MovieLensDataset("ml-20m", "ml-20m", "ratings.csv"),
        MovieLensDataset("ml-25m", "ml-25m", "ratings.csv"),
        MovieLensDataset("ml-latest-small", "ml-latest-small", "ratings.csv"),
    )
}


def download_movielens(
    name: str, cache_dir: os.PathLike | str, base_url: str | None = None
) -> Path:
    """Return the unpacked folder of a GroupLens dataset, downloading it once.

    A folder already unpacked in ``cache_dir`` is returned without touching
    the network. ``base_url`` replaces the GroupLens address (``<base_url>/
    <name>.zip`` is fetched), e.g. a ``file://`` folder or a mirror.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown MovieLens dataset {name!r}; known: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    cache_dir = Path(cache_dir)
    target = cache_dir / dataset.folder
    if (target / dataset.ratings_file).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{name}.zip" if base_url else dataset.url
    archive = cache_dir / f"{name}.zip"
    if not zipfile.is_zipfile(archive):
        _download(url, archive, dataset)
    _unpack(archive, dataset, cache_dir, url)
    archive.unlink(missing_ok=True)
    return target


def _manual_hint(dataset: MovieLensDataset, url: str) -> str:
    return (
        f"download {url} yourself, unzip it and pass the {dataset.folder} folder "
        f"(the one holding {dataset.ratings_file}) as the data path instead"
    )


def _download(url: str, archive: Path, dataset: MovieLensDataset) -> None:
    descriptor, partial = tempfile.mkstemp(
        dir=archive.parent, prefix=f".{archive.name}.", suffix=".part"
    )
    try:
        with open(descriptor, "wb") as sink, urllib.request.urlopen(url, timeout=60) as response:
            expected = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"Downloading {archive.name}",
                disable=None,
            ) as progress:
                while block := response.read(1 << 20):
                    sink.write(block)
                    received += len(block)
                    progress.update(len(block))
        if expected is not None and received != expected:
            raise DownloadError(
                f"{url}: download stopped after {received} of {expected} bytes; "
                + _manual_hint(dataset, url)
            )
        if not zipfile.is_zipfile(partial):
            raise DownloadError(
                f"{url}: what came back is not a zip archive; " + _manual_hint(dataset, url)
            )
        os.replace(partial, archive)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        Path(partial).unlink(missing_ok=True)
        if isinstance(error, DownloadError):
            raise
        raise DownloadError(
            f"could not download {url} ({error}); " + _manual_hint(dataset, url)
        ) from error
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _unpack(archive: Path, dataset: MovieLensDataset, cache_dir: Path, url: str) -> None:
    target = cache_dir / dataset.folder
    scratch = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{dataset.name}.unpack."))
    try:
        try:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(scratch)
        except (zipfile.BadZipFile, OSError) as error:
            archive.unlink(missing_ok=True)
            raise DownloadError(
                f"{archive}: cannot unpack ({error}); it was removed so the next "
                f"call downloads it again, or " + _manual_hint(dataset, url)
            ) from error
        unpacked = scratch / dataset.folder
        if not (unpacked / dataset.ratings_file).is_file():
            found = ", ".join(sorted(p.name for p in scratch.iterdir())) or "nothing"
            raise DownloadError(
                f"{archive}: expected {dataset.folder}/{dataset.ratings_file} inside, "
                f"found {found}; " + _manual_hint(dataset, url)
            )
        if target.exists():
            # Only a folder without its ratings file gets here: a stale, partial cache.
            shutil.rmtree(target)
        try:
            unpacked.rename(target)
        except OSError:
            # Another process unpacked the same archive first.
            if not (target / dataset.ratings_file).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
