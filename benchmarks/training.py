"""Train one model configuration on a prepared split and measure it.

The loop mirrors the pipeline's Trainer (``trainer.task.train``): the same
``build_model``, Adam, MSE, and early stopping with the best weights restored,
but it reads in-memory numpy arrays instead of TFRecords, which keeps many
short runs cheap. Early stopping watches the eval RMSE itself (not the eval
loss, which also holds the L2 penalty) because that is the figure reported.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks.datasets import PreparedData
from components import features
from components import metrics
from trainer import embeddings
from trainer import model as model_lib
from trainer import row_sparse
from trainer import task
from trainer.model_config import ModelConfig

# Eval batches are only forward passes; big ones cost nothing in quality.
EVAL_BATCH_SIZE = 16_384


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One training run (one seed)."""

    val_rmse: float
    val_mae: float
    best_epoch: int
    epochs_run: int
    seconds: float
    embedding_params: int
    bias_params: int
    val_rmse_per_epoch: list[float]
    ndcg_at_10: float = float("nan")
    recall_at_10: float = float("nan")


def full_table_params(data: PreparedData, embedding_dim: int = 64) -> int:
    """Parameters of plain ``embedding_dim``-wide user and movie tables (OOV rows included)."""
    rows = len(data.user_counts) + len(data.movie_counts) + 2 * features.NUM_OOV_BUCKETS
    return rows * embedding_dim


def train_batches(
    users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, batch_size: int, seed: int
) -> tuple[tf.data.Dataset, int]:
    """Endless shuffled batches and the number of batches in one epoch.

    The pipeline Trainer's own batching (``trainer.task.shuffled_batches``):
    a fresh stateless permutation per epoch, whole batches gathered at once.
    """
    inputs = {
        features.USER_INDEX: users.reshape(-1, 1).astype(np.int64),
        features.MOVIE_INDEX: movies.reshape(-1, 1).astype(np.int64),
    }
    return task.shuffled_batches(
        inputs, ratings.reshape(-1, 1).astype(np.float32), batch_size, seed
    )


def eval_inputs(data: PreparedData) -> dict[str, np.ndarray]:
    """The eval split's ids, shaped as the model's inputs."""
    return {
        features.USER_INDEX: data.eval_users.reshape(-1, 1),
        features.MOVIE_INDEX: data.eval_movies.reshape(-1, 1),
    }


def eval_ranking(model: keras.Model, data: PreparedData) -> metrics.RankingMeans:
    """NDCG@10 and recall@10 of the eval split, per user, as the pipeline's Evaluator ranks.

    Users unseen in train share the out-of-vocabulary index here (the
    Evaluator tells them apart by raw id), so their examples are left out.
    """
    predictions = model.predict(eval_inputs(data), batch_size=EVAL_BATCH_SIZE, verbose=0)
    seen = data.eval_users != len(data.user_counts)
    return metrics.ranking_of(
        data.eval_users[seen], data.eval_ratings[seen], predictions.reshape(-1)[seen]
    )


def eval_batches(data: PreparedData) -> tf.data.Dataset:
    labels = data.eval_ratings.reshape(-1, 1)
    return (
        tf.data.Dataset.from_tensor_slices((eval_inputs(data), labels))
        .batch(EVAL_BATCH_SIZE)
        .cache()
    )


def uses_xla(model: keras.Model, jit_compile) -> bool:
    """Whether to XLA-compile the train step: ``jit_compile`` is True, False or "auto".

    "auto" compiles a model trained with Keras' dense Adam (``row_updates="dense"``)
    and without an MD table (embeddings or biases): XLA fuses Adam's
    element-wise update of whole tables into one pass. Row-sparse Adam's
    gathers and scatters gain nothing from it and train slower compiled, to
    the same RMSE; MD layers route ids with tf.dynamic_partition, whose
    data-dependent shapes XLA cannot compile.
    """
    if jit_compile != "auto":
        return bool(jit_compile)
    if isinstance(model.optimizer, row_sparse.RowSparseAdam):
        return False
    # A bias table can be MD too (a full head and a QR tail).
    layers = {**model_lib.embedding_layers(model), **model_lib.bias_layers(model)}
    return not any(hasattr(layer, "block_dims") for layer in layers.values())


