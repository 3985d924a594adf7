"""One self-contained HTML page about the latest run: where compression costs accuracy.

    python -m pipeline.report OUTPUT_ROOT      # writes OUTPUT_ROOT/report.html

OUTPUT_ROOT is ``local_runner.py``'s ``--output-root``. The run's artifacts
are found through ML Metadata (``OUTPUT_ROOT/metadata/<pipeline>/metadata.db``),
as for the run summary. The page shows:

- whether the Evaluator blessed the model, and if not which thresholds failed;
- loss curves per epoch, train and eval (the Trainer's ``history.json``);
- metrics per slice from each Evaluator's TFMA output, the candidate beside
  its baseline when one was evaluated: the latest blessed model for the
  Evaluator, the same model with full tables for the ``compression_evaluator``
  (``--compare-full-model``);
- parameters per embedding table (the Trainer's ``memory_report.json``).

Charts are PNGs embedded as data URIs, so the single file can be mailed or
attached to a CI run. Every number the page shows is also written to
``report.json`` beside it, raw, for scripts and tests.
"""

import argparse
import base64
import datetime
import html
import io
import json
import math
import numbers
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

import tensorflow as tf
import tensorflow_model_analysis as tfma

from components import features
from pipeline import configs
from pipeline import run_summary
from trainer import task as trainer_task

REPORT_FILE = "report.html"
NUMBERS_FILE = "report.json"

# TFMA metric names in the order of the table's columns, with their headings.
METRIC_HEADINGS = {
    "example_count": "examples",
    "root_mean_squared_error": "RMSE",
    "mean_absolute_error": "MAE",
    "mean_squared_error": "MSE",
    "mean_prediction": "mean prediction",
    "mean_label": "mean label",
    "rmse_gain_over_mean": "gain over the mean",
}
# Same data for both models: the baseline's count and mean label repeat the
# candidate's, so the table shows them once.
METRICS_SHARED_BY_MODELS = ("example_count", "mean_label")
# TFMA names a candidate-minus-baseline metric after the metric plus this.
DIFF_SUFFIX = "_diff"

FEATURE_TITLES = {
    features.MOVIE_POPULARITY_BLOCK: "movie popularity (thirds of the train ratings)",
    features.USER_ACTIVITY_QUARTILE: "user activity (quarters of the users)",
    features.LABEL: "rating value",
}
# Transform emits these slicing features by name; the names' order is the
# slices' order (head before tail, the most active users first), which
# sorting the names would lose.
SLICE_VALUE_NAMES = {
    features.MOVIE_POPULARITY_BLOCK: features.MOVIE_POPULARITY_BLOCK_NAMES,
    features.USER_ACTIVITY_QUARTILE: features.USER_ACTIVITY_QUARTILE_NAMES,
}

CANDIDATE_COLOR = "#1f6fb4"
BASELINE_COLOR = "#e8892b"
REFERENCE_COLOR = "#9a9a9a"


def metadata_path(output_root: str, pipeline_name: str = configs.PIPELINE_NAME) -> str:
    return os.path.join(output_root, "metadata", pipeline_name, "metadata.db")


