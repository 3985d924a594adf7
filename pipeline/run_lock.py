"""One pipeline run per output root at a time.

Two runs sharing an output root share ML Metadata and the serving folder:
their summaries would read each other's executions. The lock is an
``flock`` on a file in the output root, so the kernel frees it when its run
ends in any way (a crash or ``kill -9`` included) and no stale lock is left.
"""

import contextlib
import fcntl
import os
import time

LOCK_FILE = ".run.lock"


class OutputRootBusyError(RuntimeError):
    """Another run holds the output root."""


@contextlib.contextmanager
def hold(output_root: str):
    """Holds the output root's lock for the block; raises OutputRootBusyError if taken."""
    os.makedirs(output_root, exist_ok=True)
    path = os.path.join(output_root, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise OutputRootBusyError(
                f"{output_root} is in use by another run ({holder}); wait for it to finish "
                "or pass another --output-root"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0
        )
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
