"""One self-contained HTML page about the latest run: where compression costs accuracy.

    python -m pipeline.report OUTPUT_ROOT      # writes OUTPUT_ROOT/report.html

OUTPUT_ROOT is ``local_runner.py``'s ``--output-root``. The page renders the
run's facts (``run_summary.collect``, also written to ``report.json`` beside
it) through ``templates/report.html.j2``: whether the Evaluator blessed the
model and if not which thresholds failed, loss curves per epoch, metrics per
slice from each Evaluator (the candidate beside its baseline when one was
evaluated), and the parameters of every embedding table.

Charts are PNGs embedded as data URIs, so the single file can be mailed or
attached to a CI run.
"""

import argparse
import base64
import io
import math
import os
import sys

import jinja2

from components import features
from components import metrics
from pipeline import configs
from pipeline import run_summary

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"

# TFMA metric names in the order of the table's columns, with their headings.
METRIC_HEADINGS = {
    metrics.EXAMPLE_COUNT_NAME: "examples",
    metrics.ROOT_MEAN_SQUARED_ERROR_NAME: "RMSE",
    metrics.NDCG_AT_K_NAME: f"NDCG@{metrics.RANKING_TOP_K}",
    metrics.RECALL_AT_K_NAME: f"recall@{metrics.RANKING_TOP_K}",
    metrics.MEAN_ABSOLUTE_ERROR_NAME: "MAE",
    metrics.MEAN_SQUARED_ERROR_NAME: "MSE",
    metrics.MEAN_PREDICTION_NAME: "mean prediction",
    metrics.MEAN_LABEL_NAME: "mean label",
    metrics.RMSE_GAIN_OVER_MEAN_NAME: "gain over the mean",
    metrics.RANKED_USERS_NAME: "users ranked",
}
# Same data for both models: the baseline's count, mean label and ranked users
# (those with a relevant movie) repeat the candidate's, so the table shows them once.
METRICS_SHARED_BY_MODELS = (
    metrics.EXAMPLE_COUNT_NAME,
    metrics.MEAN_LABEL_NAME,
    metrics.RANKED_USERS_NAME,
)
COUNT_METRICS = (metrics.EXAMPLE_COUNT_NAME, metrics.RANKED_USERS_NAME)
# Errors, where a positive change against the baseline is a loss.
ERROR_METRICS = (
    metrics.ROOT_MEAN_SQUARED_ERROR_NAME,
    metrics.MEAN_ABSOLUTE_ERROR_NAME,
    metrics.MEAN_SQUARED_ERROR_NAME,
)
# Ranking quality, where a positive change against the baseline is a gain.
RANKING_METRICS = (metrics.NDCG_AT_K_NAME, metrics.RECALL_AT_K_NAME)

RANKING_NOTE = (
    f"NDCG@{metrics.RANKING_TOP_K} and recall@{metrics.RANKING_TOP_K}: the model ranks each "
    "user's eval movies of the slice by predicted rating; a movie is relevant when the user "
    f"rated it {metrics.RELEVANT_RATING:g} or more. Averaged over the users with a relevant "
    "movie in the slice (users ranked). A movie-popularity slice ranks each user's movies of "
    "that block only, so it says how well the model orders a user's head (or tail) movies "
    "among themselves; a user-activity slice ranks whole users. A rating-value slice has no "
    "ranking: all its movies are equally relevant. These metrics measure only; the blessing "
    "is on RMSE."
)

FEATURE_TITLES = {
    features.MOVIE_POPULARITY_BLOCK: "movie popularity (thirds of the train ratings)",
    features.USER_ACTIVITY_QUARTILE: "user activity (quarters of the users)",
    features.LABEL: "rating value",
}

CANDIDATE_COLOR = "#1f6fb4"
BASELINE_COLOR = "#e8892b"
REFERENCE_COLOR = "#9a9a9a"


# ---------------------------------------------------------------- the page


def render_html(facts: dict) -> str:
    """The page for a ``run_summary.collect`` result; needs nothing but the dict."""
    return _environment().get_template(TEMPLATE).render(facts=facts, charts=_charts(facts))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(thousands="{:,}".format, mib=run_summary.mib)
    environment.globals.update(
        feature_title=lambda feature: FEATURE_TITLES.get(feature, feature),
        metric_columns=metric_columns,
        metric_cell=metric_cell,
        not_pushed=run_summary.NOT_PUSHED,
        ranking_note=RANKING_NOTE,
        serving_check_text=run_summary.serving_check_text,
        slice_id=slice_id,
    )
    return environment


