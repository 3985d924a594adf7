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

Ids of the GroupLens formats get a ``user_`` / ``movie_`` prefix ("user_196"),
the names the models have always served; ids in a ``normalized`` file are
taken verbatim. Ids are otherwise kept exactly as written (spaces and any
Unicode included); only the rating has surrounding whitespace stripped
before it is parsed as a number. A NUL byte anywhere is an error, and so is
a line break inside a quoted field (rows are whole lines). What is not a
regular file (a FIFO, which would block), or is compressed, is refused
before it is opened for reading.

Duplicate (user, movie) rows are all kept: each is treated as an
independent observation (the GroupLens files contain none).

A file is read in byte ranges of whole lines (``byte_ranges``, ``read_range``,
``parse_range``), each on its own: ExampleGen parses them as Beam work
(``components/arrow_csv_example_gen.py``), ``read_ratings`` one after the
other. A range is parsed by a vectorised pass (Arrow); when that pass meets
anything unusual, a line-by-line pass reads the range again and either
returns the same rows or raises ``RatingsFormatError`` naming the file, line
and field.
"""

from __future__ import annotations

import csv
import dataclasses
import filecmp
import http.client
import math
import os
import posixpath
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from tqdm import tqdm

USER_PREFIX = "user_"
MOVIE_PREFIX = "movie_"
NORMALIZED_COLUMNS = ("user_id", "movie_id", "rating")

# Fewest ratings a run can take: ExampleGen must put at least one in the
# train split and one in eval (``too_few_ratings_error``).
MIN_RATINGS = 2

# Opens a path for reading bytes: ``open`` here, ``tf.io.gfile.GFile`` in
# ExampleGen (any file system TFX runs on).
OpenBinary = Callable[[str], BinaryIO]


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
            check_regular_file(candidate)
            return candidate, format_of_file(str(candidate))
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
    check_regular_file(path)
    return path, format_of_file(str(path))


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
_BOM = b"\xef\xbb\xbf"


def check_regular_file(path: os.PathLike | str) -> None:
    """Refuses what is not a plain, uncompressed local file, before anything opens it."""
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
        _check_not_compressed(path, handle.read(16))


def _check_not_compressed(path: os.PathLike | str, start: bytes) -> None:
    for magic, kind, fix in _COMPRESSED:
        if start.startswith(magic):
            raise RatingsFormatError(path, f"is {kind}; {fix}")
    if _BZIP2.match(start):
        raise RatingsFormatError(path, "is compressed (bzip2); decompress it first (bunzip2)")


def _open_local(path: str) -> BinaryIO:
    return open(path, "rb")


def format_of_file(path: str, open_binary: OpenBinary = _open_local) -> str:
    """The format a file's name (and a CSV's header) says it is in.

    Works on any path ``open_binary`` opens (``gs://`` included): only the
    name, the parent folder's name and the first non-blank line are read.
    """
    name = posixpath.basename(path).lower()
    suffix = posixpath.splitext(name)[1]
    if name == "u.data" or suffix in (".data", ".base", ".test"):
        return "100k"
    if suffix == ".dat":
        folder = posixpath.basename(posixpath.dirname(path)).lower()
        return "10m" if folder.startswith("ml-10m") else "1m"
    if suffix == ".csv":
        return _format_of_csv(path, open_binary)
    raise ValueError(
        f"{path}: unrecognised ratings file name (expected u.data, *.base, *.test, ratings.dat "
        f"or a .csv with header userId,movieId,rating,timestamp or user_id,movie_id,rating)"
    )


def _format_of_csv(path: str, open_binary: OpenBinary) -> str:
    first = _first_line(path, open_binary)
    if first is None:
        raise RatingsFormatError(
            path,
            "file is empty (expected a CSV with header userId,movieId,rating,timestamp or "
            "user_id,movie_id,rating)",
        )
    line, raw, _ = first
    header = _header_fields(path, line, raw)
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


_LINE_END = re.compile(rb"\r\n|\r|\n")
_HEADER_READ_BYTES = 1 << 16
_MORE = object()  # the first non-blank line is not whole yet: read on


def _first_line(path: str, open_binary: OpenBinary) -> tuple[int, bytes, int] | None:
    """(line number, bytes, offset after its end) of the first non-blank line, or None.

    Blank lines hold nothing but spaces; a UTF-8 byte order mark is skipped.
    Lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as everywhere in this module.
    """
    buffer = b""
    with open_binary(path) as handle:
        while True:
            chunk = handle.read(max(_HEADER_READ_BYTES, len(buffer)))
            buffer += chunk
            found = _first_nonblank(buffer, at_end=not chunk)
            if found is not _MORE:
                return found


def _first_nonblank(buffer: bytes, at_end: bool):
    position = len(_BOM) if buffer.startswith(_BOM) else 0
    number = 0
    while position < len(buffer):
        found = _LINE_END.search(buffer, position)
        # A "\r" at the end of what was read may be the start of "\r\n".
        if not at_end and (found is None or found.end() == len(buffer)):
            return _MORE
        end, after = (found.start(), found.end()) if found else (len(buffer), len(buffer))
        number += 1
        if buffer[position:end].strip(b" "):
            return number, buffer[position:end], after
        position = after
    return None if at_end else _MORE


def _header_fields(path: str, line: int, raw: bytes) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RatingsFormatError(path, "is not UTF-8 text", line=line) from None
    if "\0" in text:
        raise RatingsFormatError(path, _NUL_PROBLEM, line=line)
    return [name.strip() for name in next(csv.reader([text]))]


# --------------------------------------------------------------------------
# Reading: a file's layout from its first lines, then byte ranges of whole lines


@dataclasses.dataclass(frozen=True)
class FileLayout:
    """What parsing any byte range of a ratings file needs, read from its first lines.

    ``names`` are the fields' names for messages (the header's, or the
    format's columns); ``data_start`` is the offset after the byte order mark
    and the header.
    """

    path: str
    spec: RatingsFormat
    scale: RatingScale
    names: tuple[str, ...]
    user_at: int
    movie_at: int
    rating_at: int
    data_start: int
    size: int


def ratings_layout(
    path: os.PathLike | str,
    file_format: str | None = None,
    rating_scale: Sequence[float] | None = None,
    *,
    open_binary: OpenBinary = _open_local,
    size: int | None = None,
) -> FileLayout:
    """The layout of a ratings file; refuses what its first lines show is wrong.

    Reads the first bytes and the header only: a compressed file, an empty
    one, an unknown format and a header without the columns stop here.
    ``size`` defaults to the local file's.
    """
    path = str(path)
    with open_binary(path) as handle:
        start = handle.read(16)
    _check_not_compressed(path, start)
    name = file_format or format_of_file(path, open_binary)
    if name not in FORMATS:
        raise ValueError(f"unknown file_format {name!r}; known: {', '.join(FORMATS)}")
    spec = FORMATS[name]
    scale = spec.scale if rating_scale is None else RatingScale(*map(float, rating_scale))
    first = _first_line(path, open_binary)
    if first is None:
        raise RatingsFormatError(path, f"file is empty (expected {spec.description})")
    if spec.has_header:
        line, raw, data_start = first
        names = tuple(_header_fields(path, line, raw))
        positions = _column_positions(path, spec, names, line)
    else:
        data_start = len(_BOM) if start.startswith(_BOM) else 0
        names, positions = spec.columns, (0, 1, 2)
    return FileLayout(
        path=path,
        spec=spec,
        scale=scale,
        names=names,
        user_at=positions[0],
        movie_at=positions[1],
        rating_at=positions[2],
        data_start=data_start,
        size=os.path.getsize(path) if size is None else size,
    )


def _column_positions(
    path: str, spec: RatingsFormat, header: Sequence[str], line: int
) -> tuple[int, int, int]:
    """The user, movie and rating fields' positions in a header."""
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
    return tuple(positions)


# Bytes per range: about a million short rating lines, parsed at once.
RANGE_BYTES = 32 << 20
_SCAN_BYTES = 1 << 16


def byte_ranges(layout: FileLayout, range_bytes: int = RANGE_BYTES) -> list[tuple[int, int]]:
    """``[start, end)`` byte ranges covering the file's rows; at least one, maybe empty.

    The fewest ranges of at most ``range_bytes``, of equal sizes (to a byte):
    each range becomes one shard per split, and the steps that read the
    shards give each worker whole shards, so a short last range would leave
    workers idle while the others finish.
    """
    data_bytes = layout.size - layout.data_start
    count = max(1, -(-data_bytes // range_bytes))
    edges = [layout.data_start + data_bytes * i // count for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def read_range(
    layout: FileLayout, start: int, end: int, open_binary: OpenBinary = _open_local
) -> tuple[bytes, int]:
    """The whole lines that start in ``[start, end)``, and the offset of the first.

    A line starts after a ``\\n`` (or at ``data_start``), so consecutive
    ranges hold every line exactly once wherever their edges fall.
    """
    with open_binary(layout.path) as handle:
        first = start
        if start > layout.data_start:
            handle.seek(start - 1)
            first = start - 1
            while True:
                chunk = handle.read(_SCAN_BYTES)
                found = chunk.find(b"\n")
                if found >= 0 or not chunk:
                    first += found + 1 if found >= 0 else len(chunk)
                    break
                first += len(chunk)
        if first >= end:
            return b"", first
        handle.seek(first)
        data = handle.read(end - first)
        tail = []
        if data and not data.endswith(b"\n"):
            while chunk := handle.read(_SCAN_BYTES):
                found = chunk.find(b"\n")
                if found >= 0:
                    tail.append(chunk[: found + 1])
                    break
                tail.append(chunk)
    return data + b"".join(tail), first


def lines_before(path: str, offset: int, open_binary: OpenBinary = _open_local) -> int:
    """Line ends (``\\n``, ``\\r\\n``, ``\\r``) in the file's first ``offset`` bytes."""
    count, remaining, carriage_return = 0, offset, False
    with open_binary(path) as handle:
        while remaining > 0 and (chunk := handle.read(min(_COUNT_BYTES, remaining))):
            remaining -= len(chunk)
            count += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            if carriage_return and chunk.startswith(b"\n"):
                count -= 1  # a "\r\n" split between two reads
            carriage_return = chunk.endswith(b"\r")
    return count


_COUNT_BYTES = 1 << 24


@dataclasses.dataclass(frozen=True, eq=False)
class RangeRows:
    """The ratings of one byte range, ids as the examples hold them (with the format's prefix)."""

    user_ids: pa.Array  # binary
    movie_ids: pa.Array  # binary
    rating_codes: np.ndarray  # int32, an index into rating_values per row
    rating_values: np.ndarray  # float32, the rating of each distinct rating text

    def __len__(self) -> int:
        return len(self.rating_codes)

    @property
    def ratings(self) -> np.ndarray:
        return self.rating_values[self.rating_codes]


def parse_range(
    layout: FileLayout, data: bytes, offset: int, open_binary: OpenBinary = _open_local
) -> RangeRows:
    """Parses and checks whole lines read at ``offset`` of the file (``read_range``).

    A vectorised pass (Arrow) reads well-formed lines; when it meets anything
    unusual, a line-by-line pass reads the range again and either returns the
    same rows or raises ``RatingsFormatError`` naming the file, line and field.
    Only then are the lines before ``offset`` counted, to number the line.
    """
    rows = _parse_vectorised(layout, data)
    if rows is None:
        rows = _parse_line_by_line(
            layout, data, lambda: lines_before(layout.path, offset, open_binary) + 1
        )
    if not layout.spec.prefix_ids:
        return rows
    return dataclasses.replace(
        rows,
        user_ids=_prefixed(USER_PREFIX, rows.user_ids),
        movie_ids=_prefixed(MOVIE_PREFIX, rows.movie_ids),
    )


def _prefixed(prefix: str, ids: pa.Array) -> pa.Array:
    empty = pa.scalar(b"", pa.binary())
    return pc.binary_join_element_wise(pa.scalar(prefix.encode(), pa.binary()), ids, empty)


def no_ratings_error(layout: FileLayout) -> RatingsFormatError:
    what = "a header but no data rows" if layout.spec.has_header else "only blank lines"
    return RatingsFormatError(layout.path, f"no ratings: the file has {what}")


class _BadField(Exception):
    """A field value that is wrong wherever it appears; carries the reason."""


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


class _RatingCodes:
    """Each distinct rating text parsed once: ratings files hold a handful of them."""

    def __init__(self, scale: RatingScale):
        self._scale = scale
        self._codes: dict[str, int] = {}
        self._values: list[float] = []

    def code(self, text: str) -> int:
        code = self._codes.get(text)
        if code is None:
            value = _parse_rating(text, self._scale)
            code = self._codes[text] = len(self._values)
            self._values.append(value)
        return code

    def values(self) -> np.ndarray:
        return np.array(self._values, dtype=np.float32)


def _parse_vectorised(layout: FileLayout, data: bytes) -> RangeRows | None:
    """The range's rows, or None when anything needs the line-by-line pass."""
    spec = layout.spec
    if not data.strip(b"\r\n"):
        return _rows([], [], [], _RatingCodes(layout.scale))
    if b"\0" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    delimiter = spec.delimiter
    if len(delimiter) > 1:
        # Arrow splits on one byte; "::" becomes a byte no ratings line holds.
        if b"\x1f" in data:
            return None
        data, delimiter = data.replace(delimiter.encode(), b"\x1f"), "\x1f"
    quoted = spec.has_header and b'"' in data
    names = [f"f{i}" for i in range(len(layout.names))]
    user, movie, rating = (names[at] for at in (layout.user_at, layout.movie_at, layout.rating_at))
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                # Headerless GroupLens files have no quoting: a quote is part of the id.
                quote_char='"' if spec.has_header else False,
                escape_char=False,
                newlines_in_values=quoted,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={
                    user: pa.binary(),
                    movie: pa.binary(),
                    rating: pa.dictionary(pa.int32(), pa.string()),
                },
                include_columns=[user, movie, rating],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    ids = [table.column(name).combine_chunks() for name in (user, movie)]
    for column in ids:
        text = column.view(pa.string())
        blank = pc.or_(pc.equal(pc.binary_length(column), 0), pc.utf8_is_space(text))
        # A quoted line break would make one row of two lines; only whole lines are rows.
        if column.null_count or pc.any(blank).as_py():
            return None
        if quoted and pc.any(pc.match_substring_regex(text, "[\r\n]")).as_py():
            return None
    ratings = _RatingCodes(layout.scale)
    codes = []
    try:
        for chunk in table.column(rating).chunks:
            texts = chunk.dictionary.to_pylist()
            if chunk.null_count or (quoted and any("\n" in t or "\r" in t for t in texts)):
                return None
            mapping = np.array([ratings.code(text) for text in texts], dtype=np.int32)
            codes.append(mapping[chunk.indices.to_numpy()])
    except _BadField:
        return None
    return RangeRows(
        user_ids=ids[0],
        movie_ids=ids[1],
        rating_codes=np.concatenate(codes) if codes else np.zeros(0, np.int32),
        rating_values=ratings.values(),
    )


def _rows(users: list[str], movies: list[str], codes: list[int], ratings: _RatingCodes):
    return RangeRows(
        user_ids=pa.array(users, pa.string()).view(pa.binary()),
        movie_ids=pa.array(movies, pa.string()).view(pa.binary()),
        rating_codes=np.array(codes, dtype=np.int32),
        rating_values=ratings.values(),
    )


_NUL_PROBLEM = (
    "contains a NUL byte (\\0): remove it (ids are kept exactly as written, and a NUL "
    "would cut one short)"
)


def _parse_line_by_line(
    layout: FileLayout, data: bytes, first_line: Callable[[], int]
) -> RangeRows:
    """The range's rows, or the first bad line's ``RatingsFormatError``."""
    users, movies, codes = [], [], []
    ratings = _RatingCodes(layout.scale)
    for index, raw in enumerate(data.splitlines()):
        try:
            row = _parse_line(layout, raw, ratings)
        except _BadLine as bad:
            raise RatingsFormatError(
                layout.path, bad.problem, line=first_line() + index, field=bad.field
            ) from None
        if row is not None:
            users.append(row[0])
            movies.append(row[1])
            codes.append(row[2])
    return _rows(users, movies, codes, ratings)


class _BadLine(Exception):
    def __init__(self, problem: str, field: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.field = field


def _parse_line(
    layout: FileLayout, raw: bytes, ratings: _RatingCodes
) -> tuple[str, str, int] | None:
    """(user, movie, rating code) of one line, None for a blank one; raises ``_BadLine``."""
    spec, names, width = layout.spec, layout.names, len(layout.names)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadLine("is not UTF-8 text") from None
    if "\0" in text:
        marked = _fields(text.replace("\0", "\ufffe"), spec)
        at = next((i for i, value in enumerate(marked) if "\ufffe" in value), width)
        raise _BadLine(_NUL_PROBLEM, names[at] if at < width else None)
    if not text.strip(" "):
        return None
    fields = _fields(text, spec)
    if spec.has_header and _is_blank_record(fields):
        return None
    for at, value in enumerate(fields):
        if "\n" in value:
            raise _BadLine(
                "a quoted field runs past the end of the line: close the quote (ids and "
                "ratings cannot hold line breaks)",
                names[at] if at < width else None,
            )
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
        raise _BadLine(problem + _delimiter_hint(fields, spec), missing)
    for at, kind in ((layout.user_at, "user"), (layout.movie_at, "movie")):
        if not fields[at].strip():
            raise _BadLine(f"{kind} id is empty", names[at])
    try:
        code = ratings.code(fields[layout.rating_at])
    except _BadField as bad:
        raise _BadLine(str(bad), names[layout.rating_at]) from None
    return fields[layout.user_at], fields[layout.movie_at], code


def _fields(text: str, spec: RatingsFormat) -> list[str]:
    if not spec.has_header:
        return text.split(spec.delimiter)
    # The line end makes a quote left open show: the field then holds it.
    return next(csv.reader([text + "\n"]))


def _is_blank_record(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip(" "))


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


# Bytes of a file's rows the runner checks before the pipeline starts: a
# mistake in the first lines (or anywhere in a small file) stops the run at once.
PREVIEW_BYTES = 1 << 20


def check_ratings_file(path: os.PathLike | str) -> FileLayout:
    """Finds the ratings file at ``path`` and checks its header and first lines.

    The cheap checks, before any pipeline runs: the file exists, is a regular
    uncompressed file in a known format with the columns it needs, and its
    first ``PREVIEW_BYTES`` parse (the whole file when it is that small, so a
    file without ratings stops here too). ExampleGen checks every row.
    """
    file_path, name = find_ratings_file(path)
    layout = ratings_layout(file_path, name)
    end = min(layout.size, layout.data_start + PREVIEW_BYTES)
    rows = parse_range(layout, *read_range(layout, layout.data_start, end))
    if not len(rows) and end >= layout.size:
        raise no_ratings_error(layout)
    return layout


def rating_counts(layout: FileLayout) -> tuple[np.ndarray, np.ndarray]:
    """Ratings per distinct user and per distinct movie in the whole file (in
    no particular order); reads and checks every row."""
    users, movies = [], []
    for edges in byte_ranges(layout):
        part = parse_range(layout, *read_range(layout, *edges))
        users.append(pc.value_counts(part.user_ids))
        movies.append(pc.value_counts(part.movie_ids))
    if not sum(len(part) for part in users):
        raise no_ratings_error(layout)
    return tuple(_summed_counts(parts) for parts in (users, movies))


def _summed_counts(parts: list[pa.StructArray]) -> np.ndarray:
    # Large offsets: the distinct ids of a huge file may pass 2 GB.
    ids = pa.concat_arrays([part.field("values").cast(pa.large_binary()) for part in parts])
    counts = pa.concat_arrays([part.field("counts") for part in parts])
    summed = pa.table({"id": ids, "n": counts}).group_by("id").aggregate([("n", "sum")])
    return summed.column("n_sum").to_numpy()


def read_ratings(
    path: os.PathLike | str,
    rating_scale: Sequence[float] | None = None,
    *,
    file_format: str | None = None,
) -> Ratings:
    """Read every rating in a MovieLens folder or ratings file, in this process.

    The pipeline reads files in ExampleGen; this is for benchmarks and tests,
    with the same parsing and checks.

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
    layout = ratings_layout(file_path, file_format or detected, rating_scale)
    parts = [parse_range(layout, *read_range(layout, *edges)) for edges in byte_ranges(layout)]
    if not sum(len(part) for part in parts):
        raise no_ratings_error(layout)
    return Ratings(
        user_ids=np.concatenate([_strings(part.user_ids) for part in parts]),
        movie_ids=np.concatenate([_strings(part.movie_ids) for part in parts]),
        ratings=np.concatenate([part.ratings for part in parts]),
        source=str(file_path),
        format=layout.spec.name,
    )


def _strings(ids: pa.Array) -> np.ndarray:
    """The ids as ``str`` objects, each distinct id one object, as a vocabulary holds them."""
    encoded = ids.view(pa.string()).dictionary_encode()
    return encoded.dictionary.to_numpy(zero_copy_only=False)[encoded.indices.to_numpy()]


# --------------------------------------------------------------------------
# Writing


def format_rating(value: np.float32) -> str:
    """The shortest text of a float32 rating, with a point: 4 is "4.0", 3.5 is "3.5".

    ExampleGen's split hash reads a rating as this text (``split_of_rows``),
    so it must not change.
    """
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
    texts = np.array([format_rating(value) for value in distinct], dtype=object)[inverse]
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


class TooFewRatingsError(ValueError):
    """The ratings leave ExampleGen's train or eval split empty."""


def too_few_ratings_error(
    sizes: dict[str, int], split_buckets: Sequence[tuple[str, int]]
) -> TooFewRatingsError:
    """The error for splits of these sizes, some empty: what happened and what to do.

    ExampleGen assigns each row by a hash of its content, so a small file
    can land wholly in one split, and Transform or the Trainer would then
    fail on the other ("No examples in ...Split-eval").
    """
    total = sum(sizes.values())
    empty = [name for name, size in sizes.items() if not size]
    shares = ", ".join(f"{name} {buckets}" for name, buckets in split_buckets)
    return TooFewRatingsError(
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
