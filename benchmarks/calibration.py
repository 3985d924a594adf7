"""Which interaction spectrum makes generated ratings behave like ML-100K?

The generator (``components/synthetic.py``) spreads its user/movie
interaction over factors whose strength falls as ``(k + 1) ** -decay``. How
fast real data's factors fall shows in what a narrow table costs: on ML-100K
a 4-d table is within about 1% of a 64-d one. This trains the quality
benchmark's ``baseline`` (tuned full 64-d model) and ``uniform_8x/16x/32x``
rows (8-, 4- and 2-d tables) on ML-100K and on ML-100K-shaped generated sets
(``generate_ratings(943, 1682, 100_000)``) at several decays, and reports each
uniform row's RMSE gap to full and which decay matches ML-100K's three gaps
best (least squared error, in percentage points). The first generator's flat
rank-10 spectrum is trained too, as the reference the calibration replaces.

With ``--check-1m`` (the default) it then trains the same rows once on
synthetic-1m as the generator now makes it (its default decay) with that
data set's recipe, to show what the calibrated default does at 1M ratings.

    python -m benchmarks.calibration [--decays 0.25,0.5,0.75,1,1.5,2] [--seeds 2] [--no-check-1m]

Writes ``calibration.json`` and ``calibration.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks import datasets, quality, report, training
from components import synthetic

BUDGETS = (8, 16, 32)
ROWS = ("baseline",) + tuple(f"uniform_{b}x" for b in BUDGETS)
REFERENCE = "ml-100k"
# The first generator: ten equally strong factors.
FLAT = (0.0, 10)


def gaps(rmse: Mapping[str, float]) -> dict[str, float]:
    """Each uniform row's val RMSE relative to the full model's, in percent."""
    full = rmse["baseline"]
    return {row: 100.0 * (rmse[row] / full - 1) for row in ROWS[1:] if row in rmse}


def mismatch(candidate: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """Sum of squared differences of the gaps both have, in percentage points squared."""
    shared = [row for row in reference if row in candidate]
    if not shared:
        raise ValueError("no gap in common to compare")
    return sum((candidate[row] - reference[row]) ** 2 for row in shared)


def set_name(decay: float, latent_dim: int) -> str:
    return f"synthetic-100k decay={decay:g} rank={latent_dim}"


def train_rows(data: datasets.PreparedData, recipe: quality.Recipe, seeds: Sequence[int]) -> dict:
    """The set's RMSE per row (mean of ``seeds``), its gaps and its seconds."""
    started = time.perf_counter()
    rmse, std = {}, {}
    for entry in quality.entries(BUDGETS):
        if entry.config not in ROWS:
            continue
        summary = training.train_seeds(recipe.apply(entry.model, entry.is_seed), data, seeds)
        rmse[entry.config] = round(summary.val_rmse, 4)
        std[entry.config] = round(summary.val_rmse_std, 4)
        print(
            f"  {data.name:36s} {entry.config:12s} val RMSE {summary.val_rmse:.4f} "
            f"± {summary.val_rmse_std:.4f} ({summary.seconds:.0f}s/run)",
            flush=True,
        )
    return {
        "dataset": data.name,
        "source": data.source,
        "seeds": len(seeds),
        "val_rmse": rmse,
        "val_rmse_std": std,
        "gap_pct": {row: round(g, 2) for row, g in gaps(rmse).items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(payload: dict) -> str:
    lines = ["# Calibrating the generator's interaction spectrum against ML-100K", ""]
    lines += report.machine_lines(payload["command"], payload["machine"], payload["wall_seconds"])
    lines += [
        "",
        (
            "Val RMSE of the quality benchmark's tuned full model (`baseline`, 64-d tables) and "
            "uniform 8-, 4- and 2-d tables (`uniform_8x/16x/32x`, the compressed presets' "
            "training), mean of the seeds on one 85/15 split; gap = uniform / full - 1. "
            "Generated sets are `generate_ratings(943, 1682, 100_000, spectrum_decay=d, "
            "latent_dim=k)`: factor j's std falls as (j+1)^-d at a fixed total interaction "
            "variance. `mismatch` = sum over the three gaps of (gap - ML-100K's gap)^2, in "
            "percentage points squared."
        ),
        "",
    ]
    columns = [
        ("data set", "dataset", "s"),
        ("seeds", "seeds", "d"),
        *[(row, lambda r, row=row: r["val_rmse"].get(row), ".4f") for row in ROWS],
        *[(f"{row} gap", lambda r, row=row: r["gap_pct"].get(row), "+.2f") for row in ROWS[1:]],
        ("mismatch", "mismatch", ".2f"),
    ]
    lines += report.table_lines(payload["sets"], columns)
    if payload.get("skipped"):
        lines += ["", f"Skipped: {payload['skipped']}"]
    best = payload.get("best")
    if best:
        lines += [
            "",
            (
                f"Best match: **{best['dataset']}** (mismatch {best['mismatch']:.2f}). "
                f"Generator default now: spectrum_decay={synthetic.DEFAULT_SPECTRUM_DECAY:g}, "
                f"latent_dim={synthetic.DEFAULT_LATENT_DIM}."
            ),
        ]
    if payload.get("check_1m"):
        lines += [
            "",
            "## synthetic-1m with the generator's default spectrum",
            "",
            (
                "`generate_ratings(6040, 3706, 1_000_000)` (the benchmark's synthetic-1m) with its "
                "`quality.RECIPES` recipe."
            ),
            "",
        ]
        lines += report.table_lines([payload["check_1m"]], columns[:-1])
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibration",
        description="Match the generator's interaction spectrum to ML-100K's narrow-table gaps.",
    )
    parser.add_argument(
        "--decays",
        default="0.25,0.5,0.75,1,1.5,2",
        help="spectrum decays to try (default: %(default)s)",
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=synthetic.DEFAULT_LATENT_DIM,
        help="interaction factors of the decaying sets (default: %(default)s)",
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds per row (default: %(default)s)")
    parser.add_argument(
        "--check-1m",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train the rows once on synthetic-1m with the default spectrum",
    )
    parser.add_argument(
        "--out", type=Path, default=quality.RESULTS_DIR, help="output folder (default: %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.calibration " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    payload: dict = {"command": command.strip(), "machine": quality.machine_description()}
    sets: list[dict] = []
    recipe = quality.RECIPES[REFERENCE]
    try:
        reference = datasets.load(REFERENCE)
    except datasets.DatasetUnavailable as error:
        print(f"skipping {REFERENCE}: {error}", flush=True)
        payload["skipped"] = f"{REFERENCE}: {error}"
    else:
        sets.append(train_rows(reference, recipe, seeds))
    spectra = [FLAT] + [(float(d), args.latent_dim) for d in args.decays.split(",") if d.strip()]
    for decay, latent_dim in spectra:
        ratings = synthetic.generate_ratings(
            943, 1682, 100_000, spectrum_decay=decay, latent_dim=latent_dim
        )
        row = train_rows(datasets.prepare(ratings, set_name(decay, latent_dim)), recipe, seeds)
        sets.append(dict(row, spectrum_decay=decay, latent_dim=latent_dim))
    if sets and sets[0]["dataset"] == REFERENCE:
        for row in sets[1:]:
            row["mismatch"] = round(mismatch(row["gap_pct"], sets[0]["gap_pct"]), 3)
        best = min(sets[1:], key=lambda r: r["mismatch"])
        payload["best"] = {k: best[k] for k in ("dataset", "spectrum_decay", "latent_dim")}
        payload["best"]["mismatch"] = best["mismatch"]
        print(f"best match: {best['dataset']} (mismatch {best['mismatch']:.2f})", flush=True)
    payload["sets"] = sets
    if args.check_1m:
        data = datasets.prepare(synthetic.generate_ratings(6040, 3706, 1_000_000), "synthetic-1m")
        payload["check_1m"] = train_rows(data, quality.RECIPES["synthetic-1m"], [0])
    payload["wall_seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "calibration.md").write_text(markdown(payload))
    print(f"done in {payload['wall_seconds'] / 60:.1f} min; wrote {args.out / 'calibration.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
