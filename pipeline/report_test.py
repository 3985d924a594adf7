"""The report page from a fixed set of numbers: tables, charts, blessing, writing."""

import base64
import html.parser
import io
import os
import stat

import pytest
from PIL import Image

from components import features
from pipeline import configs
from pipeline import pipeline as pipeline_lib
from pipeline import report

_METRIC_NAMES = (
    "example_count",
    "mean_squared_error",
    "mean_absolute_error",
    "root_mean_squared_error",
    "mean_label",
    "mean_prediction",
)


def _metrics(count, rmse, mean_label, mean_prediction):
    return {
        "example_count": float(count),
        "mean_squared_error": rmse**2,
        "mean_absolute_error": rmse * 0.8,
        "root_mean_squared_error": rmse,
        "mean_label": mean_label,
        "mean_prediction": mean_prediction,
    }


def _slices(with_baseline: bool):
    """Overall plus every slicing feature's values, as report.collect lays them out."""
    # Slice values as tfma.load_eval_result gives them: names as str, ratings as float.
    rows = [(None, None, 1894, 1.0635, 3.55, 3.40)]
    rows += [
        (features.MOVIE_POPULARITY_BLOCK, name, 630, 0.95 + 0.07 * b, 3.7 - 0.2 * b, 3.5)
        for b, name in enumerate(features.MOVIE_POPULARITY_BLOCK_NAMES)
    ]
    rows += [
        (features.USER_ACTIVITY_QUARTILE, name, 790 - 150 * q, 1.0 + 0.02 * q, 3.55, 3.45)
        for q, name in enumerate(features.USER_ACTIVITY_QUARTILE_NAMES)
    ]
    rows += [
        (features.LABEL, float(r), 380, abs(r - 3.4) + 0.4, float(r), 3.4) for r in range(1, 6)
    ]
    slices = []
    for feature, value, count, rmse, label, prediction in rows:
        candidate = _metrics(count, rmse, label, prediction)
        baseline = _metrics(count, rmse - 0.05, label, prediction + 0.1) if with_baseline else None
        slices.append(
            {
                "feature": feature,
                "value": value,
                "label": report.slice_label(feature, value),
                "candidate": candidate,
                "baseline": baseline,
                "change": {k: candidate[k] - baseline[k] for k in candidate}
                if with_baseline
                else None,
            }
        )
    return slices


def _memory_report(compressed: bool):
    if compressed:
        user_tables = [
            {"name": "remainder", "rows": 18, "dim": 64, "params": 1152, "bytes": 4608},
            {"name": "quotient", "rows": 17, "dim": 64, "params": 1088, "bytes": 4352},
        ]
        movie_tables = [
            {"name": "block_0", "rows": 22, "dim": 64, "params": 1408, "bytes": 5632},
            {"name": "block_1", "rows": 70, "dim": 32, "params": 2240, "bytes": 8960},
            {"name": "block_1_projection", "rows": 32, "dim": 64, "params": 2048, "bytes": 8192},
        ]
    else:
        user_tables = [{"name": "table", "rows": 301, "dim": 64, "params": 19264, "bytes": 77056}]
        movie_tables = [{"name": "table", "rows": 201, "dim": 64, "params": 12864, "bytes": 51456}]

    def table(kind, tables, input_dim):
        params = sum(t["params"] for t in tables)
        return {
            "type": kind,
            "input_dim": input_dim,
            "tables": tables,
            "params": params,
            "bytes": 4 * params,
            "full_params": input_dim * 64,
            "compression": input_dim * 64 / params,
        }

    tables = {
        "user_id": table("QREmbedding" if compressed else "Embedding", user_tables, 301),
        "movie_id": table("MDEmbedding" if compressed else "Embedding", movie_tables, 201),
    }
    params = sum(t["params"] for t in tables.values())
    full = sum(t["full_params"] for t in tables.values())
    return {
        "features": tables,
        "total": {"params": params, "bytes": 4 * params, "compression": full / params},
    }


def _history(start):
    losses = [start - 0.2 * epoch for epoch in range(5)]
    return {
        "loss": losses,
        "val_loss": [v + 0.05 for v in losses],
        "rmse": [v**0.5 for v in losses],
        "val_rmse": [(v + 0.05) ** 0.5 for v in losses],
    }


