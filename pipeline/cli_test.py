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


SIZES = {"user_embedding": 944, "movie_embedding": 1660}


@pytest.mark.parametrize("value", ["lots", "0.5x", "-64x", "2B"])
def test_a_bad_embedding_budget_exits_2_with_one_line(value, capsys):
    with pytest.raises(SystemExit) as caught:
        _args("--embedding-budget", value)
    err = capsys.readouterr().err.strip().splitlines()
    assert caught.value.code == 2
    assert "error: argument --embedding-budget/" not in err[-1]
    assert "error: argument --embedding-budget: " in err[-1]


@pytest.mark.parametrize("value", ["8x", "64x", "128x", "1024x", "20KB", "2GB"])
def test_an_embedding_budget_picks_tables_that_keep_it(value):
    from trainer.embeddings import build_tables
    from trainer.embeddings.spec import Vocabulary

    args = _args("--embedding-budget", value)
    choice = cli.budget_choice(args, SIZES)
    model = cli.model_from_args(args, choice)
    vocabs = {name: Vocabulary.of([1] * (n - 1), 1) for name, n in SIZES.items()}
    specs = {"user_embedding": model.user_embedding, "movie_embedding": model.movie_embedding}
    params = sum(t.params for t in build_tables(specs, vocabs, model.embedding_dim).values())
    if model.use_biases:
        for name, spec in (
            ("user_embedding", model.user_bias),
            ("movie_embedding", model.movie_bias),
        ):
            params += build_tables({name: spec}, {name: vocabs[name]}, 1)[name].params
    assert params == choice.params <= choice.limit
    assert choice.lines()[0].startswith(f"Embedding budget {choice.budget}: {choice.technique}")
    assert choice.lines()[1].startswith("  why: ")
    assert model.epochs == 30  # the preset's training stays, but for the per-id prior,
    compressed = model.use_biases and model.user_bias["type"] != "full"
    assert model.l2_per_id == (0.0 if compressed else 5.0)  # off with compressed biases


def test_an_embedding_budget_follows_the_rule_by_ratio():
    techniques = {
        value: cli.budget_choice(_args("--embedding-budget", value), SIZES).technique
        for value in ("16x", "64x", "128x", "1024x")
    }
    # At 1024x QR's smallest table does not fit ML-100K's vocabularies: hashing does.
    assert techniques == {"16x": "md", "64x": "hash", "128x": "qr", "1024x": "hash"}
    assert cli.budget_choice(_args("--embedding-budget", "100MB"), SIZES).technique == "full"
    assert cli.budget_choice(_args()) is None


def test_an_embedding_budget_replaces_the_table_flags_and_a_size_needs_the_sizes():
    args = _args("--embedding-budget", "64x", "--user-embedding", '{"type": "full"}')
    with pytest.raises(ValueError, match="^--embedding-budget picks every table: drop --user"):
        cli.model_from_args(args)
    assert cli.model_from_args(args, apply_budget=False).user_embedding == {"type": "full"}
    with pytest.raises(ValueError, match="^--embedding-budget: a size .* give a ratio"):
        cli.model_from_args(_args("--embedding-budget", "20MB"))
    # A ratio without the sizes: ratios that follow whatever vocabulary comes.
    model = cli.model_from_args(_args("--embedding-budget", "128x"))
    assert model.user_embedding["type"] == "qr" and "compression" in model.user_bias


def test_kubeflow_runner_refuses_a_size_budget_in_one_line(tmp_path, capsys):
    import kubeflow_v2_runner

    out = tmp_path / "pipeline.json"
    argv = ["--project", "p", "--output-file", str(out), "--embedding-budget", "20MB"]
    assert kubeflow_v2_runner.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --embedding-budget: a size") and err.count("\n") == 1
    assert not out.exists()
