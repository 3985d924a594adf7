"""Measuring helpers of the speed benchmark: machine facts, load, latency, memory, MLMD timings.

Kept free of TensorFlow so ``speed_test.py`` stays fast and the pipeline
benchmark's parent process stays small while it watches its subprocesses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import re
import subprocess
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import psutil

GIB = 2**30
# The process tree's summed RSS is sampled this often; a peak shorter than
# this can be missed. Each process's own peak (VmHWM) cannot be missed, but
# only the last sample before it exits is seen.
RSS_POLL_SECONDS = 0.2


def machine_info() -> Dict:
    """What the figures were measured on."""
    cpu_model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gb": round(psutil.virtual_memory().total / GIB, 1),
        "ram_available_gb_at_start": round(psutil.virtual_memory().available / GIB, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load_1min() -> float:
    return round(os.getloadavg()[0], 2)


@dataclasses.dataclass
class Timed:
    """Wall time of a block and the 1-minute load average when it started and ended."""

    seconds: float = 0.0
    load_1min_start: float = 0.0
    load_1min_end: float = 0.0

    def as_dict(self) -> Dict:
        return {
            "seconds": round(self.seconds, 2),
            "load_1min_start": self.load_1min_start,
            "load_1min_end": self.load_1min_end,
        }


@contextlib.contextmanager
def timed() -> Iterator[Timed]:
    record = Timed(load_1min_start=load_1min())
    started = time.perf_counter()
    try:
        yield record
    finally:
        record.seconds = time.perf_counter() - started
        record.load_1min_end = load_1min()


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the two nearest ranks (numpy's default)."""
    if not len(samples):
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def latency_summary(seconds: Sequence[float]) -> Dict:
    """p50/p90/p99/mean/min/max of per-call latencies, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "calls": len(ms),
        "p50_ms": round(percentile(ms, 50), 4),
        "p90_ms": round(percentile(ms, 90), 4),
        "p99_ms": round(percentile(ms, 99), 4),
        "mean_ms": round(float(np.mean(ms)), 4),
        "min_ms": round(min(ms), 4),
        "max_ms": round(max(ms), 4),
    }


def peak_rss_bytes(pid="self") -> int:
    """The process's own peak RSS: VmHWM of /proc/<pid>/status (0 if unreadable).

    Unlike ``ru_maxrss`` it belongs to the program the process runs now: a
    child forked from a large parent (this benchmark holds TensorFlow by the
    time it starts the scale runs) is charged the parent's pages in
    ``ru_maxrss`` until it execs, but starts a fresh VmHWM at exec.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_bytes(process: psutil.Process) -> tuple[int, int]:
    """Summed RSS of a process and its descendants, and the largest VmHWM among them."""
    total = largest_peak = 0
    try:
        members = [process] + process.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    for member in members:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        largest_peak = max(largest_peak, peak_rss_bytes(member.pid))
    return total, largest_peak


class PeakRssMonitor:
    """Polls a process tree on a thread.

    ``peak_bytes``: the largest summed RSS of the tree seen;
    ``peak_process_bytes``: the largest single-process peak (VmHWM) seen.
    """

    def __init__(self, pid: int, interval: float = RSS_POLL_SECONDS):
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.peak_bytes = 0
        self.peak_process_bytes = 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            total, largest_peak = tree_rss_bytes(self._process)
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_process_bytes = max(self.peak_process_bytes, largest_peak)
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakRssMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclasses.dataclass
class ProcessRun:
    """One measured subprocess."""

    command: List[str]
    returncode: int
    timing: Timed
    # Largest summed RSS of the process tree seen by polling.
    peak_tree_rss_bytes: int
    # Largest own peak (VmHWM) of any process in the tree, as last polled.
    peak_process_rss_bytes: int

    def as_dict(self) -> Dict:
        return {
            "command": " ".join(self.command),
            "returncode": self.returncode,
            **self.timing.as_dict(),
            "peak_tree_rss_gb": round(self.peak_tree_rss_bytes / GIB, 3),
            "peak_process_rss_gb": round(self.peak_process_rss_bytes / GIB, 3),
        }


def run_measured(
    command: List[str],
    cwd: str,
    log_path: str,
    env: Optional[Dict[str, str]] = None,
    timeout: Optional[float] = None,
) -> ProcessRun:
    """Runs ``command`` with output to ``log_path``; wall time, load and peak memory.

    The wall time covers the whole process, interpreter start and imports
    included. On timeout the process group is killed and the return code is
    that of the killed process.
    """
    with open(log_path, "wb") as log, timed() as timing:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        with PeakRssMonitor(process.pid) as monitor:
            status = _wait_with_deadline(process, deadline)
        # Popen would otherwise try to reap the pid again.
        process.returncode = os.waitstatus_to_exitcode(status)
    return ProcessRun(
        command=list(command),
        returncode=process.returncode,
        timing=timing,
        peak_tree_rss_bytes=monitor.peak_bytes,
        peak_process_rss_bytes=monitor.peak_process_bytes,
    )


