"""Vocabulary counts parsed in chunks equal a line-by-line parse; bad lines are named."""

import numpy as np
import pytest

from trainer import vocabulary


def _naive(text: bytes):
    return [int(line.partition(b" ")[0]) for line in text.splitlines()]


def _write(tmp_path, text: bytes):
    path = tmp_path / "vocab"
    path.write_bytes(text)
    return str(path)


@pytest.mark.parametrize("segment_bytes", [7, 64, 1 << 20])
def test_chunked_counts_equal_a_line_by_line_parse(tmp_path, segment_bytes):
    rng = np.random.default_rng(0)
    # Frequency order, as Transform writes it: long runs of equal counts.
    counts = np.sort(rng.zipf(1.5, size=20_000).clip(1, 2_000_000_000))[::-1]
    tokens = [f"user {i}" if i % 7 == 0 else f"movie_{i}\u00e9" for i in range(len(counts))]
    text = "".join(f"{c} {t}\n" for c, t in zip(counts, tokens, strict=False)).encode()
    path = _write(tmp_path, text)
    got = vocabulary.read_counts(path, segment_bytes=segment_bytes)
    assert got.dtype == np.int32
    assert got.tolist() == _naive(text) == counts.tolist()


def test_a_last_line_without_newline_counts(tmp_path):
    assert vocabulary.read_counts(_write(tmp_path, b"5 a\n3 b"), segment_bytes=3).tolist() == [5, 3]


@pytest.mark.parametrize(
    "text, line",
    [(b"5 a\nx b\n", 2), (b"5 a\n3 b\n4\n", 3), (b"5 a\n 3 b\n", 2), (b"99999999999 a\n", 1)],
)
def test_a_bad_line_is_named_by_file_and_number(tmp_path, text, line):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=f"{path}:{line}: expected 'count token'"):
        vocabulary.read_counts(path, segment_bytes=4)


def test_counts_out_of_frequency_order_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not sorted by frequency"):
        vocabulary.read_counts(_write(tmp_path, b"5 a\n3 b\n4 c\n"), segment_bytes=4)


def test_an_empty_vocabulary_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        vocabulary.read_counts(_write(tmp_path, b""))
