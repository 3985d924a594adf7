"""Writes benchmark rows as JSON, a Markdown table and (for the quality run) a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional

COMPRESSED = ("qr", "md", "qr+md")
# The 16x target: the best compressed configuration within 1% of the tuned full model.
WITHIN_FULL = 0.01
ML_100K_FULL_TARGET = 0.90


def table_lines(rows: Iterable[Dict], columns: List[tuple]) -> List[str]:
    """Markdown table lines; ``columns`` holds (header, key or callable, format)."""
    lines = [
        "| " + " | ".join(h for h, _, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = []
        for _, key, fmt in columns:
            value = key(row) if callable(key) else row.get(key)
            cells.append("" if value is None else format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def machine_lines(command: str, machine: Dict[str, str], seconds: float) -> List[str]:
    return [
        f"Command: `{command}`",
        "",
        f"Machine: {machine['nproc']} CPUs (`nproc`), {machine['cpu']}, {machine['ram']} RAM, "
        f"Python {machine['python']}, no GPU. Wall time {seconds / 60:.1f} min.",
    ]


def _by_dataset(results: List[Dict]) -> Dict[str, List[Dict]]:
    grouped: Dict[str, List[Dict]] = {}
    for row in results:
        grouped.setdefault(row["dataset"], []).append(row)
    return grouped


def _find(rows: List[Dict], **match) -> Optional[Dict]:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def difference_noise(a: Dict, b: Dict) -> float:
    """Two standard errors of the difference of two rows' mean val RMSE (0 with 1 seed)."""
    variance = sum(r.get("val_rmse_std", 0.0) ** 2 / max(r.get("seeds", 1), 1) for r in (a, b))
    return 2 * variance**0.5


def _versus(a: Dict, b: Dict) -> str:
    """``a - b`` and whether it exceeds the seeds' noise."""
    difference = a["val_rmse"] - b["val_rmse"]
    noise = difference_noise(a, b)
    verdict = "within seed noise" if abs(difference) < noise else "beyond seed noise"
    return f"{difference:+.4f}; 2 SE {noise:.4f}, {verdict}"


def target_checks(results: List[Dict]) -> List[str]:
    """One line per target of issue #4: met or not, with the figures."""
    lines = []
    for dataset, rows in _by_dataset(results).items():
        full = _find(rows, config="baseline")
        if dataset == "ml-100k" and full:
            met = full["val_rmse"] <= ML_100K_FULL_TARGET
            lines.append(
                f"- {dataset}: tuned full model val RMSE {full['val_rmse']:.4f} "
                f"<= {ML_100K_FULL_TARGET:.2f}: **{'met' if met else 'not met'}**"
            )
        budgets = sorted({r["budget"] for r in rows if r.get("budget")})
        uniform_at = {budget: _find(rows, config=f"uniform_{budget}x") for budget in budgets}
        for budget in budgets:
            uniform = uniform_at[budget]
            compressed = [r for r in rows if r["technique"] in COMPRESSED and r["budget"] == budget]
            if not uniform or not compressed:
                continue
            best = min(compressed, key=lambda r: r["val_rmse"])
            met = best["val_rmse"] <= uniform["val_rmse"]
            line = (
                f"- {dataset} {budget}x: best compressed `{best['config']}` "
                f"{best['val_rmse']:.4f} vs uniform {uniform['val_rmse']:.4f} "
                f"({_versus(best, uniform)}): "
                f"**{'no worse' if met else 'worse'}**"
            )
            if budget == 16 and full:
                gap = best["val_rmse"] / full["val_rmse"] - 1
                line += (
                    f"; vs tuned full {full['val_rmse']:.4f}: {gap:+.2%} "
                    f"(within 1%: **{'met' if gap <= WITHIN_FULL else 'not met'}**)"
                )
            lines.append(line)
        if dataset == "synthetic-large":
            wins = []
            for budget in budgets:
                uniform = uniform_at[budget]
                for r in rows:
                    if (
                        uniform
                        and r["budget"] == budget
                        and r["technique"] in ("qr", "qr+md")
                        and r["val_rmse"] < uniform["val_rmse"]
                    ):
                        wins.append(
                            f"`{r['config']}` {r['val_rmse']:.4f} < {uniform['val_rmse']:.4f}"
                            f" ({_versus(r, uniform)})"
                        )
            lines.append(
                f"- {dataset}: a QR configuration beats the uniform table at the same budget: "
                + (f"**met** ({'; '.join(wins)})" if wins else "**not met**")
            )
    return lines


QUALITY_COLUMNS = [
    ("config", "config", "s"),
    ("technique", "technique", "s"),
    ("embedding params", "embedding_params", ",d"),
    ("bias params", "bias_params", ",d"),
    ("compression", "compression", ".1f"),
    ("val RMSE", "val_rmse", ".4f"),
    ("± std", "val_rmse_std", ".4f"),
    ("val MAE", "val_mae", ".4f"),
    ("best epoch", "best_epoch", ".1f"),
    ("seconds/run", "seconds", ".0f"),
    ("seeds", "seeds", "d"),
]