def collect(output_root: str, pipeline_name: str = configs.PIPELINE_NAME) -> Dict:
    """Everything the page shows, as JSON-ready values, read from the latest run."""
    path = metadata_path(output_root, pipeline_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No ML Metadata at {path}: has the pipeline run there?")
    summary = run_summary.summarize(path)
    outputs = run_summary.latest_run_outputs(run_summary.open_store(path))

    main_evaluation = read_evaluation(
        outputs[run_summary.EVALUATOR]["evaluation"].uri,
        node=run_summary.EVALUATOR,
        title="Blessing check: this model against the latest blessed model",
        baseline_name="latest blessed",
        no_baseline_note=(
            "No model had been blessed before this run, so there is no baseline and the "
            "change threshold did not apply."
        ),
    )
    evaluations = [main_evaluation]
    models = [read_model("this model", outputs[run_summary.TRAINER])]
    if configs.COMPRESSION_EVALUATOR_ID in outputs:
        evaluations.append(
            read_evaluation(
                outputs[configs.COMPRESSION_EVALUATOR_ID]["evaluation"].uri,
                node=configs.COMPRESSION_EVALUATOR_ID,
                title="Cost of compression: this model against the same model with full tables",
                baseline_name="full tables",
                no_baseline_note="The full-table model was not evaluated.",
            )
        )
    if configs.FULL_MODEL_TRAINER_ID in outputs:
        models.append(read_model("full tables", outputs[configs.FULL_MODEL_TRAINER_ID]))

    return {
        "pipeline_name": pipeline_name,
        "output_root": os.path.abspath(output_root),
        "generated_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "blessing": {
            "blessed": summary.blessed,
            "reasons": summary.failures,
            "thresholds": main_evaluation["thresholds"],
            "pushed": summary.pushed,
            "pushed_destination": summary.pushed_destination,
        },
        "evaluations": evaluations,
        "models": models,
    }


def read_evaluation(
    uri: str, node: str, title: str, baseline_name: str, no_baseline_note: str
) -> Dict:
    """Per-slice metrics of one Evaluator output, candidate and baseline."""
    eval_config = tfma.load_eval_result(uri).config
    candidate_spec = next(s for s in eval_config.model_specs if not s.is_baseline)
    baseline_spec = next((s for s in eval_config.model_specs if s.is_baseline), None)
    candidate, change = _metrics_by_slice(uri, candidate_spec.name)
    baseline = _metrics_by_slice(uri, baseline_spec.name)[0] if baseline_spec else {}

    slicing_features = [key for spec in eval_config.slicing_specs for key in spec.feature_keys]
    slices = []
    for slice_key in sorted(candidate, key=lambda k: _slice_order(k, slicing_features)):
        feature, value = slice_key[0] if slice_key else (None, None)
        if isinstance(value, bytes):  # TFMA gives str; bytes would not go to JSON
            value = value.decode("utf-8", "replace")
        slices.append(
            {
                "feature": feature,
                "value": value,
                "label": slice_label(feature, value),
                "candidate": candidate[slice_key],
                "baseline": baseline.get(slice_key),
                "change": change.get(slice_key) or None,
            }
        )
    return {
        "node": node,
        "title": title,
        "uri": uri,
        "baseline_name": baseline_name if baseline_spec else None,
        "note": None if baseline_spec else no_baseline_note,
        "slices": slices,
        "thresholds": threshold_descriptions(eval_config),
    }


def _metrics_by_slice(uri: str, model_name: str):
    """({slice key: {metric: value}}, {slice key: {metric: change vs baseline}})."""
    result = tfma.load_eval_result(uri, model_name=model_name or None)
    values, changes = {}, {}
    for slice_key, by_output in result.slicing_metrics:
        metrics = by_output.get("", {}).get("", {})
        values[slice_key], changes[slice_key] = {}, {}
        for name, value in metrics.items():
            if "doubleValue" not in value:
                continue
            if name.endswith(DIFF_SUFFIX):
                changes[slice_key][name[: -len(DIFF_SUFFIX)]] = value["doubleValue"]
            else:
                values[slice_key][name] = value["doubleValue"]
    return values, changes


def _slice_order(slice_key, slicing_features: Sequence[str]):
    """Overall first, then by slicing feature; named slices in their names' order."""
    if not slice_key:
        return (-1, 0, 0.0, "")
    feature, value = slice_key[0]
    rank = slicing_features.index(feature) if feature in slicing_features else len(slicing_features)
    index = slice_value_index(feature, value)
    if index is not None:
        return (rank, 0, float(index), "")
    if isinstance(value, numbers.Real):
        return (rank, 1, float(value), "")
    return (rank, 2, 0.0, _as_text(value))


