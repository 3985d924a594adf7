"""Data that no longer matches the schema stops the run before Transform; nothing is pushed."""

import pytest

pytestmark = pytest.mark.slow


def _run_pipeline(data_root, output_root):
    from tfx import v1 as tfx

    from pipeline import configs
    from pipeline import pipeline as pipeline_lib

    config = configs.PipelineConfig(
        data_root=str(data_root),
        output_root=str(output_root),
        beam_pipeline_args=configs.local_beam_pipeline_args(),
    )
    tfx.orchestration.LocalDagRunner().run(
        pipeline_lib.create_pipeline(
            config,
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path),
        )
    )


@pytest.mark.parametrize(
    "case, header, row, fragment",
    [
        (
            "new column",
            "user_id,movie_id,rating,timestamp",
            "user_{i},movie_{j},4.0,88",
            "timestamp",
        ),
        ("rating type change", "user_id,movie_id,rating", "user_{i},movie_{j},good", "rating"),
    ],
)
def test_schema_change_is_reported_and_nothing_is_trained(tmp_path, case, header, row, fragment):
    from components.validation_gate import DataAnomaliesError

    data_root = tmp_path / "data"
    data_root.mkdir()
    lines = [header] + [row.format(i=i % 40, j=i % 30) for i in range(400)]
    (data_root / "ratings.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataAnomaliesError, match=fragment) as raised:
        _run_pipeline(data_root, tmp_path / "out")
    assert "nothing was trained or pushed" in str(raised.value)
    pipeline_dir = tmp_path / "out" / "pipelines"
    assert not list(pipeline_dir.glob("*/Transform/transform_graph/*"))
    assert not list(pipeline_dir.glob("*/Trainer/model/*"))
    assert not (tmp_path / "out" / "serving_model").exists()