def metric_columns(evaluation: dict) -> list[dict]:
    """The metric table's columns: each metric for the candidate, baseline and change."""
    baseline_name = evaluation["baseline_name"]
    columns = []
    for metric, heading in METRIC_HEADINGS.items():
        columns.append({"metric": metric, "model": "candidate", "heading": heading})
        if baseline_name and metric not in METRICS_SHARED_BY_MODELS:
            columns.append(
                {"metric": metric, "model": "baseline", "heading": f"{heading} {baseline_name}"}
            )
            columns.append({"metric": metric, "model": "change", "heading": f"{heading} change"})
    return columns


def metric_cell(item: dict, column: dict) -> dict:
    """A table cell's text and, for a change in an error, whether it is worse or better."""
    metric, model = column["metric"], column["model"]
    value = (item[model] or {}).get(metric)
    number = _metric(item, model, metric)
    css = None
    if model == "change" and metric in ERROR_METRICS + RANKING_METRICS and number:
        worse = number > 0 if metric in ERROR_METRICS else number < 0
        css = "worse" if worse else "better"
    return {"text": format_value(metric, value, signed=model == "change"), "css": css}


def slice_id(item: dict) -> str:
    """How a table row names its slice: "overall" or "feature=value"."""
    return "overall" if item["feature"] is None else f"{item['feature']}={item['value']}"


def format_value(metric: str, value: float | None, signed: bool = False) -> str:
    """A metric as the table shows it: counts whole, the rest to 4 decimals."""
    if isinstance(value, str):
        # TFMA writes NaN (a metric undefined on a slice) as the string "NaN".
        value = float(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in COUNT_METRICS and not signed:
        return f"{value:,.0f}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


# ---------------------------------------------------------------- charts


def _charts(facts: dict) -> dict[str, str | None]:
    """Every chart of the page by its id, as a data URI; None where there is nothing to draw."""
    with_history = [m for m in facts["models"] if m["history"]]
    reported = [m for m in facts["models"] if m["memory_report"]]
    charts = {
        "loss-curves": _data_uri(_loss_chart(with_history)) if with_history else None,
        "parameters": _data_uri(_parameter_chart(reported[0])) if reported else None,
    }
    for evaluation in facts["evaluations"]:
        charts[f"slices-{evaluation['node']}"] = _data_uri(_slice_chart(evaluation))
    return charts


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width: float, height: float):
    # A bare Figure with the Agg canvas: no pyplot, so no global state and no
    # display backend is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _loss_chart(models: list[dict]) -> bytes:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(11, 3.6)
    panels = (("loss", "loss (MSE + penalties)"), ("rmse", "RMSE"))
    colors = (CANDIDATE_COLOR, BASELINE_COLOR)
    for index, (metric, title) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        for model, color in zip(models, colors, strict=False):
            for prefix, style, split in (("", "-", "train"), ("val_", "--", "eval")):
                values = model["history"].get(prefix + metric)
                if values:
                    epochs = range(1, len(values) + 1)
                    label = f"{model['name']}, {split}"
                    axes.plot(epochs, values, style, color=color, marker="o", label=label)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return _png(figure)


def _slice_chart(evaluation: dict) -> bytes:
    """Per slicing feature: RMSE bars, NDCG@10 bars, and mean prediction against mean label."""
    by_feature: dict[str, list[dict]] = {}
    for item in evaluation["slices"]:
        if item["feature"] is not None:
            by_feature.setdefault(item["feature"], []).append(item)
    overall = next((s for s in evaluation["slices"] if s["feature"] is None), None)
    rows = max(len(by_feature), 1)
    figure = _figure(14, 2.9 * rows)
    ndcg = metrics.NDCG_AT_K_NAME
    for row, (feature, items) in enumerate(by_feature.items()):
        title = FEATURE_TITLES.get(feature, feature)
        panels = [figure.add_subplot(rows, 3, 3 * row + column) for column in (1, 2, 3)]
        _metric_bars(panels[0], items, overall, evaluation, metrics.ROOT_MEAN_SQUARED_ERROR_NAME)
        panels[0].set_title(f"RMSE by {title}", fontsize=10)
        if any(not math.isnan(_metric(item, "candidate", ndcg)) for item in items):
            _metric_bars(panels[1], items, overall, evaluation, ndcg)
        else:
            panels[1].text(0.5, 0.5, "no ranking to measure", ha="center", va="center")
            panels[1].set_axis_off()
        panels[1].set_title(f"{METRIC_HEADINGS[ndcg]} by {title}", fontsize=10)
        _calibration_points(panels[2], items, evaluation, title)
    if not by_feature:
        figure.text(0.5, 0.5, "no slices evaluated", ha="center")
    return _png(figure)