def _wait_with_deadline(process: subprocess.Popen, deadline: Optional[float]) -> int:
    """Reaps the process (killing its group at the deadline); its wait status."""
    while True:
        pid, status = os.waitpid(process.pid, os.WNOHANG)
        if pid:
            return status
        if deadline is not None and time.monotonic() > deadline:
            os.killpg(process.pid, 9)
            return os.waitpid(process.pid, 0)[1]
        time.sleep(0.05)


def component_seconds(metadata_path: str) -> Dict[str, Dict]:
    """Wall time of each pipeline node's executions, from the run's ML Metadata.

    An execution's ``create_time_since_epoch`` is set when the orchestrator
    registers it (just before the executor starts) and
    ``last_update_time_since_epoch`` when it publishes the outputs, so the
    difference is the component's own time, launcher overhead included.
    Nodes are named by their ``node`` context (``<pipeline>.<node id>``),
    ordered by when they started.
    """
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    rows = []
    for context in store.get_contexts_by_type("node"):
        node_id = context.name.split(".", 1)[-1]
        for execution in store.get_executions_by_context(context.id):
            rows.append(
                (
                    execution.create_time_since_epoch,
                    node_id,
                    (execution.last_update_time_since_epoch - execution.create_time_since_epoch)
                    / 1000,
                    metadata_store_pb2.Execution.State.Name(execution.last_known_state),
                )
            )
    timings: Dict[str, Dict] = {}
    for _, node_id, seconds, state in sorted(rows):
        entry = timings.setdefault(node_id, {"seconds": 0.0, "executions": 0, "state": state})
        entry["seconds"] = round(entry["seconds"] + seconds, 3)
        entry["executions"] += 1
        entry["state"] = state
    return timings


# Keras 3's verbose=2 line at the end of an epoch, e.g.
# "664/664 - 4s - 6ms/step - loss: 0.91 - rmse: 0.95 - val_loss: ...".
_KERAS_EPOCH_LINE = re.compile(
    r"(?P<steps>\d+)/(?P=steps) - (?P<seconds>\d+(?:\.\d+)?)s - "
    r"(?P<per_step>\d+(?:\.\d+)?)(?P<unit>ms|us|s)/step(?P<rest>.*)"
)


def keras_epochs(log_text: str) -> List[Dict]:
    """Steps, seconds and time per step of each epoch Keras logged with ``verbose=2``.

    Keras rounds the epoch time to whole seconds, so ``ms_per_step`` is the
    finer figure.
    """
    scale = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    epochs = []
    for match in _KERAS_EPOCH_LINE.finditer(log_text):
        entry = {
            "steps": int(match["steps"]),
            "seconds": float(match["seconds"]),
            "ms_per_step": round(float(match["per_step"]) * scale[match["unit"]], 4),
        }
        rmse = re.search(r"val_rmse: (\d+\.\d+)", match["rest"])
        if rmse:
            entry["val_rmse"] = float(rmse[1])
        epochs.append(entry)
    return epochs


def epoch_summary(
    started: float,
    epoch_begin: Sequence[float],
    validation_begin: Sequence[float],
    epoch_end: Sequence[float],
    val_rmse: Sequence[float],
    examples_per_epoch: Sequence[int],
    target_rmse: Optional[float] = None,
) -> Dict:
    """Per-epoch times, throughput, and when the best (and the target) eval RMSE was reached.

    Arguments are ``time.perf_counter()`` marks: ``started`` once, the others
    one per epoch (an epoch's training runs from its begin to its validation
    begin), and the examples each epoch trained on. The first epoch also
    traces the train function, so ``examples_per_second`` uses the later
    epochs when there are any.
    """
    train_seconds = [v - b for b, v in zip(epoch_begin, validation_begin)]
    validation_seconds = [e - v for v, e in zip(validation_begin, epoch_end)]
    since_start = [e - started for e in epoch_end]
    finite = [(r, i) for i, r in enumerate(val_rmse) if not math.isnan(r)]
    best = min(finite)[1] if finite else None
    steady = slice(1, None) if len(train_seconds) > 1 else slice(None)
    steady_seconds = sum(train_seconds[steady])
    result = {
        "epochs_run": len(epoch_end),
        "val_rmse_per_epoch": [round(r, 4) for r in val_rmse],
        "train_seconds_per_epoch": [round(s, 2) for s in train_seconds],
        "validation_seconds_per_epoch": [round(s, 2) for s in validation_seconds],
        "seconds_since_start_per_epoch": [round(s, 2) for s in since_start],
        "examples_per_second_first_epoch": (
            round(examples_per_epoch[0] / train_seconds[0]) if train_seconds else None
        ),
        "examples_per_second": (
            round(sum(examples_per_epoch[: len(train_seconds)][steady]) / steady_seconds)
            if steady_seconds
            else None
        ),
        "best_val_rmse": round(val_rmse[best], 4) if best is not None else None,
        "best_epoch": best + 1 if best is not None else None,
        "seconds_to_best": round(since_start[best], 2) if best is not None else None,
    }
    if target_rmse is not None:
        reached = [i for i, r in enumerate(val_rmse) if r <= target_rmse]
        result["target_val_rmse"] = target_rmse
        result["epochs_to_target"] = reached[0] + 1 if reached else None
        result["seconds_to_target"] = round(since_start[reached[0]], 2) if reached else None
    return result


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")