def fit(
    config: ModelConfig,
    data: PreparedData,
    seed: int,
    jit_compile="auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    steps_per_execution: int = 1,
    validate: bool = True,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Builds ``config`` with ``seed`` and fits it on the train split: (model, history).

    ``validate`` scores the eval split after every epoch (``val_rmse`` etc. in
    the history), which early stopping needs. The pipeline's Trainer runs
    ``trainer.task.STEPS_PER_EXECUTION`` steps per execution (the same math).
    """
    config = config.replace(seed=seed)
    keras.utils.set_random_seed(seed)
    model = model_lib.build_model(config, data.user_counts, data.movie_counts, data.mean_rating)
    if uses_xla(model, jit_compile):
        model.jit_compile = True
    model.steps_per_execution = steps_per_execution
    train_data, steps = train_batches(
        data.train_users, data.train_movies, data.train_ratings, config.batch_size, seed
    )
    history = model.fit(
        train_data,
        steps_per_epoch=steps,
        epochs=config.epochs,
        validation_data=eval_batches(data) if validate else None,
        callbacks=[row_sparse.CatchUp(), *callbacks],
        verbose=verbose,
    ).history
    return model, history


def train_once(
    config: ModelConfig,
    data: PreparedData,
    seed: int,
    jit_compile="auto",
    verbose: int = 0,
) -> RunResult:
    """Trains ``config`` (its batch size, learning rate, epochs, patience) with ``seed``."""
    started = time.perf_counter()
    callbacks = model_lib.early_stopping(config)
    model, history = fit(config, data, seed, jit_compile, callbacks, verbose=verbose)
    seconds = time.perf_counter() - started
    val_rmse = [float(v) for v in history["val_rmse"]]
    best = int(np.argmin(val_rmse))
    # Early stopping restored the best epoch's weights: rank with those.
    ranking = eval_ranking(model, data)
    report = embeddings.embedding_memory_report(
        model_lib.embedding_layers(model), config.embedding_dim
    )
    result = RunResult(
        val_rmse=val_rmse[best],
        val_mae=float(history["val_mae"][best]),
        best_epoch=best + 1,
        epochs_run=len(val_rmse),
        seconds=seconds,
        embedding_params=int(report["total"]["params"]),
        bias_params=int(model_lib.bias_parameter_count(model)),
        val_rmse_per_epoch=val_rmse,
        ndcg_at_10=ranking.ndcg,
        recall_at_10=ranking.recall,
    )
    keras.backend.clear_session()
    return result


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean of several seeds of one configuration."""

    val_rmse: float
    val_rmse_std: float
    val_mae: float
    best_epoch: float
    seconds: float
    embedding_params: int
    bias_params: int
    seeds: int
    runs: list[RunResult]
    ndcg_at_10: float = float("nan")
    ndcg_at_10_std: float = 0.0
    recall_at_10: float = float("nan")

    def as_dict(self) -> dict:
        return {
            "embedding_params": self.embedding_params,
            "bias_params": self.bias_params,
            "val_rmse": round(self.val_rmse, 4),
            "val_rmse_std": round(self.val_rmse_std, 4),
            "val_mae": round(self.val_mae, 4),
            "best_epoch": round(self.best_epoch, 2),
            "seconds": round(self.seconds, 1),
            "seeds": self.seeds,
            "ndcg_at_10": round(self.ndcg_at_10, 4),
            "ndcg_at_10_std": round(self.ndcg_at_10_std, 4),
            "recall_at_10": round(self.recall_at_10, 4),
        }


def train_seeds(
    config: ModelConfig,
    data: PreparedData,
    seeds: Sequence[int],
    jit_compile="auto",
    on_run: Callable | None = None,
) -> Summary:
    """Trains once per seed; returns the means (``seconds`` is the mean per run)."""
    runs = []
    for seed in seeds:
        run = train_once(config, data, seed, jit_compile)
        runs.append(run)
        if on_run:
            on_run(seed, run)
    rmse = [r.val_rmse for r in runs]
    ndcg = [r.ndcg_at_10 for r in runs]
    return Summary(
        val_rmse=statistics.fmean(rmse),
        val_rmse_std=statistics.stdev(rmse) if len(rmse) > 1 else 0.0,
        val_mae=statistics.fmean(r.val_mae for r in runs),
        best_epoch=statistics.fmean(r.best_epoch for r in runs),
        seconds=statistics.fmean(r.seconds for r in runs),
        embedding_params=runs[0].embedding_params,
        bias_params=runs[0].bias_params,
        seeds=len(runs),
        runs=runs,
        ndcg_at_10=statistics.fmean(ndcg),
        ndcg_at_10_std=statistics.stdev(ndcg) if len(ndcg) > 1 else 0.0,
        recall_at_10=statistics.fmean(r.recall_at_10 for r in runs),
    )
