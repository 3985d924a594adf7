"""What a local run shows on the terminal, and the log file that holds the rest.

The console gets a line as each component starts and one as it ends (done,
cached, skipped or failed, with its wall time), the Trainer's progress
(``trainer/progress.py``), then whatever the runner prints (the summary).
Everything else that TFX, Beam, TensorFlow and their libraries write goes to
a log file per run, ``OUTPUT_ROOT/logs/run-<time>.log``: while a run is
captured, file descriptors 1 and 2 point at that file, so Python logging,
warnings, prints, TensorFlow's C++ logging and the output of the processes a
component starts all land there, and the console writes to duplicates of the
original descriptors. With ``verbose`` the descriptors point at pipes whose
readers copy everything to both the log and the console.

The component lines come from TFX's own logging: LocalDagRunner logs
"Component X is running." and "Component X is finished.", and the launcher
"A cached execution N is used." in between when it reuses an execution.
The lines are the same on a terminal and elsewhere (CI, a file): plain text,
one line per event. Only the Trainer's progress bar redraws its line, and
only on a terminal without ``verbose``.

This module imports nothing beyond the standard library: the Trainer reads
``current()`` wherever it runs, and the runner opens the console before
TensorFlow is imported (its import-time notices belong in the log).
"""

import contextlib
import io
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import NamedTuple
from typing import Optional
from typing import TextIO

LOG_DIR = "logs"
# Python logging in the log file, when nothing configured it before the run.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# TFX's messages (tfx/orchestration/local/local_dag_runner.py and
# tfx/orchestration/portable/launcher.py), matched on the format string.
RUNNING = "Component %s is running."
FINISHED = "Component %s is finished."
SKIPPING = "Skipping component %s."
CACHED = "A cached execution %d is used."

_current: Optional["Console"] = None


def current() -> Optional["Console"]:
    """The console of the run this process is capturing; None elsewhere (e.g. on Vertex AI)."""
    return _current


def format_seconds(seconds: float) -> str:
    """4.2s, 1m 05s, 1h 02m."""
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


class RunLog(NamedTuple):
    path: str  # absolute
    fd: int  # open for appending


def open_log(output_root: str) -> RunLog:
    """Creates OUTPUT_ROOT/logs/run-<YYYYmmdd-HHMMSS>.log (a suffix if taken)."""
    folder = os.path.join(output_root, LOG_DIR)
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, time.strftime("run-%Y%m%d-%H%M%S"))
    for attempt in range(1, 1000):
        path = f"{stem}.log" if attempt == 1 else f"{stem}-{attempt}.log"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            continue
        return RunLog(os.path.abspath(path), fd)
    raise FileExistsError(f"{stem}.log and 998 more are taken")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _flush(stream) -> None:
    try:
        stream.flush()
    except (AttributeError, OSError, ValueError):
        pass


