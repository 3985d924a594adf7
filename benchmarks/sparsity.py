"""What the embedding factors add over the biases, by user activity; what a per-id prior changes.

Trains the benchmark's ``uniform_16x`` row (4-d tables, the compressed
presets' training) with the data set's recipe, and once more with a
per-lookup L2 only (no per-id prior) where that is not what the row uses,
then scores the eval split twice: as trained, and with every embedding
table zeroed, which leaves the global mean and the biases. The gap between
the two, per bucket of the user's train ratings, is what the factors
contribute.

    python -m benchmarks.sparsity [--datasets ml-100k,synthetic-large]

Writes ``sparsity.json`` and ``sparsity.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np

from benchmarks import datasets
from benchmarks import quality
from benchmarks import report
from benchmarks import training
from trainer import model as model_lib
from trainer import model_config

# Lower edges of the user-activity buckets, in train ratings.
ACTIVITY_EDGES = (0, 5, 20, 50, 100)


def activity_buckets(train_counts: np.ndarray) -> List[tuple[str, np.ndarray]]:
    """(label, eval-row mask) per bucket of the row's user train count, then all rows."""
    buckets = []
    for low, high in zip(ACTIVITY_EDGES, ACTIVITY_EDGES[1:] + (None,)):
        mask = train_counts >= low
        if high is not None:
            mask &= train_counts < high
        buckets.append((f"{low}-{high - 1}" if high is not None else f">= {low}", mask))
    buckets.append(("all", np.ones_like(train_counts, dtype=bool)))
    return buckets


def rmse(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predictions - labels) ** 2))) if len(labels) else float("nan")


# A per-lookup L2 alone, no per-id prior: what the 4-d table was tuned to on
# ML-100K before the compressed presets took a prior.
PER_LOOKUP_ONLY = {"l2": 0.04, "l2_per_id": 0.0, "bias_l2_per_id": 0.0}


def row_config(data_name: str) -> model_config.ModelConfig:
    """The benchmark's ``uniform_16x`` row as trained on ``data_name`` (its recipe applied)."""
    entry = next(e for e in quality.entries([16]) if e.config == "uniform_16x")
    return quality.RECIPES.get(data_name, quality.Recipe()).apply(entry.model, False)


def regularizations(data_name: str) -> Dict[str, Dict[str, float]]:
    """Label -> L2 settings to compare: a per-lookup L2 alone, if the row has a prior, and its own."""
    config = row_config(data_name)
    own = {key: getattr(config, key) for key in PER_LOOKUP_ONLY}
    settings = ", ".join(f"{key} {value:g}" for key, value in own.items() if value)
    own_label = f"its own ({settings or 'none'})"
    if not (own["l2_per_id"] or own["bias_l2_per_id"]):
        return {own_label: {}}
    return {f"per-lookup L2 {PER_LOOKUP_ONLY['l2']:g} only": PER_LOOKUP_ONLY, own_label: {}}


def factor_contribution(
    data: datasets.PreparedData, regularization: Dict[str, float], seed: int = 0
) -> List[Dict]:
    """Eval RMSE per activity bucket, trained and with the embedding tables zeroed."""
    # A fixed number of epochs: early stopping would stop a model before its
    # factors grow, which hides what they do.
    config = row_config(data.name).replace(early_stopping_patience=0, **regularization)
    model, _ = training.fit(config, data, seed, validate=False)
    inputs = training.eval_inputs(data)
    trained = model.predict(inputs, batch_size=training.EVAL_BATCH_SIZE, verbose=0).ravel()
    for layer in model_lib.embedding_layers(model).values():
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    biases_only = model.predict(inputs, batch_size=training.EVAL_BATCH_SIZE, verbose=0).ravel()
    keras.backend.clear_session()
    counts = np.append(np.asarray(data.user_counts), 0)[data.eval_users]
    rows = []
    for label, mask in activity_buckets(counts):
        if not mask.any():
            continue
        labels = data.eval_ratings[mask]
        rows.append(
            {
                "epochs": config.epochs,
                "user_train_ratings": label,
                "eval_share": round(float(mask.mean()), 4),
                "rmse_trained": round(rmse(trained[mask], labels), 4),
                "rmse_tables_zeroed": round(rmse(biases_only[mask], labels), 4),
            }
        )
    return rows


def markdown(rows: List[Dict], descriptions: List[str], command: str, seconds: float) -> str:
    """The report: one row per data set, L2 and activity bucket."""
    lines = [
        "# What the embedding factors add, by user activity",
        "",
        f"Command: `{command}`",
        "",
        f"Wall time {seconds / 60:.1f} min.",
        "",
        *(f"- {line}" for line in descriptions),
        "",
        "`uniform_16x` (4-d tables) trained for a fixed number of epochs, then scored "
        "as trained and with every embedding table zeroed (global mean and biases "
        "only). `factors add` = trained - zeroed; negative is better.",
        "",
    ]
    columns = [
        ("data set", "dataset", "s"),
        ("regularisation", "regularization", "s"),
        ("epochs", "epochs", "d"),
        ("user's train ratings", "user_train_ratings", "s"),
        ("share of eval rows", "eval_share", ".1%"),
        ("RMSE trained", "rmse_trained", ".4f"),
        ("RMSE tables zeroed", "rmse_tables_zeroed", ".4f"),
        ("factors add", lambda r: r["rmse_trained"] - r["rmse_tables_zeroed"], "+.4f"),
    ]
    lines += report.table_lines(rows, columns)
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sparsity", description=__doc__)
    parser.add_argument("--datasets", default="ml-100k,synthetic-large")
    parser.add_argument("--out", type=Path, default=quality.RESULTS_DIR)
    args = parser.parse_args(argv)
    command = "python -m benchmarks.sparsity " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    started = time.perf_counter()
    rows, described = [], []
    for name in args.datasets.split(","):
        data = datasets.load(name.strip())
        described.append(data.describe())
        print(data.describe(), flush=True)
        for label, regularization in regularizations(data.name).items():
            for row in factor_contribution(data, regularization):
                row = {"dataset": data.name, "regularization": label, **row}
                print(row, flush=True)
                rows.append(row)
    seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sparsity.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "sparsity.md").write_text(markdown(rows, described, command.strip(), seconds))
    print(f"wrote {args.out / 'sparsity.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
