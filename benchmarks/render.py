"""Renders every ``results/*.json`` as ``results/*.md``: tables of what the JSON holds.

No figure is typed here: a table shows the JSON's values, and the only
derived columns are differences between its rows (``vs_full_%``, ``vs`` with
two standard errors of the difference, ``factors_add``).

``--chart`` also draws ``results/budgets.png`` (``chart``): eval RMSE against
id-indexed parameters, one panel per data set of ``extreme.json``, with the
rows of ``quality.json`` on the same data sets (8x-32x).

    python -m benchmarks.render [--results benchmarks/results] [--chart]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Row fields left out of tables: the full model settings stay in the JSON.
HIDDEN = {"model", "log"}
DERIVED = ("vs_full_%", "vs", "factors_add")


def cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:,.6g}"
    if isinstance(value, list):
        return " / ".join(cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def is_records(value) -> bool:
    """A dict of records (dicts with scalar fields) sharing a field: a row or column each."""
    if not (isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values())):
        return False
    members = list(value.values())
    scalar = all(any(not isinstance(f, (dict, list)) for f in m.values()) for m in members)
    return scalar and bool(set.intersection(*(set(m) for m in members)))


def label(record: dict, index: int) -> str:
    for key in ("config", "change", "layout", "dataset", "variant"):
        if record.get(key):
            return str(record[key])
    return f"#{index + 1}"


def flatten(record: dict, prefix: str = "") -> tuple[dict, dict]:
    """(scalar cells with dotted keys, nested lists of records to render as their own tables)."""
    cells, nested = {}, {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if key in HIDDEN and not prefix:
            continue
        if isinstance(value, dict):
            sub_cells, sub_nested = flatten(value, name + ".")
            cells.update(sub_cells)
            nested.update(sub_nested)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested[name] = value
        else:
            cells[name] = value
    return cells, nested


def row_name(row: dict) -> str | None:
    return row.get("config") or row.get("change") or row.get("layout")


def compare(rows: list[dict]) -> list[dict]:
    """Rows with differences to their reference rows, for the benchmark's result rows.

    ``vs_full_%``: val RMSE relative to the row named ``baseline`` (the tuned
    full model). ``vs``: val RMSE minus that of the row named by ``versus``
    (results before ``versus`` existed: ``uniform_<budget>x``), with two
    standard errors of the difference from the seeds' spread.
    """
    by_name = {row_name(r): r for r in rows if row_name(r)}
    full = by_name.get("baseline")
    out = []
    for row in rows:
        row = dict(row)
        rmse = row.get("val_rmse")
        if "rmse_trained" in row and "rmse_tables_zeroed" in row:
            row["factors_add"] = round(row["rmse_trained"] - row["rmse_tables_zeroed"], 4)
        if isinstance(rmse, float) and full and row_name(row) != "baseline":
            row["vs_full_%"] = round(100 * (rmse / full["val_rmse"] - 1), 2)
        budget = row.get("budget")
        reference = by_name.get(row.pop("versus", None) or (budget and f"uniform_{budget}x"))
        if isinstance(rmse, float) and reference and row_name(reference) != row_name(row):
            noise = (
                2
                * sum(
                    r.get("val_rmse_std", 0) ** 2 / max(r.get("seeds", 1), 1)
                    for r in (row, reference)
                )
                ** 0.5
            )
            row["vs"] = f"{row_name(reference)}: {rmse - reference['val_rmse']:+.4f} ± {noise:.4f}"
        out.append(row)
    return out


def table(records: Sequence[dict], names=None, transpose: bool | None = None) -> list[str]:
    """A Markdown table, one row per record; transposed when records are few and wide."""
    flat = [flatten(r) for r in records]
    names = list(names or [label(r, i) for i, r in enumerate(records)])
    columns = list(dict.fromkeys(k for cells, _ in flat for k in cells))
    # Fields of one nested dict side by side; the derived differences last.
    first = {k.split(".")[0]: i for i, k in reversed(list(enumerate(columns)))}
    columns.sort(key=lambda k: (k in DERIVED, first[k.split(".")[0]]))
    if transpose if transpose is not None else 12 < len(columns) > 2 * len(records):
        lines = [
            "| field | " + " | ".join(map(cell, names)) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for key in columns:
            lines.append(f"| {key} | " + " | ".join(cell(c.get(key)) for c, _ in flat) + " |")
    else:
        lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
        for cells, _ in flat:
            lines.append("| " + " | ".join(cell(cells.get(k)) for k in columns) + " |")
    for name, (_, nested) in zip(names, flat, strict=False):
        for key, members in nested.items():
            lines += ["", f"`{key}` of {name}:", ""] + table(members)
    return lines


def render_node(value, path: str, depth: int) -> list[str]:
    lines = ["", "#" * min(depth, 4) + f" {path}", ""] if path else []
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        if path != "rows":
            return lines + table(compare(value))
        lines = []
        # Result rows: one table per data set (and group), as their rows are compared.
        for key in dict.fromkeys((r.get("dataset"), r.get("group")) for r in value):
            members = [
                {k: v for k, v in r.items() if k not in ("dataset", "group")}
                for r in value
                if (r.get("dataset"), r.get("group")) == key
            ]
            title = " – ".join(k for k in key if k) or path
            lines += ["", "#" * min(depth, 4) + f" {title}", ""] + table(
                compare(members), transpose=False
            )
        return lines
    if is_records(value):
        return lines + table(list(value.values()), list(value))
    if not isinstance(value, dict):
        return lines + [cell(value)]
    scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list)) or is_plain(v)}
    if scalars:
        lines += ["| field | value |", "|---|---|"]
        lines += [f"| {k} | {cell(v)} |" for k, v in scalars.items()]
    for key, child in value.items():
        if key not in scalars and child:
            lines += render_node(child, f"{path}.{key}" if path else key, depth + 1)
    return lines


def is_plain(value) -> bool:
    """A list of scalars (one cell)."""
    return isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value)


def render(payload, name: str) -> str:
    """The Markdown of one results file; a bare list is a file of rows."""
    if isinstance(payload, list):
        payload = {"rows": payload}
    lines = [
        f"# {name}",
        "",
        f"Tables of `{name}.json`, rendered by `python -m benchmarks.render`; "
        "`vs_full_%`, `vs` and `factors_add` are differences between its rows.",
        "",
    ]
    return "\n".join(lines + render_node(payload, "", 1)) + "\n"


def render_all(results: Path = RESULTS_DIR) -> list[Path]:
    written = []
    for path in sorted(results.glob("*.json")):
        out = path.with_suffix(".md")
        out.write_text(render(json.loads(path.read_text()), path.stem))
        written.append(out)
    return written


CHART_SOURCES = ("extreme.json", "quality.json")


def id_params(row: dict) -> int | None:
    """A row's id-indexed parameters; rows before ``id_params`` existed had full
    biases, counted in ``bias_params`` with the global bias (one parameter)."""
    if "id_params" in row:
        return row["id_params"]
    if "embedding_params" in row and "bias_params" in row:
        return row["embedding_params"] + max(row["bias_params"] - 1, 0)
    return None


def family(row: dict) -> str:
    """A row's series: its name without the budget (``qr_mult3_128x``: ``qr_mult3``);
    the quality group's ``qr`` preset is QR "concat" in 2 partitions."""
    name = re.sub(r"_\d+x$", "", row.get("config", ""))
    return {"baseline": "full", "qr": "qr_concat2"}.get(name, name)


