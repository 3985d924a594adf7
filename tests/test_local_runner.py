"""local_runner.py's input handling: bad input exits 2 in one line.

What the header and first lines show stops the run before any component;
what only the whole file shows stops it in ExampleGen, its first step.
"""

import pytest

import local_runner


def _run(tmp_path, *args):
    output_root = tmp_path / "out"
    return local_runner.main([*args, "--output-root", str(output_root)]), output_root


def test_missing_data_path_stops_before_any_component(tmp_path, capsys):
    status, output_root = _run(tmp_path, "--data", str(tmp_path / "nowhere"))
    assert status == local_runner.EXIT_BAD_INPUT
    assert "nowhere" in capsys.readouterr().err
    assert not (output_root / "pipelines").exists()


def test_bad_rating_names_file_line_and_field(tmp_path, capsys):
    bad = tmp_path / "ratings.csv"
    bad.write_text("user_id,movie_id,rating\nu1,m1,4\nu2,m2,7\n")
    status, output_root = _run(tmp_path, "--data", str(bad))
    err = capsys.readouterr().err
    assert status == local_runner.EXIT_BAD_INPUT
    assert str(bad) in err and "line 3" in err and "rating" in err
    assert not (output_root / "pipelines").exists()


def test_header_only_file_is_no_ratings(tmp_path, capsys):
    empty = tmp_path / "ratings.csv"
    empty.write_text("user_id,movie_id,rating\n")
    status, _ = _run(tmp_path, "--data", str(empty))
    assert status == local_runner.EXIT_BAD_INPUT
    assert "no ratings" in capsys.readouterr().err


def test_embedding_overrides_reach_the_model_config(tmp_path):
    args = local_runner.parse_args(
        ["--model", "baseline", "--epochs", "4", "--user-embedding", '{"type": "qr"}']
    )
    config = local_runner.pipeline_config(args, str(tmp_path))
    assert config.model.user_embedding == {"type": "qr"}
    assert config.model.epochs == 4
    assert config.model.movie_embedding == {"type": "full"}


def test_defaults_use_the_default_model_and_local_beam_args(tmp_path):
    from trainer import model_config

    config = local_runner.pipeline_config(local_runner.parse_args([]), str(tmp_path))
    assert config.model.name == model_config.DEFAULT_MODEL
    assert "--runner=FnApiRunner" in config.beam_pipeline_args


def test_model_settings_override_any_preset_field_and_reject_unknown_ones(tmp_path):
    args = local_runner.parse_args(["--model-settings", '{"l2_per_id": 20, "epochs": 2}'])
    config = local_runner.pipeline_config(args, str(tmp_path))
    assert config.model.l2_per_id == 20 and config.model.epochs == 2
    bad = local_runner.parse_args(["--model-settings", '{"l2_per_idd": 20}'])
    with pytest.raises(ValueError, match="l2_per_idd"):
        local_runner.pipeline_config(bad, str(tmp_path))


def test_unknown_model_setting_stops_before_any_component(tmp_path, capsys):
    status, output_root = _run(tmp_path, "--model-settings", '{"l2_per_idd": 20}')
    assert status == local_runner.EXIT_BAD_INPUT
    assert "l2_per_idd" in capsys.readouterr().err
    assert not output_root.exists()


# --- every mistake: exit 2, one line, no traceback, no component run ---------------


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--user-embedding", '{"type":"qr","bukets":3}'],
            "error: --user-embedding: unknown key 'bukets' for type qr (known: num_buckets, "
            "compression, num_partitions, operation, threshold)",
        ),
        (
            ["--user-embedding", '{"type":"qr","num_buckets":0}'],
            "error: --user-embedding: num_buckets must be an integer >= 2 (or null), got 0",
        ),
        (
            ["--movie-embedding", '{"type":"md","block_sizes":[3,0]}'],
            "error: --movie-embedding: block_sizes must be a non-empty list of integers >= 1",
        ),
        (
            ["--model-settings", '{"batch_size": 0}'],
            "error: --model-settings: batch_size must be an integer >= 1, got 0",
        ),
        (
            ["--model-settings", '{"learning_rate": -1}'],
            "error: --model-settings: learning_rate must be a number > 0, got -1",
        ),
        (
            ["--model-settings", '{"embedding_dim": 0}'],
            "error: --model-settings: embedding_dim must be an integer >= 1, got 0",
        ),
        (
            ["--model-settings", '{"epochs": "3"}'],
            'error: --model-settings: epochs must be an integer >= 1, got "3"',
        ),
        (
            ["--model-settings", '{"epochs": 0}'],
            "error: --model-settings: epochs must be an integer >= 1, got 0",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2_before_anything_is_written(
    tmp_path, capsys, flags, message
):
    status, output_root = _run(tmp_path, *flags)
    assert status == local_runner.EXIT_BAD_INPUT
    assert _one_error_line(capsys).startswith(message)
    assert not output_root.exists()


def test_empty_output_root_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where an empty root would have written everything
    assert local_runner.main(["--output-root", ""]) == local_runner.EXIT_BAD_INPUT
    assert (
        _one_error_line(capsys) == "error: --output-root: must name a folder, got an empty string"
    )
    assert list(tmp_path.iterdir()) == []


def _gzip(text: str) -> bytes:
    import gzip

    return gzip.compress(text.encode())


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("u.data", "x\0a\t1\t4\t0\nx\0b\t2\t3\t0\n", "line 1, field 'user': contains a NUL byte"),
        (
            "ratings.csv",
            'user_id,movie_id,rating\n"u\n1",m1,4.0\n',
            "line 2, field 'user_id': a quoted field runs past the end of the line",
        ),
        ("u.data", _gzip("1\t2\t3\t4\n"), "is compressed (gzip); decompress it first"),
        ("u.data", "1\t2\t7\t4\n", "fix or remove the row"),
        ("ratings.dat", "1,2,3,4\n", "line 1, field 'movie': expected 4 fields"),
        ("ratings.csv", "userId,movieId,stars\n1,2,3\n", "line 1, field 'rating': missing column"),
    ],
)
def test_bad_data_is_one_line_and_exit_2_before_any_component(
    tmp_path, capsys, name, content, fragment
):
    path = tmp_path / "in" / name
    path.parent.mkdir()
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    status, output_root = _run(tmp_path, "--data", str(path))
    assert status == local_runner.EXIT_BAD_INPUT
    assert fragment in _one_error_line(capsys)
    assert not (output_root / "pipelines").exists()