def slice_value_index(feature: Optional[str], value) -> Optional[int]:
    """Where a slice value stands among its feature's names, or None if not named.

    Transform emits the names (TFMA gives them back as str). Integer values,
    from eval results written before it did, are read as the index itself.
    """
    names = SLICE_VALUE_NAMES.get(feature)
    if names is None or value is None:
        return None
    if isinstance(value, (str, bytes)):
        text = _as_text(value)
        return names.index(text) if text in names else None
    is_index = isinstance(value, numbers.Real) and float(value).is_integer()
    return int(value) if is_index and 0 <= int(value) < len(names) else None


def slice_label(feature: Optional[str], value) -> str:
    if feature is None:
        return "overall"
    index = slice_value_index(feature, value)
    if index is not None:
        return SLICE_VALUE_NAMES[feature][index]
    if feature == features.LABEL and isinstance(value, numbers.Real):
        return f"rating {float(value):g}"
    return _as_text(value)


def _as_text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def threshold_descriptions(eval_config) -> List[str]:
    """The blessing thresholds of an EvalConfig, one line each."""
    lines = []
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            scoped = [("every slice", metric.threshold)] if metric.HasField("threshold") else []
            for per_slice in metric.per_slice_thresholds:
                for slicing_spec in per_slice.slicing_specs:
                    where = "overall" if not slicing_spec.feature_keys else str(slicing_spec)
                    scoped.append((where, per_slice.threshold))
            name = _threshold_metric_name(metric)
            for where, threshold in scoped:
                if threshold.HasField("value_threshold"):
                    bounds = threshold.value_threshold
                    if bounds.HasField("upper_bound"):
                        lines.append(f"{name} ≤ {bounds.upper_bound.value:g} ({where})")
                    if bounds.HasField("lower_bound"):
                        lines.append(f"{name} ≥ {bounds.lower_bound.value:g} ({where})")
                if threshold.HasField("change_threshold"):
                    change = threshold.change_threshold
                    direction = (
                        "above"
                        if change.direction == tfma.MetricDirection.LOWER_IS_BETTER
                        else "below"
                    )
                    lines.append(
                        f"{name} at most {change.absolute.value:g} {direction} the "
                        f"latest blessed model's ({where})"
                    )
    # With a baseline TFMA repeats each metric per model; the text is the same.
    return list(dict.fromkeys(lines))


def _threshold_metric_name(metric_config) -> str:
    """The metric's column heading (RMSE), else the name TFMA reports it under."""
    from tensorflow_model_analysis.metrics import metric_specs

    name = metric_specs.metric_instance(metric_config).name
    return METRIC_HEADINGS.get(name, name)


def read_model(name: str, trainer_outputs: Dict) -> Dict:
    model_uri = trainer_outputs["model"].uri
    extra = os.path.join(model_uri, "Format-Serving", "assets.extra")
    history = _read_json(os.path.join(extra, trainer_task.HISTORY_FILE))
    model_run = trainer_outputs.get("model_run")
    return {
        "name": name,
        "uri": model_uri,
        "tensorboard": os.path.join(model_run.uri, "tensorboard") if model_run else None,
        "history": history["history"] if history else None,
        "memory_report": _read_json(os.path.join(extra, trainer_task.MEMORY_REPORT_FILE)),
    }


def _read_json(path: str):
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- the page


def render_html(report: Dict) -> str:
    """The page for a ``collect`` result; needs nothing but the dict."""
    sections = [
        _blessing_section(report["blessing"]),
        _training_section(report["models"]),
        *(_evaluation_section(evaluation) for evaluation in report["evaluations"]),
        _parameters_section(report["models"]),
    ]
    title = f"{report['pipeline_name']}: evaluation report"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_text(title)}</h1>"
        f'<p class="meta">{_text(report["output_root"])} · '
        f"generated {_text(report['generated_at'])}</p>" + "".join(sections) + "</body></html>\n"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