def chart_points(payloads: Sequence[dict]) -> dict[str, dict[str, list[tuple]]]:
    """``{dataset: {series: [(id_params, val_rmse, val_rmse_std), ...]}}`` (``family``),
    sorted by parameters, over the data sets of the first payload; the seed's
    models left out."""
    datasets = list(dict.fromkeys(r["dataset"] for r in payloads[0]["rows"]))
    points: dict[str, dict[str, list[tuple]]] = {d: {} for d in datasets}
    for payload in payloads:
        for row in payload["rows"]:
            x = id_params(row)
            if row.get("dataset") not in points or x is None or "val_rmse" not in row:
                continue
            if row.get("config", "").startswith("seed_"):
                continue
            series = points[row["dataset"]].setdefault(family(row), [])
            series.append((x, row["val_rmse"], row.get("val_rmse_std", 0.0)))
    for series in points.values():
        for values in series.values():
            values.sort()
    return points


def chart(results: Path = RESULTS_DIR, out: Path | None = None) -> Path:
    """Draws ``budgets.png``: RMSE against id-indexed parameters (log x), error bars
    the seeds' standard deviation, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    payloads = [
        json.loads((results / name).read_text())
        for name in CHART_SOURCES
        if (results / name).exists()
    ]
    points = chart_points(payloads)
    fig, axes = plt.subplots(1, len(points), figsize=(5.5 * len(points), 4.5), squeeze=False)
    for ax, (dataset, series) in zip(axes[0], points.items(), strict=False):
        colors = plt.get_cmap("tab20").colors
        for i, (name, values) in enumerate(sorted(series.items())):
            x, y, err = zip(*values, strict=True)
            style = "s" if len(values) == 1 else "o-"
            ax.errorbar(
                x, y, yerr=err, fmt=style, ms=4, capsize=2, label=name, color=colors[i % 20]
            )
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.set_xlabel("id-indexed parameters (tables + per-id biases)")
        ax.set_ylabel("eval RMSE")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = out or results / "budgets.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--chart", action="store_true", help="also draw results/budgets.png")
    args = parser.parse_args(argv)
    for path in render_all(args.results):
        print(f"wrote {path}")
    if args.chart:
        print(f"wrote {chart(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
