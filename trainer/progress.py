"""The Trainer's progress on a local run's console: epochs, steps and the eval RMSE.

Only when ``local_runner.py`` captures the run (``pipeline.console.current()``
is set in this process); elsewhere (Vertex AI, Kubeflow, tests that call
``run_fn``) the callback does nothing. On a terminal a tqdm bar per epoch
redraws its line and stays when the epoch ends; otherwise (CI, a file,
``--verbose``) one plain line per epoch, no carriage returns. Keras' own
per-epoch lines (``model.fit(verbose=2)``) go to the run's log.
"""

import os
import time

import keras

from pipeline import console as console_lib

EVAL_RMSE = "val_rmse"


def eval_text(eval_rmse: float | None) -> str:
    return "" if eval_rmse is None else f"eval RMSE {eval_rmse:.4f}"


def epoch_line(
    epoch: int, epochs: int | None, steps: int, seconds: float, eval_rmse: float | None
) -> str:
    """'epoch 2/10  167 steps  1.3s  eval RMSE 0.9886' (epoch counts from 1)."""
    line = f"epoch {epoch}/{epochs or '?'}  {steps} steps  {console_lib.format_seconds(seconds)}"
    return f"{line}  {eval_text(eval_rmse)}" if eval_rmse is not None else line


def terminal_width(stream, fallback: int = 80) -> int:
    """Columns of the terminal ``stream`` writes to; ``fallback`` when unknown or 0 (a pty
    nobody sized)."""
    try:
        columns = (
            int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size(stream.fileno()).columns
        )
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns if columns > 0 else fallback


class TrainingProgress(keras.callbacks.Callback):
    """A bar (terminal) or a line (elsewhere) per epoch on the run's console."""

    def __init__(self, console: console_lib.Console | None = None):
        super().__init__()
        self._console = console if console is not None else console_lib.current()
        self._bar = None
        self._epoch_start = 0.0
        self._steps_done = 0
        self._eval_rmse: float | None = None
        self._known_steps: int | None = None

    def _epochs(self) -> int | None:
        return (self.params or {}).get("epochs")

    def _steps(self) -> int | None:
        return (self.params or {}).get("steps") or self._known_steps

    def on_epoch_begin(self, epoch, logs=None):
        if self._console is None:
            return
        self._epoch_start = time.monotonic()
        self._steps_done = 0
        if self._console.interactive:
            self._open_bar(epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self._console is None:
            return
        # With steps_per_execution > 1 Keras reports each call's last step, which
        # may pass the epoch's end.
        steps = (self.params or {}).get("steps")
        self._steps_done = min(batch + 1, steps) if steps else batch + 1
        if self._bar is not None:
            self._bar.update(self._steps_done - self._bar.n)

    def on_epoch_end(self, epoch, logs=None):
        if self._console is None:
            return
        logs = logs or {}
        if logs.get(EVAL_RMSE) is not None:
            self._eval_rmse = float(logs[EVAL_RMSE])
        self._known_steps = self._steps_done or self._known_steps
        line = epoch_line(
            epoch + 1,
            self._epochs(),
            self._steps_done,
            time.monotonic() - self._epoch_start,
            self._eval_rmse,
        )
        if self._bar is not None:
            self._bar.total = self._steps_done
            self._bar.n = self._steps_done
            self._bar.set_postfix_str(eval_text(self._eval_rmse), refresh=False)
            self._close_bar()
            self._console.log(self._console.detail_indent + line)
        else:
            self._console.print(self._console.detail_indent + line)

    def on_train_end(self, logs=None):
        self._close_bar()

    def _open_bar(self, epoch: int) -> None:
        from tqdm import tqdm  # pylint: disable=g-import-not-at-top

        self._close_bar()
        total = self._steps()
        counts = "{n_fmt}/{total_fmt}" if total else "{n_fmt}"
        self._bar = tqdm(
            total=total,
            desc=f"{self._console.detail_indent}epoch {epoch + 1}/{self._epochs() or '?'}",
            file=self._console.out,
            leave=True,
            unit="step",
            ncols=terminal_width(self._console.out),
            mininterval=0.2,
            # A fixed bar, so the line keeps its layout; what passes ncols is cut.
            bar_format="{desc} |{bar:24}| " + counts + " [{elapsed}{postfix}]"
            if total
            else "{desc} " + counts + " steps [{elapsed}{postfix}]",
        )
        # The last epoch's eval RMSE until this one's.
        self._bar.set_postfix_str(eval_text(self._eval_rmse), refresh=False)
        self._console.hold_line(self._close_bar)

    def _close_bar(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
            if self._console is not None:
                self._console.hold_line(None)
