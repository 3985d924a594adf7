"""The Trainer's progress lines: a bar on a terminal, a line per epoch elsewhere, else nothing."""

import io
import os

import keras
import numpy as np

from pipeline import console as console_lib
from trainer import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _console(tmp_path, interactive):
    log = console_lib.open_log(str(tmp_path))
    out = _Terminal() if interactive else io.StringIO()
    con = console_lib.Console(out, io.StringIO(), log.fd, log.path, interactive)
    con.expect(["Transform", "Trainer"])
    return con, log


def _fit(callback, epochs=2, rows=20 * 16, steps_per_execution=8):
    """20 steps of 16 rows an epoch, 8 steps per call as the Trainer runs (not a multiple)."""
    keras.utils.set_random_seed(0)
    x = np.random.rand(rows, 2).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(
        "adam",
        "mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        steps_per_execution=steps_per_execution,
    )
    return model.fit(
        x, y, batch_size=16, epochs=epochs, validation_data=(x, y), callbacks=[callback], verbose=0
    )


def test_without_a_console_it_does_nothing(capsys):
    assert console_lib.current() is None  # as on Vertex AI, or a test calling run_fn
    _fit(progress.TrainingProgress())
    assert capsys.readouterr() == ("", "")


def test_off_a_terminal_one_plain_line_per_epoch_with_the_eval_rmse(tmp_path):
    con, log = _console(tmp_path, interactive=False)
    history = _fit(progress.TrainingProgress(con))
    lines = con.out.getvalue().splitlines()
    assert len(lines) == 2
    for epoch, line in enumerate(lines):
        eval_rmse = history.history["val_rmse"][epoch]
        assert line.startswith(f"{con.detail_indent}epoch {epoch + 1}/2  20 steps  ")
        assert line.endswith(f"s  eval RMSE {eval_rmse:.4f}")
    assert "\r" not in con.out.getvalue() and "\x1b" not in con.out.getvalue()
    with open(log.path, encoding="utf-8") as f:
        assert f.read().splitlines() == lines
    os.close(log.fd)


def test_on_a_terminal_a_bar_per_epoch_and_the_plain_lines_in_the_log(tmp_path):
    con, log = _console(tmp_path, interactive=True)
    history = _fit(progress.TrainingProgress(con), epochs=3)
    drawn = con.out.getvalue()
    assert "\r" in drawn and drawn.endswith("\n")
    # splitlines() would split at the carriage returns too.
    final_states = [state.split("\r")[-1] for state in drawn.rstrip("\n").split("\n")]
    assert len(final_states) == 3
    for epoch, state in enumerate(final_states):
        assert state.startswith(f"{con.detail_indent}epoch {epoch + 1}/3 |")
        assert "20/20" in state
        assert f"eval RMSE {history.history['val_rmse'][epoch]:.4f}" in state
    with open(log.path, encoding="utf-8") as f:
        logged = f.read()
    assert "\r" not in logged and len(logged.splitlines()) == 3
    assert logged.splitlines()[2].startswith(f"{con.detail_indent}epoch 3/3  20 steps  ")
    os.close(log.fd)


def test_a_line_printed_mid_epoch_ends_the_bar_first(tmp_path):
    con, log = _console(tmp_path, interactive=True)

    class FailMidEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 8:
                raise RuntimeError("out of memory")

    callback = progress.TrainingProgress(con)
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        x = np.zeros((320, 2), "float32")
        model.fit(
            x, x[:, :1], batch_size=16, epochs=2, callbacks=[callback, FailMidEpoch()], verbose=0
        )
    except RuntimeError as e:
        con.component_started("Trainer")
        con.failed(e)
    lines = con.out.getvalue().split("\n")
    assert lines[0].split("\r")[-1].startswith(f"{con.detail_indent}epoch 1/2 |")
    assert lines[1].split()[1:3] == ["Trainer", "running"]
    os.close(log.fd)


def test_terminal_width_falls_back_when_unknown(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert progress.terminal_width(io.StringIO()) == 80
    monkeypatch.setenv("COLUMNS", "120")
    assert progress.terminal_width(io.StringIO()) == 120
