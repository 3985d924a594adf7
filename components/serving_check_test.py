"""Exports load on the TF1 path model servers use, with the TF2 path's ratings."""

import numpy as np
import pytest
import tensorflow_transform as tft
from tfx.components.pusher import executor as pusher_executor
from tfx.types import standard_artifacts

from components import serving_check
from conftest import serialized_examples
from trainer import export
from trainer import model as model_lib
from trainer import model_config

# Counts longer than the tiny vocabulary, so every technique has rows to cut
# into blocks and buckets; the served ids use the first few.
USER_COUNTS = list(range(60, 0, -1))
MOVIE_COUNTS = list(range(50, 0, -1))
PAIRS = [("user_b", "movie_x"), ("user_a", "movie_y"), ("user_c", "movie_y"), ("nobody", "x")]

# Every technique, besides every preset: full, QR, MD, MD with a QR tail.
TECHNIQUES = {
    "qr_mult": {"type": "qr", "operation": "mult", "num_buckets": 8},
    "md_learned": {"type": "md", "blocks": 3, "dims": [8, 4, 2], "projection": "learned"},
    "md_qr_tail": {"type": "md", "blocks": 3, "dims": [8, 4, 2], "tail_qr": {}},
}
CONFIGS = {name: model_config.preset(name) for name in model_config.PRESETS}
CONFIGS.update(
    {
        name: model_config.FULL.replace(
            name=name, embedding_dim=8, user_embedding=spec, movie_embedding=spec
        )
        for name, spec in TECHNIQUES.items()
    }
)


def _export(config, tiny_transform, export_dir) -> str:
    _, work, _ = tiny_transform
    model = model_lib.build_model(config, user_counts=USER_COUNTS, movie_counts=MOVIE_COUNTS)
    export.export_serving_model(model, tft.TFTransformOutput(work), str(export_dir))
    return str(export_dir)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_preset_and_technique_serves_on_the_tf1_path(name, tiny_transform, tmp_path):
    export_dir = _export(CONFIGS[name], tiny_transform, tmp_path / name)
    examples = list(serialized_examples(PAIRS).numpy())
    served = serving_check.predict_as_a_server(export_dir, examples)
    direct = serving_check.predict_in_tf2(export_dir, examples)
    assert served.shape == (len(PAIRS),)
    np.testing.assert_allclose(served, direct, atol=serving_check.MAX_ABS_DIFFERENCE, rtol=0)
    assert serving_check.check(export_dir, examples)["ok"]


@pytest.fixture(scope="module")
def unservable_export(tiny_transform, tmp_path_factory):
    """An export that tracks the Keras variables themselves, as the project once did."""
    original = export.backing_variables
    export.backing_variables = lambda model: list(model.weights)
    try:
        return _export(model_config.FULL, tiny_transform, tmp_path_factory.mktemp("broken"))
    finally:
        export.backing_variables = original


def test_an_export_of_keras_variables_fails_the_check(unservable_export):
    report = serving_check.check(unservable_export, list(serialized_examples(PAIRS).numpy()))
    assert not report["ok"]
    assert "TF1 loading path" in report["reason"]
    assert "\n" not in report["reason"]


def _blessing(tmp_path, name, blessed_by_check_of):
    artifact = standard_artifacts.InfraBlessing()
    artifact.uri = str(tmp_path / name)
    serving_check.write_blessing(artifact, blessed_by_check_of)
    return artifact


def _evaluator_blessing():
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 1)
    return blessing


def test_an_unservable_model_is_never_pushed(unservable_export, tiny_transform, tmp_path):
    # A fresh process, as the pipeline's ServingCheck runs it, on real examples.
    examples_file = str(tmp_path / "eval.gz")
    _write_gzipped_records(examples_file, list(serialized_examples(PAIRS).numpy()))
    report = serving_check.check_in_fresh_process(unservable_export, [examples_file], 16, 300)
    assert not report["ok"], report
    infra = _blessing(tmp_path, "broken", report)
    assert (tmp_path / "broken" / serving_check.NOT_BLESSED_FILE).exists()
    pusher = pusher_executor.Executor()
    inputs = {"model_blessing": [_evaluator_blessing()], "infra_blessing": [infra]}
    assert not pusher.CheckBlessing(inputs)

    good = _export(model_config.FULL, tiny_transform, tmp_path / "good")
    report = serving_check.check_in_fresh_process(good, [examples_file], 16, 300)
    assert report["ok"], report
    assert report["num_examples"] == len(PAIRS)
    inputs["infra_blessing"] = [_blessing(tmp_path, "good_blessing", report)]
    assert pusher.CheckBlessing(inputs)


def test_a_folder_that_is_no_saved_model_fails_in_one_line(tmp_path):
    report = serving_check.check_in_fresh_process(str(tmp_path), [], 16, 300)
    assert not report["ok"]
    assert report["reason"] and "\n" not in report["reason"]


def _write_gzipped_records(path, records):
    import tensorflow as tf

    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)