def example_report(blessed: bool = False):
    """A run compared with the full-table model and, when not blessed, why not."""
    return {
        "pipeline_name": configs.PIPELINE_NAME,
        "output_root": "/runs/out",
        "generated_at": "2026-01-01T12:00:00",
        "blessing": {
            "blessed": blessed,
            "reasons": []
            if blessed
            else [
                "root_mean_squared_error: 1.2500 fails value <= 1.2",
                "root_mean_squared_error (change vs latest blessed): 0.0300 fails <b>change</b>",
            ],
            "thresholds": report.threshold_descriptions(
                pipeline_lib.eval_config(configs.EvalSettings())
            ),
            "pushed": blessed,
            "pushed_destination": "/runs/out/serving_model/x/1" if blessed else None,
        },
        "evaluations": [
            {
                "node": "Evaluator",
                "title": "Blessing check",
                "uri": "/runs/out/pipelines/x/Evaluator/evaluation/9",
                "baseline_name": None,
                "note": "No model had been blessed before this run.",
                "slices": _slices(with_baseline=False),
                "thresholds": [],
            },
            {
                "node": configs.COMPRESSION_EVALUATOR_ID,
                "title": "Cost of compression",
                "uri": "/runs/out/pipelines/x/compression_evaluator/evaluation/11",
                "baseline_name": "full tables",
                "note": None,
                "slices": _slices(with_baseline=True),
                "thresholds": [],
            },
        ],
        "models": [
            {
                "name": "this model",
                "uri": "/runs/out/pipelines/x/Trainer/model/8",
                "tensorboard": "/runs/out/pipelines/x/Trainer/model_run/8/tensorboard",
                "history": _history(2.2),
                "memory_report": _memory_report(compressed=True),
            },
            {
                "name": "full tables",
                "uri": "/runs/out/pipelines/x/full_model_trainer/model/9",
                "tensorboard": None,
                "history": _history(2.1),
                "memory_report": _memory_report(compressed=False),
            },
        ],
    }


class _PageReader(html.parser.HTMLParser):
    """Collects the metric cells, images and blessing reasons of a report page."""

    def __init__(self):
        super().__init__()
        self.cells = {}  # (evaluation, slice, metric, model) -> text
        self.labels = {}  # evaluation -> [(slice, label text)], in the table's order
        self.images = []
        self.reasons = []
        self._evaluation = self._slice = self._cell = None
        self._in_reasons = self._in_reason = False
        self._text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-evaluation" in attrs:
            self._evaluation = attrs["data-evaluation"]
        elif tag == "tr" and "data-slice" in attrs:
            self._slice = attrs["data-slice"]
        elif tag == "td" and "data-metric" in attrs and self._slice:
            self._cell = (self._evaluation, self._slice, attrs["data-metric"], attrs["data-model"])
            self._text = []
        elif tag == "td" and attrs.get("class") == "slice" and self._slice:
            self._cell = (self._evaluation, self._slice, None, None)
            self._text = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "ul" and attrs.get("id") == "blessing-reasons":
            self._in_reasons = True
        elif tag == "li" and self._in_reasons:
            self._in_reason, self._text = True, []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell:
            evaluation, slice_id, metric, _ = self._cell
            if metric is None:
                self.labels.setdefault(evaluation, []).append((slice_id, "".join(self._text)))
            else:
                self.cells[self._cell] = "".join(self._text)
            self._cell = None
        elif tag == "li" and self._in_reason:
            self.reasons.append("".join(self._text))
            self._in_reason = False
        elif tag == "ul":
            self._in_reasons = False
        elif tag == "table":
            self._evaluation = self._slice = None
        elif tag == "tr":
            self._slice = None

    def handle_data(self, data):
        if self._cell or self._in_reason:
            self._text.append(data)


def read_page(page: str) -> _PageReader:
    reader = _PageReader()
    reader.feed(page)
    return reader


@pytest.fixture(scope="module")
def page():
    return report.render_html(example_report())


def test_every_metric_of_every_slice_is_in_the_table(page):
    data = example_report()
    cells = read_page(page).cells
    for evaluation in data["evaluations"]:
        for item in evaluation["slices"]:
            for model in ("candidate", "baseline"):
                for metric in _METRIC_NAMES:
                    key = (evaluation["node"], report.slice_id(item), metric, model)
                    if item[model] is None or (
                        model == "baseline" and metric in report.METRICS_SHARED_BY_MODELS
                    ):
                        assert key not in cells
                        continue
                    assert cells[key] == report.format_value(metric, item[model][metric])


def test_changes_against_the_baseline_are_signed(page):
    cells = read_page(page).cells
    key = (configs.COMPRESSION_EVALUATOR_ID, "overall", "root_mean_squared_error", "change")
    assert cells[key] == "+0.0500"


def test_charts_are_embedded_pngs(page):
    images = read_page(page).images
    ids = {image["id"] for image in images}
    assert ids == {
        "chart-loss-curves",
        "chart-slices-Evaluator",
        f"chart-slices-{configs.COMPRESSION_EVALUATOR_ID}",
        "chart-parameters",
    }
    for image in images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        picture = Image.open(io.BytesIO(base64.b64decode(image["src"][len(prefix) :])))
        assert picture.format == "PNG"
        assert picture.width >= 800 and picture.height >= 200
    assert "http://" not in page and "https://" not in page  # nothing fetched


def test_not_blessed_reasons_are_listed_and_escaped(page):
    reasons = read_page(page).reasons
    assert reasons == example_report()["blessing"]["reasons"]
    assert "&lt;b&gt;change&lt;/b&gt;" in page
    assert "NOT blessed" in page


def test_a_blessed_run_says_so_and_where_it_was_pushed():
    page = report.render_html(example_report(blessed=True))
    assert "Blessed by the Evaluator." in page
    assert "/runs/out/serving_model/x/1" in page
    assert read_page(page).reasons == []