.meta, .note { color: #666; font-size: 13px; }
.status { padding: 10px 14px; border-radius: 6px; }
.blessed { background: #e6f4e6; border: 1px solid #7bbf7b; }
.not-blessed { background: #fbe7e7; border: 1px solid #d27b7b; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; } td.slice, th.slice { text-align: left; }
tr.overall td { font-weight: 600; }
td.worse { color: #b02020; } td.better { color: #207020; }
img.chart { display: block; max-width: 100%; margin: 8px 0; }
code { font-size: 12px; }
"""


def _text(value) -> str:
    return html.escape(str(value))


def _blessing_section(blessing: Dict) -> str:
    if blessing["blessed"]:
        status = '<div class="status blessed" id="blessing-status">Blessed by the Evaluator.</div>'
    else:
        reasons = "".join(
            f"<li>{_text(r)}</li>" for r in blessing["reasons"] or ["(no reason recorded)"]
        )
        status = (
            '<div class="status not-blessed" id="blessing-status">NOT blessed by the Evaluator:'
            f'<ul id="blessing-reasons">{reasons}</ul></div>'
        )
    pushed = (
        f"Pushed to <code>{_text(blessing['pushed_destination'])}</code>."
        if blessing["pushed"]
        else "Not pushed; the serving folder keeps its earlier versions."
    )
    thresholds = "".join(f"<li>{_text(t)}</li>" for t in blessing["thresholds"])
    return (
        f"<h2>Blessing</h2>{status}<p>{pushed}</p>"
        f"<p>Thresholds (the other slices inform, they do not gate):</p><ul>{thresholds}</ul>"
    )


def _training_section(models: List[Dict]) -> str:
    parts = ["<h2>Training</h2>"]
    with_history = [m for m in models if m["history"]]
    if with_history:
        parts.append(_image(_loss_chart(with_history), "loss and RMSE per epoch", "loss-curves"))
    else:
        parts.append('<p class="note">No training history recorded.</p>')
    for model in models:
        if model["tensorboard"]:
            parts.append(
                f'<p class="note">{_text(model["name"])}: TensorBoard logs in '
                f"<code>{_text(model['tensorboard'])}</code></p>"
            )
    return "".join(parts)


def _evaluation_section(evaluation: Dict) -> str:
    parts = [f"<h2>{_text(evaluation['title'])}</h2>"]
    parts.append(
        f'<p class="note">TFMA output (eval split): <code>{_text(evaluation["uri"])}</code></p>'
    )
    if evaluation["note"]:
        parts.append(f'<p class="note">{_text(evaluation["note"])}</p>')
    parts.append(
        _image(
            _slice_chart(evaluation),
            f"RMSE and calibration per slice: {evaluation['title']}",
            f"slices-{evaluation['node']}",
        )
    )
    parts.append(_metrics_table(evaluation))
    return "".join(parts)


def _metrics_table(evaluation: Dict) -> str:
    baseline_name = evaluation["baseline_name"]
    columns = []  # (metric, model, heading)
    for metric, heading in METRIC_HEADINGS.items():
        columns.append((metric, "candidate", heading))
        if baseline_name and metric not in METRICS_SHARED_BY_MODELS:
            columns.append((metric, "baseline", f"{heading} {baseline_name}"))
            columns.append((metric, "change", f"{heading} change"))
    head = '<th class="slice">slice</th>' + "".join(
        f'<th data-metric="{m}" data-model="{who}">{_text(h)}</th>' for m, who, h in columns
    )
    rows = []
    previous_feature = object()
    for item in evaluation["slices"]:
        if item["feature"] != previous_feature and item["feature"] is not None:
            title = FEATURE_TITLES.get(item["feature"], item["feature"])
            rows.append(
                f'<tr class="group"><td class="slice" colspan="{len(columns) + 1}">'
                f"<b>{_text(title)}</b></td></tr>"
            )
        previous_feature = item["feature"]
        cells = [f'<td class="slice">{_text(item["label"])}</td>']
        for metric, who, _ in columns:
            value = (item[who] or {}).get(metric) if who != "change" else None
            css = ""
            if who == "change":
                value = (item["change"] or {}).get(metric)
                if value is not None and metric in _ERROR_METRICS and value != 0:
                    css = ' class="worse"' if value > 0 else ' class="better"'
            cells.append(
                f'<td data-metric="{metric}" data-model="{who}"{css}>'
                f"{_text(format_value(metric, value, signed=who == 'change'))}</td>"
            )
        row_class = ' class="overall"' if item["feature"] is None else ""
        rows.append(f'<tr{row_class} data-slice="{_text(slice_id(item))}">{"".join(cells)}</tr>')
    return (
        f'<table class="metrics" data-evaluation="{_text(evaluation["node"])}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


_ERROR_METRICS = ("root_mean_squared_error", "mean_absolute_error", "mean_squared_error")


def slice_id(item: Dict) -> str:
    """How a table row names its slice: "overall" or "feature=value"."""
    return "overall" if item["feature"] is None else f"{item['feature']}={item['value']}"


def format_value(metric: str, value: Optional[float], signed: bool = False) -> str:
    """A metric as the table shows it: counts whole, the rest to 4 decimals."""
    if isinstance(value, str):
        # TFMA writes NaN (a metric undefined on a slice) as the string "NaN".
        value = float(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric == "example_count" and not signed:
        return f"{value:,.0f}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _parameters_section(models: List[Dict]) -> str:
    parts = ["<h2>Embedding tables</h2>"]
    reported = [m for m in models if m["memory_report"]]
    if not reported:
        return parts[0] + '<p class="note">No memory report recorded.</p>'
    parts.append(
        _image(_parameter_chart(reported[0]), "parameters per embedding table", "parameters")
    )
    for model in reported:
        parts.append(_memory_table(model))
    return "".join(parts)


def _memory_table(model: Dict) -> str:
    report = model["memory_report"]
    rows = []
    for feature, table in report["features"].items():
        rows.append(
            f'<tr data-feature="{_text(feature)}"><td class="slice"><b>{_text(feature)}</b> '
            f"{_text(table['type'])}</td><td></td><td>{table['params']:,}</td>"
            f"<td>{table['bytes'] / 2**20:.2f}</td><td>{table['compression']:.1f}×</td></tr>"
        )
        for part in table["tables"]:
            rows.append(
                f'<tr><td class="slice">&nbsp;&nbsp;{_text(part["name"])}</td>'
                f"<td>{part['rows']:,} × {part['dim']}</td><td>{part['params']:,}</td>"
                f"<td>{part['bytes'] / 2**20:.2f}</td><td></td></tr>"
            )
    total = report["total"]
    rows.append(
        f'<tr class="overall"><td class="slice">all tables</td><td></td>'
        f"<td>{total['params']:,}</td><td>{total.get('bytes', 0) / 2**20:.2f}</td>"
        f"<td>{total['compression']:.1f}×</td></tr>"
    )
    return (
        f"<p>{_text(model['name'])} (<code>{_text(model['uri'])}</code>):</p>"
        '<table class="memory"><thead><tr><th class="slice">table</th><th>rows × dim</th>'
        "<th>parameters</th><th>MiB (fp32)</th><th>smaller than full</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _image(png: bytes, alt: str, chart_id: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img class="chart" id="chart-{_text(chart_id)}" alt="{_text(alt)}" '
        f'src="data:image/png;base64,{data}">'
    )


# ---------------------------------------------------------------- charts


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


def _loss_chart(models: List[Dict]) -> bytes:
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


def _slice_chart(evaluation: Dict) -> bytes:
    """Per slicing feature: RMSE bars and mean prediction against mean label."""
    by_feature: Dict[str, List[Dict]] = {}
    for item in evaluation["slices"]:
        if item["feature"] is not None:
            by_feature.setdefault(item["feature"], []).append(item)
    overall = next((s for s in evaluation["slices"] if s["feature"] is None), None)
    rows = max(len(by_feature), 1)
    figure = _figure(11, 2.9 * rows)
    for row, (feature, items) in enumerate(by_feature.items()):
        title = FEATURE_TITLES.get(feature, feature)
        _rmse_bars(figure.add_subplot(rows, 2, 2 * row + 1), items, overall, evaluation, title)
        _calibration_points(figure.add_subplot(rows, 2, 2 * row + 2), items, evaluation, title)
    if not by_feature:
        figure.text(0.5, 0.5, "no slices evaluated", ha="center")
    return _png(figure)


def _rmse_bars(axes, items: List[Dict], overall: Optional[Dict], evaluation: Dict, title: str):
    baseline_name = evaluation["baseline_name"]
    models = [("candidate", "this model", CANDIDATE_COLOR)]
    if baseline_name:
        models.append(("baseline", baseline_name, BASELINE_COLOR))
    width = 0.8 / len(models)
    tallest = 0.0
    for index, (model, label, color) in enumerate(models):
        values = [_metric(item, model, "root_mean_squared_error") for item in items]
        offset = (index - (len(models) - 1) / 2) * width
        positions = [p + offset for p in range(len(items))]
        bars = axes.bar(positions, values, width, color=color, label=label)
        axes.bar_label(bars, fmt="%.3f", fontsize=7)
        tallest = max([tallest, *(v for v in values if not math.isnan(v))])
    if overall:
        axes.axhline(
            _metric(overall, "candidate", "root_mean_squared_error"),
            color=REFERENCE_COLOR,
            linestyle=":",
            label="this model, overall",
        )
    # Headroom for the value labels and the legend above the bars.
    axes.set_ylim(0, max(tallest, 1e-9) * 1.35)
    axes.set_xticks(range(len(items)), [item["label"] for item in items], fontsize=8)
    axes.set_title(f"RMSE by {title}", fontsize=10)
    axes.legend(fontsize=7, loc="upper right", ncol=3)
    axes.grid(axis="y", alpha=0.3)


def _calibration_points(axes, items: List[Dict], evaluation: Dict, title: str):
    positions = range(len(items))
    labels = [_metric(item, "candidate", "mean_label") for item in items]
    # A wide dash for the label, so a prediction right on it stays visible.
    axes.plot(positions, labels, "_", color="black", markersize=22, mew=2, label="mean label")
    series = [("candidate", "this model", "o", CANDIDATE_COLOR)]
    if evaluation["baseline_name"]:
        series.append(("baseline", evaluation["baseline_name"], "^", BASELINE_COLOR))
    for model, name, marker, color in series:
        predictions = [_metric(item, model, "mean_prediction") for item in items]
        axes.plot(positions, predictions, marker, color=color, label=f"mean prediction, {name}")
    axes.set_xticks(positions, [item["label"] for item in items], fontsize=8)
    axes.set_xlim(-0.5, len(items) - 0.5)
    axes.set_title(f"Calibration by {title}", fontsize=10)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)


def _metric(item: Dict, model: str, metric: str) -> float:
    value = (item.get(model) or {}).get(metric)
    return float("nan") if value is None else value


def _parameter_chart(model: Dict) -> bytes:
    labels, values, colors = [], [], []
    for feature, table in model["memory_report"]["features"].items():
        full_dim = table["full_params"] // table["input_dim"]
        labels.append(f"{feature}: full table {table['input_dim']:,} × {full_dim}")
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


def write_report(
    output_root: str,
    pipeline_name: str = configs.PIPELINE_NAME,
    report_path: Optional[str] = None,
) -> str:
    """Writes report.html (and report.json beside it); returns the HTML's path."""
    report = collect(output_root, pipeline_name)
    report_path = report_path or os.path.join(output_root, REPORT_FILE)
    numbers_path = os.path.join(os.path.dirname(os.path.abspath(report_path)), NUMBERS_FILE)
    _write_atomically(numbers_path, json.dumps(report, indent=2, default=_json_scalar))
    _write_atomically(report_path, render_html(report))
    return report_path


def _json_scalar(value):
    # Slice values and metrics may come back from TFMA as numpy scalars.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value)}")


def _write_atomically(path: str, text: str) -> None:
    """Readers (a browser, a CI upload) never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp makes the file private; a report is for sharing.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("output_root", help="local_runner.py's --output-root")
    parser.add_argument("--pipeline-name", default=configs.PIPELINE_NAME)
    parser.add_argument("--out", help="where to write the HTML (default OUTPUT_ROOT/report.html)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.output_root, args.pipeline_name, args.out)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Report: {os.path.abspath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
