"""The extreme group's verdicts, from ``results/extreme.json``: per data set and
budget, the best row of each kind, the best QR-family row against the hashing
trick (issue #18's first target), and ``--embedding-budget``'s pick against
the best row (its third). Writes ``results/extreme_summary.md``.

The rule's pick is ``budget.choose`` on each data set's train vocabularies
and ratings per id, so the data sets are loaded (ML-100K from
``shared/data``; a set that cannot be loaded gets no pick).

    python -m benchmarks.extreme_summary [--results benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

from benchmarks import datasets
from components import features
from trainer.embeddings import budget as budget_lib

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BUDGETS = (64, 128, 256, 1024)
QR_FAMILY = ("qr", "qr+md")
# Rows named for their tables beside QR add biases, and rows with their own biases.
HEAD = "_head_"


def rmse(row: dict) -> str:
    return f"{row['val_rmse']:.4f} ± {row['val_rmse_std']:.4f}"


def named(row: dict) -> str:
    return f"`{row['config']}` {rmse(row)}"


def by_dataset(payload: dict) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for row in payload["rows"]:
        out.setdefault(row["dataset"], {})[row["config"]] = row
    return out


def rows_at(rows: dict[str, dict], b: int) -> dict[str, dict]:
    """The rows of budget ``b``; at 64x biases only too (full biases fit there)."""
    out = {name: row for name, row in rows.items() if row.get("budget") == b}
    if out and b == 64 and "biases_only" in rows:
        out["biases_only"] = rows["biases_only"]
    return out


def best(rows) -> dict | None:
    rows = list(rows)
    # On a tie, the simpler row: biases only.
    return min(rows, key=lambda r: (r["val_rmse"], r["config"] != "biases_only")) if rows else None


def kinds_table(payload: dict) -> list[str]:
    lines = [
        "| data set | budget | hashing trick (`hash_all`) | hashed tables (`hash`) "
        "| best QR-family tables | best head row | best row vs full |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, rows in by_dataset(payload).items():
        full, alone = rows.get("baseline"), rows.get("biases_only")
        if full is None or alone is None:
            continue
        gap = 100 * (alone["val_rmse"] / full["val_rmse"] - 1)
        lines.append(
            f"| {dataset} | 1x / ~65x | full {rmse(full)} | biases only {rmse(alone)} "
            f"({gap:+.2f}%) | | | |"
        )
        for b in BUDGETS:
            at = rows_at(rows, b)
            if not at:
                continue
            tables = [r for n, r in at.items() if r["technique"] in QR_FAMILY and HEAD not in n]
            heads = [r for n, r in at.items() if HEAD in n]
            top = best(at.values())
            hashed_all = at.get(f"hash_all_{b}x")
            hashed = at.get(f"hash_{b}x")
            # At 64x full biases fit: the other kinds' biases would be full too.
            cells = [
                rmse(hashed_all) if hashed_all else "= `hash`" if b == 64 else "-",
                rmse(hashed) if hashed else "not run",
                named(best(tables)) if tables else "does not fit or not run",
                named(best(heads)) if heads else "= the tables" if b == 64 else "does not fit",
                f"`{top['config']}` {100 * (top['val_rmse'] / full['val_rmse'] - 1):+.2f}%",
            ]
            lines.append(f"| {dataset} | {b}x | " + " | ".join(cells) + " |")
    return lines


def hashing_table(payload: dict) -> list[str]:
    lines = [
        "| data set | budget | rows | margin | 2 std | id params | beats hashing by > 2 std |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, rows in by_dataset(payload).items():
        for b in BUDGETS:
            at = rows_at(rows, b)
            hashed = at.get(f"hash_all_{b}x") or at.get(f"hash_{b}x")
            qr = best(r for r in at.values() if r["technique"] in QR_FAMILY)
            if hashed is None or qr is None:
                continue
            margin = hashed["val_rmse"] - qr["val_rmse"]
            two_std = 2 * max(hashed["val_rmse_std"], qr["val_rmse_std"])
            verdict = "**yes**" if margin > two_std else "no"
            more = qr["id_params"] / hashed["id_params"] - 1
            if more > 0:
                shown = f"{100 * more:.2f}%" if more >= 5e-5 else "under 0.01%"
                verdict += f", with {shown} more parameters"
            lines.append(
                f"| {dataset} | {b}x | `{qr['config']}` {qr['val_rmse']:.4f} vs "
                f"`{hashed['config']}` {hashed['val_rmse']:.4f} | {margin:+.4f} | {two_std:.4f} "
                f"| {qr['id_params']:,} vs {hashed['id_params']:,} | {verdict} |"
            )
    return lines


def rule_settings(dataset: str) -> Callable[[int], dict] | None:
    """``budget.choose``'s settings at a ratio on ``dataset``'s train vocabularies."""
    try:
        data = datasets.load(dataset)
    except datasets.DatasetUnavailable:
        return None
    counts = {"user_embedding": data.user_counts, "movie_embedding": data.movie_counts}
    sizes = {name: len(c) + features.NUM_OOV_BUCKETS for name, c in counts.items()}

    def settings(b: int) -> dict:
        return budget_lib.choose(budget_lib.Budget(ratio=b), sizes, counts).settings

    return settings


def picks(settings: dict, rows: dict[str, dict]) -> dict | None:
    """The row built as ``settings`` are (tables, width, biases), if one ran."""
    keys = ("embedding_dim", "user_embedding", "movie_embedding", "user_bias", "movie_bias")
    return next(
        (r for r in rows.values() if all(r["model"].get(k) == settings.get(k) for k in keys)),
        None,
    )


def rule_table(payload: dict, rule=rule_settings) -> list[str]:
    lines = [
        "| data set | budget | the rule's pick | best row | difference |",
        "|---|---|---|---|---|",
    ]
    for dataset, rows in by_dataset(payload).items():
        choose = None
        for b in BUDGETS:
            at = rows_at(rows, b)
            if not any(r.get("budget") == b for r in at.values()):
                continue
            choose = choose or rule(dataset)
            if choose is None:
                lines.append(f"| {dataset} | {b}x | data set unavailable | | |")
                continue
            pick, top = picks(choose(b), at), best(at.values())
            lines.append(
                f"| {dataset} | {b}x | {named(pick) if pick else 'no such row ran'} "
                f"| {named(top)} | "
                + (f"{pick['val_rmse'] - top['val_rmse']:+.4f} |" if pick else " |")
            )
    return lines


def summary(payload: dict, rule=rule_settings) -> str:
    commands = payload["command"]
    commands = commands if isinstance(commands, list) else [commands]
    return "\n".join(
        [
            "# extreme summary",
            "",
            "Written by `python -m benchmarks.extreme_summary` from `extreme.json` "
            "(val RMSE ± std over the seeds), which ran:",
            "",
            *[f"- `{command}`" for command in commands],
            "",
            "## The best row of each kind",
            "",
            "Best QR-family tables: QR or MD+QR tables beside QR add biases; "
            "head rows: tables beside own biases for the most rated ids (`budget.bias_spec`).",
            "",
            *kinds_table(payload),
            "",
            "## The best QR-family row against the hashing trick on every table",
            "",
            *hashing_table(payload),
            "",
            "## `--embedding-budget`'s pick against the best row",
            "",
            *rule_table(payload, rule),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.extreme_summary", description=__doc__
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    source = args.results / "extreme.json"
    if not source.exists():
        parser.error(f"no {source}: run python -m benchmarks.quality --group extreme first")
    out = args.results / "extreme_summary.md"
    out.write_text(summary(json.loads(source.read_text())))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
