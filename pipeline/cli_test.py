"""Tests for pipeline/cli.py: every model flag is checked, and named, before anything runs."""

import argparse

import pytest

from pipeline import cli
from trainer import model_config


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_model_arguments(parser)
    cli.add_evaluation_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--user-embedding", '{"type": "qr", "bukets": 3}'],
            "--user-embedding: unknown key 'bukets' for type qr (known: num_buckets, "
            "compression, num_partitions, operation, threshold)",
        ),
        (
            ["--user-embedding", '{"type": "qr", "num_buckets": 0}'],
            "--user-embedding: num_buckets must be an integer >= 2 (or null), got 0",
        ),
        (
            ["--movie-embedding", '{"type": "qr", "num_buckets": -5}'],
            "--movie-embedding: num_buckets must be an integer >= 2 (or null), got -5",
        ),
        (
            ["--movie-embedding", '{"type": "md", "blocks": 0}'],
            "--movie-embedding: blocks must be an integer >= 1 (or null), got 0",
        ),
        (
            ["--model-settings", '{"batch_size": 0}'],
            "--model-settings: batch_size must be an integer >= 1, got 0",
        ),
        (
            ["--model-settings", '{"learning_rate": -1}'],
            "--model-settings: learning_rate must be a number > 0, got -1",
        ),
        (
            ["--model-settings", '{"embedding_dim": 0}'],
            "--model-settings: embedding_dim must be an integer >= 1, got 0",
        ),
        (
            ["--model-settings", '{"epochs": "3"}'],
            '--model-settings: epochs must be an integer >= 1, got "3"',
        ),
        (
            ["--model-settings", '{"epochs": 0}'],
            "--model-settings: epochs must be an integer >= 1, got 0",
        ),
        (
            ["--model-settings", '{"l2_per_idd": 20}'],
            "--model-settings: unknown setting 'l2_per_idd'",
        ),
        (
            ["--model-settings", '{"user_embedding": {"type": "md", "dims": [4, 0]}}'],
            "--model-settings: user_embedding: dims must be a non-empty list of integers",
        ),
        (
            # A preset's table no longer fits a width the settings changed.
            ["--model", "qr_md", "--model-settings", '{"embedding_dim": 16}'],
            "--model-settings: movie_embedding: dims must be a non-empty list of integers in "
            "[1, 16]",
        ),
    ],
)
def test_a_bad_model_flag_is_one_value_error_naming_the_flag(argv, message):
    with pytest.raises(ValueError) as caught:
        cli.model_from_args(_args(*argv))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_epochs_flag_refuses_zero_before_model_from_args(capsys):
    with pytest.raises(SystemExit) as caught:
        _args("--epochs", "0")
    assert caught.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_flags_override_the_preset_in_order():
    model = cli.model_from_args(
        _args(
            "--model",
            "full",
            "--epochs",
            "4",
            "--user-embedding",
            '{"type": "qr", "num_buckets": 32}',
            "--model-settings",
            '{"epochs": 2, "batch_size": 64}',
        )
    )
    assert model.user_embedding == {"type": "qr", "num_buckets": 32}
    assert (model.epochs, model.batch_size) == (2, 64)  # --model-settings comes last
    assert cli.model_from_args(_args()) == model_config.preset(model_config.DEFAULT_MODEL)


def test_kubeflow_runner_turns_a_bad_setting_into_exit_2_and_one_line(tmp_path, capsys):
    import kubeflow_v2_runner

    status = kubeflow_v2_runner.main(
        [
            "--project",
            "p",
            "--output-file",
            str(tmp_path / "pipeline.json"),
            "--model-settings",
            '{"batch_size": 0}',
        ]
    )
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err == "error: --model-settings: batch_size must be an integer >= 1, got 0\n"
    assert not (tmp_path / "pipeline.json").exists()
