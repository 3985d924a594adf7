"""What every benchmark records: the machine, the commit, wall time and load, memory, latency.

Free of TensorFlow, so the speed benchmark's parent process stays small
while it watches the pipeline it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psutil

GIB = 2**30
REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> str:
    try:
        return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True).stdout
    except OSError:
        return ""


def machine_info() -> dict:
    """Facts read from this machine now: CPU, cores, memory, GPUs, Python, commit."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    gpus = _run("nvidia-smi", "-L").splitlines() if shutil.which("nvidia-smi") else []
    # --no-optional-locks: never touch the index; others work in this tree.
    git = ("git", "--no-optional-locks")
    return {
        "cpu_model": cpu[1].strip() if cpu else platform.processor() or "unknown",
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / GIB, 1),
        "ram_available_gb_at_start": round(psutil.virtual_memory().available / GIB, 1),
        "nvidia_smi_gpus": gpus if shutil.which("nvidia-smi") else "nvidia-smi not found",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_head": _run(*git, "rev-parse", "--short", "HEAD").strip(),
        "git_uncommitted_files": len(_run(*git, "status", "--porcelain").splitlines()),
    }


@dataclasses.dataclass
class Timed:
    """Wall time of a block and the 1-minute load average when it started and ended."""

    seconds: float = 0.0
    load_1min_start: float = 0.0
    load_1min_end: float = 0.0

    def as_dict(self) -> dict:
        return {k: round(v, 2) for k, v in dataclasses.asdict(self).items()}


@contextlib.contextmanager
def timed() -> Iterator[Timed]:
    record = Timed(load_1min_start=round(os.getloadavg()[0], 2))
    started = time.perf_counter()
    try:
        yield record
    finally:
        record.seconds = time.perf_counter() - started
        record.load_1min_end = round(os.getloadavg()[0], 2)


def latency_summary(seconds: Sequence[float]) -> dict:
    """Percentiles, mean, min and max of per-call latencies, in milliseconds."""
    ms = np.asarray(seconds) * 1000
    summary = {f"p{q}_ms": round(float(np.percentile(ms, q)), 4) for q in (50, 90, 99)}
    return {
        "calls": len(ms),
        **summary,
        "mean_ms": round(float(ms.mean()), 4),
        "min_ms": round(float(ms.min()), 4),
        "max_ms": round(float(ms.max()), 4),
    }


def peak_rss_bytes(pid="self") -> int:
    """The process's own peak RSS (VmHWM), which starts afresh at exec; 0 if unreadable."""
    return _status_bytes("VmHWM", pid)


def current_rss_bytes(pid="self") -> int:
    """The process's resident memory now (VmRSS); 0 if unreadable."""
    return _status_bytes("VmRSS", pid)


def _status_bytes(field: str, pid) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(match[1]) * 1024 if match else 0


class PeakRssMonitor:
    """Polls a process tree every ``interval`` seconds on a thread.

    ``peak_bytes``: the largest summed RSS of the tree seen (a shorter peak
    can be missed); ``peak_process_bytes``: the largest VmHWM of one member;
    ``samples``: (unix seconds, summed RSS) per poll, to tell which step of a
    run reached the peak.
    """

    def __init__(self, pid: int, interval: float = 0.2):
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.peak_bytes = self.peak_process_bytes = 0
        self.samples: list[tuple[float, int]] = []

    def _poll(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                members = [self._process] + self._process.children(recursive=True)
            except psutil.NoSuchProcess:
                members = []
            for member in members:
                try:
                    total += member.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.peak_process_bytes = max(self.peak_process_bytes, peak_rss_bytes(member.pid))
            self.peak_bytes = max(self.peak_bytes, total)
            self.samples.append((time.time(), total))
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(
    command: list[str], log_path: str, env: dict | None = None, timeout: float | None = None
) -> dict:
    """Runs ``command`` in the repository root, output to ``log_path``: exit, time, load, memory.

    The time covers the whole process, interpreter start and imports
    included. At ``timeout`` seconds the process group is killed.
    """
    with open(log_path, "wb") as log, timed() as timing:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with PeakRssMonitor(process.pid) as monitor:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
    return {
        "returncode": process.returncode,
        **timing.as_dict(),
        "peak_tree_rss_gb": round(monitor.peak_bytes / GIB, 3),
        "peak_process_rss_gb": round(monitor.peak_process_bytes / GIB, 3),
        "rss_samples": monitor.samples,
    }


def component_seconds(metadata_path: str) -> dict[str, dict]:
    """Wall time of each pipeline node's executions, from the run's ML Metadata.

    An execution is created just before its executor starts and last updated
    when it publishes its outputs. Nodes in the order they started; each with
    ``start`` and ``end`` in unix seconds (its last execution's).
    """
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    rows = [
        (
            e.create_time_since_epoch,
            context.name.split(".", 1)[-1],
            e.create_time_since_epoch / 1000,
            e.last_update_time_since_epoch / 1000,
            pb.Execution.State.Name(e.last_known_state),
        )
        for context in store.get_contexts_by_type("node")
        for e in store.get_executions_by_context(context.id)
    ]
    timings: dict[str, dict] = {}
    for _, node, start, end, state in sorted(rows):
        entry = timings.setdefault(node, {"seconds": 0.0, "executions": 0})
        entry.update(seconds=round(entry["seconds"] + end - start, 3), state=state)
        entry.update(start=start, end=end)
        entry["executions"] += 1
    return timings


def peak_rss_per_component(timings: dict[str, dict], samples) -> dict[str, float]:
    """The largest summed RSS (GiB) sampled while each component ran.

    The pipeline runs its components in one process, which seldom hands
    memory back, so the first component whose figure equals the run's peak is
    the one that reached it.
    """
    peaks = {}
    for node, entry in timings.items():
        during = [rss for at, rss in samples if entry["start"] <= at <= entry["end"]]
        if during:
            peaks[node] = round(max(during) / GIB, 3)
    return peaks


# Keras 3's verbose=2 end of an epoch: "664/664 - 4s - 6ms/step - loss: ... - val_rmse: 0.95".
_EPOCH_LINE = re.compile(r"(\d+)/\1 - (\d+(?:\.\d+)?)s - (\d+(?:\.\d+)?)(ms|us|s)/step(.*)")


def keras_epochs(log_text: str) -> list[dict]:
    """Steps, seconds (Keras rounds them) and ms per step of each epoch logged with verbose=2."""
    epochs = []
    for steps, seconds, per_step, unit, rest in _EPOCH_LINE.findall(log_text):
        scale = {"us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]
        entry = {
            "steps": int(steps),
            "seconds": float(seconds),
            "ms_per_step": round(float(per_step) * scale, 4),
        }
        rmse = re.search(r"val_rmse: (\d+\.\d+)", rest)
        if rmse:
            entry["val_rmse"] = float(rmse[1])
        epochs.append(entry)
    return epochs
