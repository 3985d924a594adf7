"""The report page from a fixed set of facts: tables, charts, blessing, writing."""

import base64
import html
import html.parser
import io
import json
import os

import pytest
from PIL import Image

from components import features
from pipeline import configs
from pipeline import report
from pipeline import run_summary
from pipeline.run_summary_test import ADAPTATION
from pipeline.run_summary_test import METRIC_NAMES
from pipeline.run_summary_test import example_facts


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
    return report.render_html(example_facts())


def test_every_metric_of_every_slice_is_in_the_table(page):
    data = example_facts()
    cells = read_page(page).cells
    for evaluation in data["evaluations"]:
        for item in evaluation["slices"]:
            for model in ("candidate", "baseline"):
                for metric in METRIC_NAMES:
                    key = (evaluation["node"], report.slice_id(item), metric, model)
                    if item[model] is None or (
                        model == "baseline" and metric in report.METRICS_SHARED_BY_MODELS
                    ):
                        assert key not in cells
                        continue
                    # Rating-value slices carry no ranking metrics: a dash.
                    value = item[model].get(metric)
                    assert cells[key] == report.format_value(metric, value)


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
    assert reasons == example_facts()["blessing"]["reasons"]
    assert "&lt;b&gt;change&lt;/b&gt;" in page
    assert "NOT blessed" in page


def test_a_blessed_run_says_so_and_where_it_was_pushed():
    page = report.render_html(example_facts(blessed=True))
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


def test_the_table_labels_each_slice_by_name_in_order(page):
    labels = read_page(page).labels
    assert set(labels) == {"Evaluator", configs.COMPRESSION_EVALUATOR_ID}
    for rows in labels.values():
        assert rows == SLICES_IN_ORDER


def test_values_are_formatted_for_reading():
    assert report.format_value("example_count", 1894.0) == "1,894"
    assert report.format_value("ranked_users", 919.0) == "919"
    assert report.format_value("ndcg_at_10", 0.88021) == "0.8802"
    assert report.format_value("root_mean_squared_error", 1.06354) == "1.0635"
    assert report.format_value("root_mean_squared_error", -0.01, signed=True) == "-0.0100"
    assert report.format_value("mean_label", float("nan")) == "–"
    assert report.format_value("mean_label", None) == "–"
    assert report.format_value("rmse_gain_over_mean", "NaN") == "–"  # as TFMA writes NaN


def test_ranking_metrics_sit_beside_rmse_for_both_models_and_are_explained(page):
    cells = read_page(page).cells
    compression = configs.COMPRESSION_EVALUATOR_ID
    overall = example_facts()["evaluations"][1]["slices"][0]
    for metric in ("ndcg_at_10", "recall_at_10"):
        for model in ("candidate", "baseline", "change"):
            key = (compression, "overall", metric, model)
            assert cells[key] == report.format_value(
                metric, overall[model][metric], model == "change"
            )
        # Compression costs ranking quality here: the change is marked as a loss.
        assert f'data-metric="{metric}" data-model="change" class="worse"' in page
    assert (compression, "overall", "ranked_users", "baseline") not in cells
    assert cells[("Evaluator", "rating=5.0", "ndcg_at_10", "candidate")] == "–"
    headings = [
        column["heading"] for column in report.metric_columns(example_facts()["evaluations"][0])
    ]
    assert headings[1:4] == ["RMSE", "NDCG@10", "recall@10"]
    assert report.RANKING_NOTE in html.unescape(page)


def test_the_page_and_the_console_give_the_same_reasons_word_for_word(page):
    facts = example_facts()
    console = run_summary.format_summary(facts)
    assert read_page(page).reasons == facts["blessing"]["reasons"]
    for reason in facts["blessing"]["reasons"]:
        assert f"  {reason}\n" in console


def test_the_serving_check_and_table_adaptations_are_shown(page):
    facts = example_facts()
    assert run_summary.serving_check_text(facts["serving_check"]) in html.unescape(page)
    assert f"adapted: {ADAPTATION}" in page
    older = dict(facts, serving_check=None)
    assert 'id="serving-check"' not in report.render_html(older)


def test_writes_the_page_and_the_facts_beside_it(tmp_path):
    facts = dict(example_facts(), output_root=str(tmp_path))
    path = report.write_report(facts)
    assert path == str(tmp_path / report.REPORT_FILE)
    assert read_page((tmp_path / report.REPORT_FILE).read_text()).reasons
    assert json.loads((tmp_path / run_summary.FACTS_FILE).read_text()) == facts
    # A page that cannot be rendered writes neither file.
    os.remove(path)
    os.remove(tmp_path / run_summary.FACTS_FILE)
    with pytest.raises(Exception):  # noqa: B017 - whatever the template raises
        report.write_report(dict(facts, blessing={}))
    assert os.listdir(tmp_path) == []


def test_a_folder_without_a_run_is_an_error(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 1
    assert "metadata.db" in capsys.readouterr().err
    assert not (tmp_path / report.REPORT_FILE).exists()
