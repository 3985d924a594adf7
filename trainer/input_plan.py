"""Whether the Trainer reads its splits into memory or streams them, decided from their size.

Reading a split into memory once and drawing every epoch from a permutation
of its rows is much faster than decoding TFRecords each epoch, but it must
fit. The plan compares an upper bound of what the in-memory columns take
with the memory this process may still use (the machine's available memory,
or the container's cgroup limit when that is lower) and keeps a safety
margin for the model, TensorFlow and the Evaluator's later work.
"""

from __future__ import annotations

import dataclasses
import os
import struct

import tensorflow as tf

# Share of the available memory the in-memory splits may take; the rest is
# for the model, its optimizer state and TensorFlow's own buffers.
MEMORY_SHARE = 0.5
# A gzip member records its uncompressed size modulo 2**32; below this
# compressed size the real size cannot have wrapped, since examples of ids
# and a rating compress by far less than 16x.
_ISIZE_TRUSTED_BELOW = (1 << 32) // 16
_ASSUMED_COMPRESSION = 16
_GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """What the Trainer does with its splits, and the figures it decided on."""

    in_memory: bool
    record_bytes: int  # serialized TFRecord bytes of the splits, uncompressed
    available_bytes: int | None  # None: unknown (then streaming is only by request)
    reason: str

    def describe(self) -> str:
        mode = "reading both splits into memory" if self.in_memory else "streaming the TFRecords"
        return f"Input plan: {mode} ({self.reason})"


def plan(requested: bool | None, file_patterns: list[str]) -> InputPlan:
    """The plan for ``ModelConfig.input_in_memory`` (None: decide from the splits' size).

    The in-memory columns take fewer bytes a row than a serialized
    ``tf.Example`` of string ids does, counting the copies made while they
    are assembled, so the uncompressed record bytes bound them from above.
    """
    record_bytes = sum(_uncompressed_bytes(path) for path in _files(file_patterns))
    available = available_memory_bytes()
    figures = f"{record_bytes / _GIB:.2f} GiB of records"
    if available is not None:
        figures += f", {available / _GIB:.1f} GiB available"
    if requested is not None:
        setting = "true" if requested else "false"
        return InputPlan(
            requested, record_bytes, available, f"input_in_memory={setting}; {figures}"
        )
    if available is None:
        return InputPlan(True, record_bytes, None, f"{figures}, available memory unknown")
    fits = record_bytes <= MEMORY_SHARE * available
    verdict = "fits in" if fits else "exceeds"
    return InputPlan(
        fits,
        record_bytes,
        available,
        f"{figures}: {verdict} {MEMORY_SHARE:.0%} of the available memory",
    )


def _files(file_patterns: list[str]) -> list[str]:
    return [path for pattern in file_patterns for path in tf.io.gfile.glob(pattern)]


def _uncompressed_bytes(path: str) -> int:
    """The file's uncompressed size: a gzip file's trailer, else its size."""
    size = tf.io.gfile.stat(path).length
    if size < 18:  # smaller than a gzip header and trailer
        return size
    with tf.io.gfile.GFile(path, "rb") as f:
        magic = f.read(2)
        if magic != b"\x1f\x8b":
            return size
        if size >= _ISIZE_TRUSTED_BELOW:
            return size * _ASSUMED_COMPRESSION
        f.seek(size - 4)
        (isize,) = struct.unpack("<I", f.read(4))
    return max(isize, size)


def available_memory_bytes() -> int | None:
    """Memory this process may still use: the lower of the machine's and its cgroup's."""
    limits = [
        value for value in (_meminfo_available(), _cgroup_room()) if value is not None and value > 0
    ]
    return min(limits) if limits else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_room(root: str = "/sys/fs/cgroup") -> int | None:
    """Limit minus usage of this container's memory cgroup (v2, else v1); None if unlimited."""
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            with open(os.path.join(root, limit_file)) as f:
                limit = f.read().strip()
            with open(os.path.join(root, usage_file)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        # cgroup v1 writes a huge number for "no limit"; v2 writes "max".
        if limit == "max" or int(limit) >= 1 << 60:
            return None
        return int(limit) - usage
    return None
