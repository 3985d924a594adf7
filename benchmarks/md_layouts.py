"""Does giving active ids more dimensions beat a uniform table at the same budget?

The premise of mixed-dimension embeddings is that a rare id cannot use many
dimensions, so its share of the budget is better spent widening popular
ids. This benchmark tests that premise directly at 16x fewer parameters
than full 64-d tables, with layouts that move capacity to active ids by
different amounts, every one trained like the benchmark's compressed rows
(``benchmarks.quality``'s recipe per data set) and compared with the plain
4-d table:

- ``md_16x`` (the preset) and the same with the alpha power rule at 0.3,
  the temperature the MD paper's experiments favour;
- ``per_count``: every id gets one dimension per ``k`` train ratings, at
  least 1 and at most ``PER_COUNT_MAX_DIM``, with ``k`` the smallest that
  fits the budget: dims proportional to data, the rule a bias-variance
  argument gives when factor variances decay like 1/rank;
- ``threshold``: ids with at least ``THRESHOLD_COUNT`` train ratings share
  one width, the rest get narrower rows with what is left: only ids with
  almost no data are starved.

Layouts other than the presets are explicit MD specs (``block_sizes`` and
``dims`` over the frequency-sorted ids, nested projections), sized against
one budget shared by the user and movie tables.

    python -m benchmarks.md_layouts [--datasets ml-100k,synthetic-1m,synthetic-large] [--seeds 5]

Writes ``md_layouts.json`` and ``md_layouts.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from benchmarks import datasets
from benchmarks import quality
from benchmarks import report
from benchmarks import training
from components import features
from trainer import model_config

BUDGET = 16
PER_COUNT_MAX_DIM = 8
THRESHOLD_COUNT = 20


def table_dims(counts: Sequence[int], dim_of_count: Callable[[np.ndarray], np.ndarray]):
    """One dim per row of a table: its vocabulary ids, then the OOV rows (count 0)."""
    rows = np.concatenate(
        [np.asarray(counts, dtype=np.float64), np.zeros(features.NUM_OOV_BUCKETS)]
    )
    return dim_of_count(rows).astype(int)


def table_spec(dims: np.ndarray) -> Dict:
    """An MD spec whose blocks are the runs of equal dims (ids are frequency-sorted)."""
    sizes, widths = [], []
    for d in dims.tolist():
        if widths and widths[-1] == d:
            sizes[-1] += 1
        else:
            sizes.append(1)
            widths.append(d)
    if len(widths) == 1:
        return {"type": "full"}
    return {"type": "md", "block_sizes": sizes, "dims": widths, "projection": "nested"}


def per_count_dims(k: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda counts: np.clip(np.floor(counts / k + 0.5), 1, PER_COUNT_MAX_DIM)


def threshold_dims(width: int, tail: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda counts: np.where(counts >= THRESHOLD_COUNT, width, tail)


def _cost(data: datasets.PreparedData, dim_of_count) -> int:
    return int(
        table_dims(data.user_counts, dim_of_count).sum()
        + table_dims(data.movie_counts, dim_of_count).sum()
    )


def per_count_layout(data: datasets.PreparedData, budget: int):
    """The smallest k (ratings per dim) whose layout fits ``budget``, by bisection."""
    low, high = 1e-3, 1e7  # k = 1e7 gives every id 1 dim
    if _cost(data, per_count_dims(high)) > budget:
        raise ValueError(f"{data.name}: even 1 dim per id exceeds {budget:,} parameters")
    for _ in range(200):
        middle = (low * high) ** 0.5
        if _cost(data, per_count_dims(middle)) > budget:
            low = middle
        else:
            high = middle
    return per_count_dims(high), f"1 dim per {high:.1f} train ratings, 1 to {PER_COUNT_MAX_DIM}"


def threshold_layout(data: datasets.PreparedData, budget: int):
    """The widest shared width for active ids, then the widest tail that still fits."""
    fitting = [w for w in range(1, 65) if _cost(data, threshold_dims(w, 1)) <= budget]
    if not fitting:
        raise ValueError(f"{data.name}: even 1 dim per id exceeds {budget:,} parameters")
    width = max(fitting)
    tail = max(t for t in range(1, width + 1) if _cost(data, threshold_dims(width, t)) <= budget)
    return threshold_dims(width, tail), (
        f"{width} dims for ids with >= {THRESHOLD_COUNT} train ratings, {tail} for the rest"
    )


def layouts(data: datasets.PreparedData) -> List[tuple[str, str, model_config.ModelConfig]]:
    """(name, description, config) of every layout, uniform first."""
    rows = {e.config: e.model for e in quality.entries([BUDGET])}
    uniform, md = rows[f"uniform_{BUDGET}x"], rows[f"md_{BUDGET}x"]
    budget = training.full_table_params(data, quality.REFERENCE_DIM) // BUDGET

    def with_alpha(config, alpha):
        return config.replace(
            user_embedding={**config.user_embedding, "alpha": alpha},
            movie_embedding={**config.movie_embedding, "alpha": alpha},
        )

    out = [
        ("uniform", "plain 4-d tables", uniform),
        ("md_preset", f"preset md_{BUDGET}x (alpha {md.user_embedding['alpha']})", md),
        ("md_alpha_0.3", f"md_{BUDGET}x with alpha 0.3", with_alpha(md, 0.3)),
    ]
    for name, build in (("per_count", per_count_layout), ("threshold", threshold_layout)):
        dim_of_count, description = build(data, budget)
        user_dims = table_dims(data.user_counts, dim_of_count)
        movie_dims = table_dims(data.movie_counts, dim_of_count)
        config = uniform.replace(
            name=name,
            embedding_dim=int(max(user_dims.max(), movie_dims.max())),
            user_embedding=table_spec(user_dims),
            movie_embedding=table_spec(movie_dims),
        )
        out.append((name, description, config))
    return out


def markdown(rows: List[Dict], descriptions: List[str], command: str, seconds: float) -> str:
    lines = [
        "# MD layouts vs a uniform table at 16x",
        "",
        *report.machine_lines(command, quality.machine_description(), seconds),
        "",
        *[f"- {d}" for d in descriptions],
        "",
        "`vs uniform`: difference in mean val RMSE, with two standard errors of "
        "that difference from the seed spread (negative is better).",
        "",
    ]
    lines += report.table_lines(
        rows,
        [
            ("data set", "dataset", ""),
            ("layout", lambda row: f"`{row['layout']}`", ""),
            ("what", "description", ""),
            ("embedding params", "embedding_params", ","),
            ("val RMSE", "val_rmse", ".4f"),
            ("std", "val_rmse_std", ".4f"),
            ("seeds", "seeds", ""),
            ("vs uniform", "versus_uniform", ""),
        ],
    )
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.md_layouts",
        description="MD layouts that favour active ids vs a uniform table at 16x.",
    )
    parser.add_argument(
        "--datasets",
        default=",".join(datasets.DATASETS),
        help="comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="seeds per layout, capped by the data set's recipe"
    )
    parser.add_argument("--out", type=Path, default=quality.RESULTS_DIR)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.md_layouts " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    started = time.perf_counter()
    rows: List[Dict] = []
    descriptions: List[str] = []
    for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
        try:
            data = datasets.load(name)
        except datasets.DatasetUnavailable as error:
            print(f"skipping {name}: {error}", flush=True)
            descriptions.append(f"{name}: skipped ({error})")
            continue
        descriptions.append(data.describe())
        recipe = quality.RECIPES.get(name, quality.Recipe())
        seeds = list(range(min(args.seeds, recipe.seeds or args.seeds)))
        uniform_row = None
        for layout, description, config in layouts(data):
            summary = training.train_seeds(recipe.apply(config, is_seed=False), data, seeds)
            row = {"dataset": name, "layout": layout, "description": description}
            row.update(summary.as_dict())
            uniform_row = uniform_row or row
            row["versus_uniform"] = (
                "-"
                if row is uniform_row
                else f"{row['val_rmse'] - uniform_row['val_rmse']:+.4f} "
                f"± {report.difference_noise(row, uniform_row):.4f}"
            )
            rows.append(row)
            print(
                f"{name} {layout}: {summary.embedding_params:,} params, val RMSE "
                f"{summary.val_rmse:.4f} ± {summary.val_rmse_std:.4f} "
                f"[{(time.perf_counter() - started) / 60:.1f} min]",
                flush=True,
            )
    seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "md_layouts.json").write_text(
        json.dumps({"command": command.strip(), "seconds": seconds, "rows": rows}, indent=2) + "\n"
    )
    (args.out / "md_layouts.md").write_text(markdown(rows, descriptions, command.strip(), seconds))
    print(f"done in {seconds / 60:.1f} min; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