@pytest.mark.parametrize(
    "rows, fragment",
    [
        # Past the lines the runner reads first: ExampleGen reads every row.
        (
            [f"u{i},m{i},4.0" for i in range(60)] + ["u60,m60,seven"],
            ", line 62, field 'rating': rating 'seven' is not a number",
        ),
        # A small file that hashes wholly into one split.
        (["u1,m1,4.0"] * 3, ": too few ratings to split into train and eval: "),
    ],
)
def test_bad_data_only_the_whole_file_shows_stops_the_run_at_example_gen(
    tmp_path, capsys, monkeypatch, rows, fragment
):
    from components import movielens

    monkeypatch.setattr(movielens, "PREVIEW_BYTES", 64)
    path = tmp_path / "in" / "ratings.csv"
    path.parent.mkdir()
    path.write_text("user_id,movie_id,rating\n" + "".join(f"{row}\n" for row in rows))
    status, output_root = _run(tmp_path, "--data", str(path))
    assert status == local_runner.EXIT_BAD_INPUT
    # In-process, the libraries' log reaches capsys too; the console's lines end it.
    error, full_log = capsys.readouterr().err.strip().splitlines()[-2:]
    assert error.startswith("error: ArrowCsvExampleGen failed: ") and fragment in error
    if "line" in fragment:
        assert error.startswith(f"error: ArrowCsvExampleGen failed: {path}, line 62")
    assert full_log.startswith("full log: ")
    pipelines = output_root / "pipelines"
    assert [p.name for p in pipelines.glob("*/*")] == ["ArrowCsvExampleGen"]


def test_fifo_and_ambiguous_folder_are_refused(tmp_path, capsys):
    import os

    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("1\t2\t3\t4\n")
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.0,4\n")
    status, _ = _run(tmp_path, "--data", str(folder))
    assert status == local_runner.EXIT_BAD_INPUT
    assert "holds u.data and ratings.csv" in _one_error_line(capsys)
    fifo = tmp_path / "ratings.csv"
    os.mkfifo(fifo)
    status, _ = _run(tmp_path, "--data", str(fifo))
    assert status == local_runner.EXIT_BAD_INPUT
    assert "is a FIFO (named pipe), not a regular file" in _one_error_line(capsys)


def test_mistakes_stop_before_tfx_or_tensorflow_is_imported(tmp_path):
    import os
    import subprocess
    import sys

    bad = tmp_path / "ratings.csv"
    bad.write_text("user_id,movie_id,rating\nu1,m1,7.0\n")
    code = (
        "import sys, local_runner\n"
        f"out = {str(tmp_path / 'out')!r}\n"
        "for flags in (['--model-settings', '{\"batch_size\": 0}'],\n"
        '              [\'--user-embedding\', \'{"type": "md", "blocks": 0}\'],\n'
        f"              ['--data', {str(bad)!r}]):\n"
        "    assert local_runner.main(flags + ['--output-root', out]) == 2\n"
        "print(sorted(m for m in ('tfx', 'tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(local_runner.__file__)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert result.stderr.count("error: ") == 3 and "Traceback" not in result.stderr


def test_a_second_run_in_the_same_output_root_is_refused_in_one_line(tmp_path, capsys):
    from pipeline import run_lock

    output_root = tmp_path / "out"
    with run_lock.hold(str(output_root)):
        status = local_runner.main(["--output-root", str(output_root)])
    err = capsys.readouterr().err
    assert status == local_runner.EXIT_BAD_INPUT
    assert err.startswith("error: ") and "in use by another run" in err
    assert len(err.strip().splitlines()) == 1
    assert not (output_root / "data").exists()  # refused before anything was written


def test_docker_serving_check_without_docker_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker command on it
    status, output_root = _run(tmp_path, "--serving-check", "docker")
    err = capsys.readouterr().err
    assert status == local_runner.EXIT_BAD_INPUT
    assert "--serving-check docker" in err and "--serving-check process" in err
    assert not output_root.exists()


def test_a_failed_push_exits_1_with_its_reason_in_one_line(tmp_path, capsys, monkeypatch):
    from tfx.orchestration.local import local_dag_runner

    from components import pusher

    def full_disk(self, pipeline):
        raise pusher.PushError(
            "could not push the model to X: the disk is full; nothing was pushed"
        )

    monkeypatch.setattr(local_dag_runner.LocalDagRunner, "run", full_disk)
    status, output_root = _run(tmp_path)
    err = capsys.readouterr().err
    assert status == local_runner.EXIT_FAILED
    (log,) = (output_root / "logs").glob("run-*.log")
    assert err.strip().splitlines()[-2:] == [
        "error: could not push the model to X: the disk is full; nothing was pushed",
        f"full log: {log}",
    ]
