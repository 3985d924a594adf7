"""local_runner.py's input handling: bad input stops before any component runs."""

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