class Console:
    """The run's terminal lines; each one is also written to the log.

    Attributes:
      out, err: the terminal's stdout and stderr as they were before the run.
      log_path: the run's log file.
      interactive: whether a progress bar may redraw its line (a terminal,
        not ``verbose``).
    """

    def __init__(
        self, out: TextIO, err: TextIO, log_fd: int, log_path: str, interactive: bool = False
    ):
        self.out = out
        self.err = err
        self.log_path = log_path
        self.interactive = interactive
        self._log_fd = log_fd
        self._log_lock = threading.Lock()
        self._names: list[str] = []
        self._started = 0
        self._cached = 0
        self._running: tuple[str, str, float, bool] | None = None  # tag, name, start, cached
        self._run_start = time.monotonic()
        self._before_line: Callable[[], None] | None = None

    # --- writing ---------------------------------------------------------------

    def print(self, text: str = "") -> None:
        """A line (or lines) on the console's stdout, and in the log."""
        self._write(self.out, text)

    def error(self, text: str) -> None:
        """A line on the console's stderr, and in the log."""
        self._write(self.err, text)

    def log(self, text: str) -> None:
        """A line in the log only."""
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)  # what the libraries printed before it comes first
        self.log_bytes((text + "\n").encode("utf-8", "backslashreplace"))

    def log_bytes(self, data: bytes) -> None:
        with self._log_lock:
            try:
                _write_all(self._log_fd, data)
            except OSError:
                pass  # a full disk must not stop the run over its log

    def hold_line(self, finish: Callable[[], None] | None) -> None:
        """Says a progress bar is drawing on the console's last line.

        ``finish`` ends that line; it is called before the next line is
        printed (e.g. when training fails mid-epoch). None: the line ended.
        """
        self._before_line = finish

    def end_line(self) -> None:
        """Ends a progress bar's line, if one is held."""
        finish, self._before_line = self._before_line, None
        if finish is not None:
            finish()

    def _write(self, stream: TextIO, text: str) -> None:
        self.end_line()
        stream.write(text + "\n")
        _flush(stream)
        self.log(text)

    # --- components --------------------------------------------------------------

    def expect(self, names: Sequence[str]) -> None:
        """The pipeline's node ids: numbers the lines ([ 3/11]) and aligns them."""
        self._names = list(names)

    @property
    def detail_indent(self) -> str:
        """Spaces that put a detail line (the Trainer's progress) under the component's name."""
        return " " * (len(self._tag(1)) + 1)

    def _tag(self, number: int) -> str:
        if not self._names:
            return f"[{number}]"
        total = len(self._names)
        return f"[{number:>{len(str(total))}}/{total}]"

    def _line(self, tag: str, name: str, status: str, seconds: float | None = None) -> str:
        width = max([len(n) for n in self._names] + [len(name)])
        line = f"{tag} {name:<{width}}  {status:<7}"
        if seconds is not None:
            line += f" {format_seconds(seconds):>7}"
        return line.rstrip()

    def component_started(self, name: str) -> None:
        self._end_running("done")  # TFX logged no end for the previous one
        self._started += 1
        tag = self._tag(self._started)
        self._running = (tag, name, time.monotonic(), False)
        self.print(self._line(tag, name, "running"))

    def component_cached(self) -> None:
        if self._running:
            self._running = self._running[:3] + (True,)

    def component_finished(self, name: str) -> None:
        if self._running and self._running[1] == name:
            self._end_running("cached" if self._running[3] else "done")

    def component_skipped(self, name: str) -> None:
        self._end_running("done")
        self._started += 1
        self.print(self._line(self._tag(self._started), name, "skipped"))

    def _end_running(self, status: str) -> str | None:
        """Prints the running component's end line; returns its name (None if none ran)."""
        if self._running is None:
            return None
        tag, name, start, _ = self._running
        self._running = None
        self._cached += status == "cached"
        self.print(self._line(tag, name, status, time.monotonic() - start))
        return name

    def pipeline_finished(self) -> None:
        self._end_running("done")
        cached = f", {self._cached} cached" if self._cached else ""
        self.print(
            f"Pipeline finished in {format_seconds(time.monotonic() - self._run_start)} "
            f"({self._started} components{cached})."
        )

    # --- failures ----------------------------------------------------------------

    def failed(self, error: BaseException, whole_message: bool = False) -> None:
        """The failed component's end line, ``error: <Component> failed: <message>`` and the log.

        The traceback goes to the log only. ``whole_message``: the message is
        written for the user (bad data, a failed push): all of it, without the
        exception's type. Otherwise its first line, after the type.
        """
        self.log("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        name = self._end_running("failed")
        message = str(error).strip()
        if not whole_message:
            first = message.splitlines()[0] if message else ""
            message = f"{type(error).__name__}: {first}" if first else type(error).__name__
        self.error(f"error: {name} failed: {message}" if name else f"error: {message}")
        self.error(f"full log: {self.log_path}")

    def interrupted(self) -> None:
        name = self._end_running("stopped")
        self.error(f"error: interrupted while {name} was running" if name else "error: interrupted")
        self.error(f"full log: {self.log_path}")


class _ComponentEvents(logging.Handler):
    """Turns TFX's component log records into the console's lines."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg not in (RUNNING, FINISHED, SKIPPING, CACHED):
            return
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg == CACHED:
            self._console.component_cached()
        elif len(args) == 1:
            name = str(args[0])
            if record.msg == RUNNING:
                self._console.component_started(name)
            elif record.msg == FINISHED:
                self._console.component_finished(name)
            else:
                self._console.component_skipped(name)


class _Tee(threading.Thread):
    """Copies what is written into a pipe to the console and to the log (``verbose``)."""

    def __init__(self, read_fd: int, console_fd: int, console: Console):
        super().__init__(daemon=True, name=f"console-tee-{console_fd}")
        self._read_fd = read_fd
        self._console_fd = console_fd
        self._console = console

    def run(self) -> None:
        try:
            while True:
                data = os.read(self._read_fd, 65536)
                if not data:
                    return
                try:
                    _write_all(self._console_fd, data)
                except OSError:
                    pass
                self._console.log_bytes(data)
        finally:
            os.close(self._read_fd)


def _console_stream(stream, fd: int) -> tuple[TextIO, bool]:
    """A stream on a duplicate of ``fd`` if ``stream`` writes to it; else ``stream`` itself.

    The second value says whether the stream is new (to be closed). A stream
    that is no file descriptor (pytest's capsys) is used as it is.
    """
    try:
        backed = stream.fileno() == fd
    except (AttributeError, ValueError, io.UnsupportedOperation):
        backed = False
    if not backed:
        return stream, False
    duplicate = open(
        os.dup(fd),
        "w",
        buffering=1,
        encoding=getattr(stream, "encoding", None) or "utf-8",
        errors=getattr(stream, "errors", None) or "backslashreplace",
    )
    return duplicate, True


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def capture(log: RunLog, verbose: bool = False) -> Iterator[Console]:
    """Sends everything written to fds 1 and 2 to ``log`` (``open_log``) for the block.

    Yields the Console that writes to the terminal (as it was before). With
    ``verbose`` everything also still reaches the terminal. Closes the log.
    """
    global _current
    log_path, log_fd = log
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)  # what was printed before the run stays on the terminal
    out, own_out = _console_stream(sys.stdout, 1)
    err, own_err = _console_stream(sys.stderr, 2)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    console = Console(out, err, log_fd, log_path, interactive=not verbose and _isatty(out))
    tees = []
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    events = _ComponentEvents(console)
    try:
        if verbose:
            for fd in (1, 2):
                read_fd, write_fd = os.pipe()
                tee = _Tee(read_fd, saved[fd], console)
                os.dup2(write_fd, fd)
                os.close(write_fd)
                tee.start()
                tees.append(tee)
        else:
            for fd in (1, 2):
                os.dup2(log_fd, fd)
        if not root.handlers:
            # What absl would do on its first record, with the time in each line.
            logging.basicConfig(format=LOG_FORMAT, stream=sys.stderr)
        root.addHandler(events)
        _current = console
        yield console
    finally:
        _current = None
        for handler in root.handlers[:]:
            if handler is events or handler not in handlers_before:
                root.removeHandler(handler)
        console.end_line()
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)
        for fd, original in saved.items():
            os.dup2(original, fd)  # also closes the pipes' write ends held at 1 and 2
        for tee in tees:
            # EOF once every writer is gone; a process a component left behind may hold on.
            tee.join(timeout=5)
        # A tee still reading keeps its descriptors: a closed number could be reused.
        still_reading = any(tee.is_alive() for tee in tees)
        if not still_reading:
            for fd in saved.values():
                os.close(fd)
            os.close(log_fd)
        for stream, own in ((out, own_out), (err, own_err)):
            if own:
                _flush(stream)
                stream.close()