def _metric_bars(axes, items: list[dict], overall: dict | None, evaluation: dict, metric: str):
    baseline_name = evaluation["baseline_name"]
    models = [("candidate", "this model", CANDIDATE_COLOR)]
    if baseline_name:
        models.append(("baseline", baseline_name, BASELINE_COLOR))
    width = 0.8 / len(models)
    tallest = 0.0
    for index, (model, label, color) in enumerate(models):
        values = [_metric(item, model, metric) for item in items]
        offset = (index - (len(models) - 1) / 2) * width
        positions = [p + offset for p in range(len(items))]
        bars = axes.bar(positions, values, width, color=color, label=label)
        axes.bar_label(bars, fmt="%.3f", fontsize=7)
        tallest = max([tallest, *(v for v in values if not math.isnan(v))])
    if overall:
        axes.axhline(
            _metric(overall, "candidate", metric),
            color=REFERENCE_COLOR,
            linestyle=":",
            label="this model, overall",
        )
    # Headroom for the value labels and the legend above the bars.
    axes.set_ylim(0, max(tallest, 1e-9) * 1.35)
    axes.set_xticks(range(len(items)), [item["label"] for item in items], fontsize=8)
    axes.legend(fontsize=7, loc="upper right", ncol=3)
    axes.grid(axis="y", alpha=0.3)


def _calibration_points(axes, items: list[dict], evaluation: dict, title: str):
    positions = range(len(items))
    labels = [_metric(item, "candidate", metrics.MEAN_LABEL_NAME) for item in items]
    # A wide dash for the label, so a prediction right on it stays visible.
    axes.plot(positions, labels, "_", color="black", markersize=22, mew=2, label="mean label")
    series = [("candidate", "this model", "o", CANDIDATE_COLOR)]
    if evaluation["baseline_name"]:
        series.append(("baseline", evaluation["baseline_name"], "^", BASELINE_COLOR))
    for model, name, marker, color in series:
        predictions = [_metric(item, model, metrics.MEAN_PREDICTION_NAME) for item in items]
        axes.plot(positions, predictions, marker, color=color, label=f"mean prediction, {name}")
    axes.set_xticks(positions, [item["label"] for item in items], fontsize=8)
    axes.set_xlim(-0.5, len(items) - 0.5)
    axes.set_title(f"Calibration by {title}", fontsize=10)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)


def _metric(item: dict, model: str, metric: str) -> float:
    """A metric as a number; NaN where missing (TFMA writes NaN as the string "NaN")."""
    value = (item.get(model) or {}).get(metric)
    return float("nan") if value is None else float(value)


def _parameter_chart(model: dict) -> bytes:
    labels, values, colors = [], [], []
    for feature, table in model["memory_report"]["features"].items():
        full = f"{table['input_dim']:,} × {run_summary.full_dim(table)}"
        labels.append(f"{feature}: full table {full}")
        values.append(table["full_params"])
        colors.append(REFERENCE_COLOR)
        for part in table["tables"]:
            labels.append(f"{feature}: {part['name']} {part['rows']:,} × {part['dim']}")
            values.append(part["params"])
            colors.append(CANDIDATE_COLOR)
    figure = _figure(11, 0.9 + 0.32 * len(labels))
    axes = figure.add_subplot(1, 1, 1)
    positions = list(range(len(labels)))[::-1]
    axes.barh(positions, values, color=colors)
    axes.set_yticks(positions, labels, fontsize=8)
    for position, value in zip(positions, values, strict=True):
        axes.text(value, position, f" {value:,}", va="center", fontsize=7)
    axes.set_xlabel("parameters")
    axes.set_title(
        f"Parameters per embedding table, {model['name']} (grey: a full table of the same ids)",
        fontsize=10,
    )
    axes.grid(axis="x", alpha=0.3)
    axes.margins(x=0.12)
    return _png(figure)


# ---------------------------------------------------------------- writing


def write_report(facts: dict, report_path: str | None = None) -> str:
    """Writes the page (default OUTPUT_ROOT/report.html) and report.json beside it.

    Returns the page's path. The page is rendered before anything is written,
    so a failure leaves the previous run's pair as it was.
    """
    report_path = report_path or os.path.join(facts["output_root"], REPORT_FILE)
    page = render_html(facts)
    run_summary.write_facts(facts, os.path.dirname(os.path.abspath(report_path)))
    run_summary.write_atomically(report_path, page)
    return report_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("output_root", help="local_runner.py's --output-root")
    parser.add_argument("--pipeline-name", default=configs.PIPELINE_NAME)
    parser.add_argument("--out", help="where to write the HTML (default OUTPUT_ROOT/report.html)")
    args = parser.parse_args(argv)
    try:
        facts = run_summary.collect(args.output_root, args.pipeline_name)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Report: {os.path.abspath(write_report(facts, args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