def test_without_a_baseline_only_the_candidate_is_shown(page):
    cells = read_page(page).cells
    assert not any(
        model != "candidate" for evaluation, _, _, model in cells if evaluation == "Evaluator"
    )
    assert "No model had been blessed before this run." in page


# The slices in the order the report shows them, as "feature=value" and label.
SLICES_IN_ORDER = (
    [("overall", "overall")]
    + [(f"{features.MOVIE_POPULARITY_BLOCK}={name}", name) for name in ("head", "torso", "tail")]
    + [
        (f"{features.USER_ACTIVITY_QUARTILE}={name}", name)
        for name in ("most active 25%", "second 25%", "third 25%", "least active 25%")
    ]
    + [(f"{features.LABEL}={float(r)}", f"rating {r}") for r in range(1, 6)]
)


def test_slice_labels_name_blocks_quartiles_and_ratings():
    assert report.slice_label(None, None) == "overall"
    # As Transform emits them and tfma.load_eval_result gives them back: names.
    assert report.slice_label(features.MOVIE_POPULARITY_BLOCK, "head") == "head"
    assert report.slice_label(features.MOVIE_POPULARITY_BLOCK, b"tail") == "tail"
    quartile = features.USER_ACTIVITY_QUARTILE
    assert report.slice_label(quartile, "least active 25%") == "least active 25%"
    # Eval results written before Transform named the slices hold their index.
    assert report.slice_label(features.MOVIE_POPULARITY_BLOCK, 0) == "head"
    assert report.slice_label(features.MOVIE_POPULARITY_BLOCK, 2) == "tail"
    assert report.slice_label(quartile, 3) == "least active 25%"
    assert report.slice_label(features.LABEL, 4.0) == "rating 4"
    assert report.slice_label(features.LABEL, 3.5) == "rating 3.5"
    assert report.slice_label(features.MOVIE_POPULARITY_BLOCK, "unknown") == "unknown"


def test_named_slices_keep_their_order_not_the_alphabets():
    slicing_features = list(features.SLICING_FEATURES)
    expected = [()] + [
        ((feature, value),)
        for feature, names in (
            (features.MOVIE_POPULARITY_BLOCK, ("head", "torso", "tail")),
            (
                features.USER_ACTIVITY_QUARTILE,
                ("most active 25%", "second 25%", "third 25%", "least active 25%"),
            ),
            (features.LABEL, (1.0, 2.0, 3.0, 4.0, 5.0)),
        )
        for value in names
    ]
    for keys in (expected[::-1], sorted(expected, key=str)):
        ordered = sorted(
            keys,
            key=lambda k: report._slice_order(k, slicing_features),  # pylint: disable=protected-access
        )
        assert ordered == expected
    # Integer values (older eval results) sort the same way.
    legacy = [((features.MOVIE_POPULARITY_BLOCK, b),) for b in (2, 0, 1)]
    ordered = sorted(
        legacy,
        key=lambda k: report._slice_order(k, slicing_features),  # pylint: disable=protected-access
    )
    assert [report.slice_label(*key[0]) for key in ordered] == ["head", "torso", "tail"]


def test_the_table_labels_each_slice_by_name_in_order(page):
    labels = read_page(page).labels
    assert set(labels) == {"Evaluator", configs.COMPRESSION_EVALUATOR_ID}
    for rows in labels.values():
        assert rows == SLICES_IN_ORDER


def test_values_are_formatted_for_reading():
    assert report.format_value("example_count", 1894.0) == "1,894"
    assert report.format_value("root_mean_squared_error", 1.06354) == "1.0635"
    assert report.format_value("root_mean_squared_error", -0.01, signed=True) == "-0.0100"
    assert report.format_value("mean_label", float("nan")) == "–"
    assert report.format_value("mean_label", None) == "–"
    assert report.format_value("rmse_gain_over_mean", "NaN") == "–"  # as TFMA writes NaN


def test_thresholds_are_described_for_the_overall_slice():
    settings = configs.EvalSettings(rmse_upper_bound=0.97, rmse_max_increase=0.02)
    lines = report.threshold_descriptions(pipeline_lib.eval_config(settings))
    assert lines == [
        "RMSE ≤ 0.97 (overall)",
        "RMSE at most 0.02 above the latest blessed model's (overall)",
        f"gain over the mean ≥ {settings.min_gain_over_mean:g} (overall)",
    ]
    no_thresholds = pipeline_lib.eval_config(settings, with_thresholds=False)
    assert report.threshold_descriptions(no_thresholds) == []


def test_written_atomically_and_readable_by_others(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    report._write_atomically(str(target), "new page")  # pylint: disable=protected-access
    assert target.read_text() == "new page"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    with pytest.raises(TypeError):
        report._write_atomically(str(target), None)  # pylint: disable=protected-access
    assert target.read_text() == "new page"
    assert sorted(os.listdir(tmp_path)) == ["report.html"]  # no temporary left behind


def test_a_folder_without_a_run_is_an_error(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 1
    assert "metadata.db" in capsys.readouterr().err
    assert not (tmp_path / report.REPORT_FILE).exists()
