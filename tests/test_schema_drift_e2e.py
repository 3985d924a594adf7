"""Data that no longer fits the raw schema stops the run at ExampleGen; nothing is trained.

ExampleGen writes ``user_id``, ``movie_id`` and ``rating`` only, and refuses
a row whose rating is not a number on the format's scale: a new column is
ignored (``components/arrow_csv_example_gen_test.py``), a changed one is
named with its file and line.
"""

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
    "case, row, fragment",
    [
        ("rating type change", "user_{i},movie_{j},good", "line 2, field 'rating': rating 'good'"),
        ("rating off the scale", "user_{i},movie_{j},6.0", "line 2, field 'rating': rating 6 is"),
    ],
)
def test_a_changed_column_is_named_and_nothing_is_trained(tmp_path, case, row, fragment):
    from components.movielens import RatingsFormatError

    data_root = tmp_path / "data"
    data_root.mkdir()
    lines = ["user_id,movie_id,rating"] + [row.format(i=i % 40, j=i % 30) for i in range(400)]
    (data_root / "ratings.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(RatingsFormatError, match=fragment):
        _run_pipeline(data_root, tmp_path / "out")
    pipeline_dir = tmp_path / "out" / "pipelines"
    assert not list(pipeline_dir.glob("*/Transform/transform_graph/*"))
    assert not list(pipeline_dir.glob("*/Trainer/model/*"))
    assert not (tmp_path / "out" / "serving_model").exists()
