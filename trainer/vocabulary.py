"""Train-split id counts from a TF-Transform vocabulary file, as one array.

Transform writes ``count token`` per line, most frequent first. A Python loop
over the lines and a list of ints cost minutes and tens of bytes per id at
100M ids. The counts of a frequency-sorted vocabulary are long runs of equal
values (a long tail of ids seen once, twice, ...), so the file is read in
segments: a segment whose first and last counts agree holds that count on
every line, and only its newlines are counted (in C); a segment whose ends
differ is halved until they agree. Reading costs a pass of ``bytes.count``
over the file plus a few lines per distinct count.
"""

import os

import numpy as np
import tensorflow as tf

SEGMENT_BYTES = 8 << 20
# Below this a segment whose ends differ is parsed whole, with numpy.
_SMALL_SEGMENT = 64 << 10
_MAX_DIGITS = 10
_DIGIT_0, _DIGIT_9, _SPACE, _NEWLINE = ord("0"), ord("9"), ord(" "), ord("\n")


def read_counts(path: str, segment_bytes: int = SEGMENT_BYTES) -> np.ndarray:
    """The count of each vocabulary line, in file order (int32).

    Raises:
      ValueError: naming the file and line of a line that is not
        ``<count> <token>`` where one is read, counts that are not in
        descending order (not a frequency-sorted vocabulary), or a file
        with no ids.
    """
    values, lengths = [], []
    lines_before = 0
    # TensorFlow's file layer for gs:// and the like; Python's is faster on disk.
    opener = open if "://" not in path else tf.io.gfile.GFile
    with opener(path, "rb") as f:
        carry = b""
        while True:
            chunk = f.read(segment_bytes)
            data = carry + chunk
            if not chunk:
                if data:
                    _add_runs(data + b"\n", path, lines_before, values, lengths)
                break
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                lines_before += _add_runs(data[:cut], path, lines_before, values, lengths)
    if not lengths or not sum(lengths):
        raise ValueError(f"Vocabulary {path} is empty: no ids in the train split")
    if any(later > earlier for earlier, later in zip(values, values[1:], strict=False)):
        raise ValueError(f"Vocabulary {path} is not sorted by frequency (most frequent first)")
    return np.repeat(np.asarray(values, np.int32), np.asarray(lengths, np.int64))


def _add_runs(block: bytes, path: str, lines_before: int, values: list, lengths: list) -> int:
    """Appends (count, lines) runs for ``block``, whole lines ending in a newline; its lines."""
    first = _count(block[: block.index(b"\n") + 1], path, lines_before)
    last_start = block.rfind(b"\n", 0, len(block) - 1) + 1
    last = _count(block[last_start:], path, None)
    if last is None:  # a bad last line: its number is worth a count of the block
        _count(block[last_start:], path, lines_before + block.count(b"\n") - 1)
    if first == last:
        lines = block.count(b"\n")
        _append(values, lengths, first, lines)
        return lines
    if len(block) <= _SMALL_SEGMENT:
        counts = _parse(block, path, lines_before)
        starts = np.flatnonzero(np.diff(counts, prepend=-1))
        for value, length in zip(counts[starts], np.diff(starts, append=len(counts)), strict=False):
            _append(values, lengths, int(value), int(length))
        return len(counts)
    middle = block.index(b"\n", len(block) // 2 - 1) + 1
    head = _add_runs(block[:middle], path, lines_before, values, lengths)
    return head + _add_runs(block[middle:], path, lines_before + head, values, lengths)


def _append(values: list, lengths: list, value: int, length: int) -> None:
    if values and values[-1] == value:
        lengths[-1] += length
    else:
        values.append(value)
        lengths.append(length)


def _count(line: bytes, path: str, index):
    """The line's count; a bad line raises, naming line ``index`` (None: returns None)."""
    count, space, _ = line.partition(b" ")
    if not (space and count.isdigit() and int(count) < 2**31):
        if index is None:
            return None
        _bad_line(path, index, line)
    return int(count)


def _bad_line(path: str, index: int, line: bytes):
    text = line.rstrip(b"\n")
    raise ValueError(f"{os.fspath(path)}:{index + 1}: expected 'count token', got {text!r}")


def _parse(block: bytes, path: str, lines_before: int) -> np.ndarray:
    """Every line's count in ``block`` (whole lines), vectorized digit by digit."""
    buffer = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(buffer == _NEWLINE)
    starts = np.concatenate(([0], ends[:-1] + 1))
    spaces = np.flatnonzero(buffer == _SPACE)
    at = np.searchsorted(spaces, starts)
    first_space = np.append(spaces, len(buffer))[at]
    digits = first_space - starts
    counts = np.zeros(len(starts), dtype=np.int64)
    for k in range(min(int(digits.max()), _MAX_DIGITS)):
        byte = buffer[np.maximum(first_space - 1 - k, 0)].astype(np.int64)
        counts += np.where(k < digits, byte - _DIGIT_0, 0) * 10**k
    bad = (digits < 1) | (digits > _MAX_DIGITS) | (first_space > ends) | (counts >= 2**31)
    is_digit = (buffer >= _DIGIT_0) & (buffer <= _DIGIT_9)
    non_digits = np.cumsum(~is_digit)
    # A line's count field holds no non-digit: the running count does not move over it.
    bad |= non_digits[np.maximum(first_space - 1, 0)] - non_digits[starts] + ~is_digit[starts] > 0
    if bad.any():
        line = int(np.argmax(bad))
        _bad_line(path, lines_before + line, bytes(buffer[starts[line] : ends[line] + 1]))
    return counts.astype(np.int32)
