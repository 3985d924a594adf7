"""Tests for trainer/model_config.py: presets and the checks of every setting."""

import json

import pytest

from trainer import model_config
from trainer.model_config import ModelConfig
from trainer.model_config import SettingError


def test_every_preset_is_valid_and_round_trips_through_json():
    for config in model_config.PRESETS.values():
        config.validate()
        assert ModelConfig.from_dict(json.loads(config.to_json())) == config


@pytest.mark.parametrize(
    "settings, setting, message",
    [
        ({"batch_size": 0}, "batch_size", "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size", "batch_size must be an integer >= 1, got 2.5"),
        ({"learning_rate": -1}, "learning_rate", "learning_rate must be a number > 0, got -1"),
        ({"learning_rate": 0}, "learning_rate", "learning_rate must be a number > 0, got 0"),
        ({"embedding_dim": 0}, "embedding_dim", "embedding_dim must be an integer >= 1, got 0"),
        ({"epochs": "3"}, "epochs", 'epochs must be an integer >= 1, got "3"'),
        ({"epochs": 0}, "epochs", "epochs must be an integer >= 1, got 0"),
        ({"epochs": True}, "epochs", "epochs must be an integer >= 1, got true"),
        ({"l2": -0.1}, "l2", "l2 must be a number >= 0, got -0.1"),
        ({"l2": float("nan")}, "l2", "l2 must be a number >= 0, got NaN"),
        ({"bias_l2": "x"}, "bias_l2", 'bias_l2 must be a number >= 0 or null, got "x"'),
        ({"use_biases": 1}, "use_biases", "use_biases must be true or false, got 1"),
        (
            {"input_in_memory": "auto"},
            "input_in_memory",
            "input_in_memory must be true, false or null",
        ),
        ({"adam_beta_2": 1.0}, "adam_beta_2", "adam_beta_2 must be a number in [0, 1), got 1.0"),
        ({"adam_epsilon": 0}, "adam_epsilon", "adam_epsilon must be a number > 0"),
        ({"early_stopping_patience": -1}, "early_stopping_patience", ">= 0, got -1"),
        ({"shuffle_buffer": 0}, "shuffle_buffer", "shuffle_buffer must be an integer >= 1"),
        ({"seed": -1}, "seed", "seed must be an integer in [0, 4294967295], got -1"),
        ({"rating_head": "tanh"}, "rating_head", 'rating_head must be one of "sigmoid", "linear"'),
        ({"min_rating": 5.0}, "max_rating", "min_rating must be below max_rating, got 5 and 5"),
        ({"max_rating": None}, "max_rating", "max_rating must be a finite number, got null"),
        ({"embeddings_initializer": 3}, "embeddings_initializer", "Keras initializer name"),
        ({"l2_per_idd": 20}, "l2_per_idd", "unknown setting 'l2_per_idd' (known: name, "),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_what_is_allowed(settings, setting, message):
    with pytest.raises(SettingError) as caught:
        ModelConfig.from_dict(settings)
    assert caught.value.setting == setting
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "qr", "bukets": 3}, "unknown key 'bukets' for type qr (known: num_buckets, "),
        ({"type": "qr", "num_buckets": 0}, "num_buckets must be an integer >= 2 (or null), got 0"),
        ({"type": "qr", "num_buckets": -5}, "num_buckets must be an integer >= 2"),
        ({"type": "qr", "compression": 1}, "compression must be a number > 1"),
        ({"type": "qr", "operation": "max"}, 'operation must be one of "mult", "add", "concat"'),
        ({"type": "qr", "num_partitions": 1}, "num_partitions must be an integer >= 2"),
        ({"type": "qr", "operation": "concat", "num_partitions": 20}, "the width is 16"),
        ({"type": "md", "blocks": 0}, "blocks must be an integer >= 1"),
        ({"type": "md", "blocks": "4"}, 'blocks must be an integer >= 1 (or null), got "4"'),
        ({"type": "md", "block_fractions": [0.5, 0.6]}, "block_fractions must sum to 1"),
        ({"type": "md", "block_fractions": [1.5, -0.5]}, "numbers > 0"),
        ({"type": "md", "block_sizes": [3, 0]}, "block_sizes must be a non-empty list of integers"),
        ({"type": "md", "blocks": 2, "block_sizes": [2, 5]}, "mutually exclusive"),
        ({"type": "md", "dims": [32, 8]}, "dims must be a non-empty list of integers in [1, 16]"),
        (
            {"type": "md", "dims": [8, 4], "blocks": 3},
            "dims [8, 4] has 2 widths but blocks gives 3",
        ),
        (
            {"type": "md", "dims": [8, 4], "alpha": 0.1},
            "dims (explicit block widths) excludes alpha",
        ),
        ({"type": "md", "alpha": -1}, "alpha must be a number >= 0"),
        ({"type": "md", "max_dim": 17}, "max_dim must be an integer in [1, 16]"),
        ({"type": "md", "base_dim": 32}, "base_dim=32 exceeds the embedding width (16)"),
        ({"type": "md", "min_dim": 20}, "min_dim=20 exceeds the embedding width (16)"),
        ({"type": "md", "projection": "identity"}, 'projection must be one of "learned", "nested"'),
        ({"type": "md", "fill_budget": "yes"}, "fill_budget must be true or false"),
        ({"type": "md", "tail_qr": {"collisions": 4}}, "tail_qr: unknown key 'collisions'"),
        (
            {"type": "md", "tail_qr": {"num_buckets": 1}},
            "tail_qr: num_buckets must be an integer >= 2",
        ),
        ({"type": "md", "tail_qr": 3}, "tail_qr must be a JSON object"),
        ({"type": "sparse"}, 'unknown embedding type "sparse"; allowed: full, hash, md, qr'),
        ({"num_buckets": 3}, 'missing "type"; allowed: full, hash, md, qr'),
        ({"type": "full", "alpha": 0.3}, "unknown key 'alpha' for type full (known: none)"),
        ("qr", 'expected a JSON object with a "type"'),
    ],
)
def test_embedding_specs_are_checked_with_the_config(spec, message):
    with pytest.raises(SettingError) as caught:
        model_config.preset("md_16x").replace(user_embedding=spec)
    error = caught.value
    assert error.setting == "user_embedding"
    assert str(error) == f"user_embedding: {error.detail}"
    assert message in error.detail and "\n" not in str(error)


def test_replace_and_presets_are_checked_too():
    with pytest.raises(SettingError, match="epochs must be an integer >= 1, got 0"):
        model_config.preset("full").replace(epochs=0)
    with pytest.raises(SettingError, match="batch_size"):
        model_config.preset("full", {"batch_size": -1})
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        model_config.preset("nope")


def test_checking_a_config_does_not_import_tensorflow():
    """The runners check settings before any component runs, and fast."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from trainer import model_config\n"
        "model_config.ModelConfig.from_dict({'user_embedding': {'type': 'md', 'blocks': 3}})\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'tfx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