def _dims_text(row: Dict) -> str:
    dims = row.get("block_dims")
    if not dims:
        return ""
    return "; ".join(
        " ".join(str(d) for d in dims[feature]) if feature in dims else "-"
        for feature in ("user_id", "movie_id")
    )


def quality_markdown(
    results: List[Dict],
    command: str,
    machine: Dict[str, str],
    datasets: Dict[str, str],
    skipped: Dict[str, str],
    seconds: float,
) -> str:
    lines = ["# Embedding quality at fixed memory budgets", ""]
    lines += machine_lines(command, machine, seconds)
    lines += [
        "",
        "Mean of the seeds on one 85/15 split per data set; val RMSE and MAE at the best "
        "epoch (early stopping on the eval split, best weights restored). Compression = "
        "parameters of full 64-d user and movie tables / this row's embedding parameters "
        "(biases counted apart). `vs full` is relative to the tuned full model (`baseline`).",
    ]
    columns = (
        QUALITY_COLUMNS[:7]
        + [
            ("vs full", "vs_full", "+.2%"),
        ]
        + QUALITY_COLUMNS[7:]
        + [("MD block dims (users; movies)", _dims_text, "s")]
    )
    for dataset, rows in _by_dataset(results).items():
        full = _find(rows, config="baseline")
        # Annotated copies: the JSON keeps only the measured figures.
        annotated = [
            dict(r, vs_full=(r["val_rmse"] / full["val_rmse"] - 1) if full else None) for r in rows
        ]
        lines += ["", f"## {dataset}", ""]
        if dataset in datasets:
            lines += [datasets[dataset], ""]
        lines += table_lines(annotated, columns)
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {name}: {why}" for name, why in skipped.items()]
    checks = target_checks(results)
    if checks:
        lines += ["", "## Targets (issue #4)", ""] + checks
    return "\n".join(lines) + "\n"


def quality_plot(results: List[Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = _by_dataset(results)
    if not grouped:
        return
    fig, axes = plt.subplots(1, len(grouped), figsize=(5.5 * len(grouped), 4.5), squeeze=False)
    styles = {
        "uniform": ("tab:gray", "o", "-"),
        "qr": ("tab:red", "s", "-"),
        "md": ("tab:blue", "^", "-"),
        "qr+md": ("tab:purple", "D", "-"),
    }
    for ax, (dataset, rows) in zip(axes[0], grouped.items()):
        for technique, (color, marker, line) in styles.items():
            points = sorted(
                (r["embedding_params"], r["val_rmse"])
                for r in rows
                if r["technique"] == technique and r.get("budget")
            )
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, line, color=color, marker=marker, label=technique)
        full = _find(rows, config="baseline")
        if full:
            ax.axhline(full["val_rmse"], color="black", linestyle="--", linewidth=1)
            ax.plot(
                [full["embedding_params"]],
                [full["val_rmse"]],
                "k*",
                markersize=11,
                label="full (tuned)",
            )
        for name, marker in (("seed_baseline", "x"), ("seed_qr_md", "+")):
            seed = _find(rows, config=name)
            if seed:
                ax.plot(
                    [seed["embedding_params"]],
                    [seed["val_rmse"]],
                    marker,
                    color="tab:orange",
                    markersize=9,
                    label=name,
                )
        ax.set_xscale("log")
        ax.set_xlabel("embedding parameters (log)")
        ax.set_ylabel("val RMSE")
        ax.set_title(dataset)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_quality(
    out_dir: Path,
    results: List[Dict],
    command: str,
    machine: Dict[str, str],
    datasets: Dict[str, str],
    skipped: Dict[str, str],
    seconds: float,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command,
        "machine": machine,
        "datasets": datasets,
        "skipped": skipped,
        "wall_seconds": round(seconds, 1),
        "rows": results,
    }
    (out_dir / "quality.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out_dir / "quality.md").write_text(
        quality_markdown(results, command, machine, datasets, skipped, seconds)
    )
    quality_plot(results, out_dir / "quality.png")


def rerender_quality(out_dir: Path) -> None:
    """Rewrites quality.md and quality.png from quality.json, without training anything."""
    payload = json.loads((out_dir / "quality.json").read_text())
    write_quality(
        out_dir,
        payload["rows"],
        command=payload["command"],
        machine=payload["machine"],
        datasets=payload["datasets"],
        skipped=payload.get("skipped", {}),
        seconds=payload["wall_seconds"],
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="Re-render quality.md and quality.png from quality.json (after a report change).",
    )
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    rerender_quality(parser.parse_args().results)
