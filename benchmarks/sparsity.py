"""The ``sparsity`` rows of ``benchmarks.quality``: what factors add over biases, by activity.

Trains the quality group's ``uniform_16x`` row (4-d tables, the compressed
presets' training) with the data set's recipe for a fixed number of
epochs, and again with a per-lookup L2 alone where the recipe has a per-id
prior; then scores the eval split as trained and with every embedding
table zeroed, which leaves the global mean and the biases. The gap per
bucket of the user's train ratings (``factors_add``) is what the factors
contribute.

    python -m benchmarks.quality --group sparsity
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from benchmarks import datasets
from benchmarks import quality
from benchmarks import training
from trainer import model as model_lib

# Lower edges of the user-activity buckets, in train ratings.
ACTIVITY_EDGES = (0, 5, 20, 50, 100)
# A per-lookup L2 alone, no per-id prior: the compressed presets before the prior.
PER_LOOKUP_ONLY = {"l2": 0.04, "l2_per_id": 0.0, "bias_l2_per_id": 0.0}


def activity_buckets(train_counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, eval-row mask) per bucket of the row's user train count, then all rows."""
    buckets = []
    for low, high in zip(ACTIVITY_EDGES, ACTIVITY_EDGES[1:] + (None,), strict=False):
        mask = train_counts >= low
        if high is not None:
            mask &= train_counts < high
        buckets.append((f"{low}-{high - 1}" if high is not None else f">= {low}", mask))
    buckets.append(("all", np.ones_like(train_counts, dtype=bool)))
    return buckets


def rmse(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predictions - labels) ** 2))) if len(labels) else float("nan")


def entries(data: datasets.PreparedData) -> list[quality.Entry]:
    """``uniform_16x`` as the recipe trains it, and with a per-lookup L2 alone if that differs."""
    entry = next(e for e in quality.entries([16]) if e.config == "uniform_16x")
    own = quality.RECIPES.get(data.name, quality.Recipe()).apply(entry.model, False)
    settings = ", ".join(f"{k} {getattr(own, k):g}" for k in PER_LOOKUP_ONLY if getattr(own, k))
    # A fixed number of epochs: early stopping would stop before the factors grow.
    fixed = {"early_stopping_patience": 0}
    rows = [quality.Entry(f"its own ({settings or 'none'})", entry.model, overrides=fixed)]
    if own.l2_per_id or own.bias_l2_per_id:
        label = f"per-lookup L2 {PER_LOOKUP_ONLY['l2']:g} only"
        rows.insert(0, quality.Entry(label, entry.model, overrides={**fixed, **PER_LOOKUP_ONLY}))
    return rows


def train(entry, config, data: datasets.PreparedData, seeds: Sequence[int]) -> list[dict]:
    """Eval RMSE per activity bucket (first seed), as trained and with the tables zeroed."""
    model, _ = training.fit(config, data, seeds[0], validate=False)
    inputs = training.eval_inputs(data)
    trained = model.predict(inputs, batch_size=training.EVAL_BATCH_SIZE, verbose=0).ravel()
    for layer in model_lib.embedding_layers(model).values():
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    biases_only = model.predict(inputs, batch_size=training.EVAL_BATCH_SIZE, verbose=0).ravel()
    keras.backend.clear_session()
    counts = np.append(np.asarray(data.user_counts), 0)[data.eval_users]
    return [
        {
            "regularization": entry.config,
            "epochs": config.epochs,
            "user_train_ratings": label,
            "eval_share": round(float(mask.mean()), 4),
            "rmse_trained": round(rmse(trained[mask], data.eval_ratings[mask]), 4),
            "rmse_tables_zeroed": round(rmse(biases_only[mask], data.eval_ratings[mask]), 4),
        }
        for label, mask in activity_buckets(counts)
        if mask.any()
    ]
