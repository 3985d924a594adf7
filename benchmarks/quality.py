"""Quality benchmark: how much eval RMSE each embedding technique costs at a memory budget.

For every data set (one deterministic 85/15 split each) it trains, for
``--seeds`` seeds, and reports the mean of:

* ``seed_baseline`` / ``seed_qr_md``: the keras-io seed's two models as the
  presets ``baseline`` and ``qr_md`` define them (3 epochs);
* ``baseline``: the tuned full model (64-d tables, preset ``full``);
* at each budget of ``--budgets`` (8x, 16x, 32x fewer embedding parameters
  than full 64-d tables): ``uniform`` (plain tables of 64 / budget dims, the
  honest competitor), ``qr``, ``md`` and ``qr+md``, each the project's
  configuration for that technique with its budget scaled to the data set's
  vocabularies.

Writes ``quality.json``, ``quality.md`` and ``quality.png`` to ``--out``.

    python -m benchmarks.quality [--datasets ml-100k,synthetic-1m,synthetic-large] [--seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import keras

from benchmarks import datasets
from benchmarks import report
from benchmarks import training
from trainer import model as model_lib
from trainer import model_config
from trainer.md_embedding import MDEmbedding
from trainer.model_config import ModelConfig

REFERENCE_DIM = 64
DEFAULT_BUDGETS = (8, 16, 32)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TECHNIQUES = ("full", "uniform", "qr", "md", "qr+md")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one data set is trained, applied alike to every configuration on it.

    The configurations' batch sizes and learning rates are tuned on ML-100K.
    A bigger data set may set one larger ``batch_size`` for every row (far
    fewer steps, which is what bounds the run time on two cores: Keras 3's
    Adam updates every row of a table on every step); each row's learning
    rate then grows with the square root of its batch growth, the usual rule
    for Adam, times ``learning_rate_scale``.

    ``regularization`` overrides the L2 settings of every row but the seed's
    (whose models have none): a data set whose ids are far sparser than
    ML-100K's needs its own prior (see ``ModelConfig.l2_per_id``). ``seeds``
    caps the seeds of ``--seeds`` on a data set whose rows are slow.
    """

    batch_size: Optional[int] = None
    learning_rate_scale: float = 1.0
    max_epochs: int = 30
    patience: int = 2
    regularization: Dict[str, float] = dataclasses.field(default_factory=dict)
    seeds: Optional[int] = None

    def apply(self, config: ModelConfig, is_seed: bool) -> ModelConfig:
        changes = {}
        if self.batch_size:
            growth = self.batch_size / config.batch_size
            changes.update(
                batch_size=self.batch_size,
                learning_rate=config.learning_rate * math.sqrt(growth) * self.learning_rate_scale,
            )
        if not is_seed:
            # The seed's models keep their own 3 epochs; the reported figure
            # is still the best of those epochs.
            changes.update(epochs=self.max_epochs, early_stopping_patience=self.patience)
            changes.update(self.regularization)
        return config.replace(**changes)


RECIPES: Dict[str, Recipe] = {
    "ml-100k": Recipe(),
    # With 140 ratings per id, the presets' L2 (0.08 full, tuned on ML-100K)
    # held the full model 0.015 above its best; 0.03 per lookup for every
    # row measured best for the full model and the 4-d table alike. The
    # compressed presets' per-id prior adds nothing here (4-d table, 3 seeds:
    # 0.8614 with L2 0.015 + l2_per_id 5, 0.8615 without), so it is off.
    "synthetic-1m": Recipe(
        batch_size=4096, max_epochs=16, regularization={"l2": 0.03, "l2_per_id": 0.0}
    ),
    # Half its users rate fewer than 5 movies. With ML-100K's per-lookup L2
    # alone, a user seen three times fits those three ratings, and every
    # row overfits before its factors learn anything: all rows tied at the
    # biases-only RMSE. A per-id prior (``l2_per_id``) shrinks rare ids
    # hardest and lets the factors of active ids learn (benchmarks/README.md).
    # Twice the square-root rule's learning rate and 12 epochs: at batch
    # 32,768 (78 steps an epoch) the factors were still improving at epoch
    # 12 with the rule's rate. Two seeds: a seed of every row takes about
    # 15 minutes on 2 cores.
    "synthetic-large": Recipe(
        batch_size=32768,
        learning_rate_scale=2.0,
        max_epochs=12,
        patience=2,
        regularization={"l2": 0.01, "l2_per_id": 20.0, "bias_l2_per_id": 5.0},
        seeds=2,
    ),
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of the benchmark before it is trained."""

    config: str
    technique: str
    budget: Optional[int]
    model: ModelConfig
    is_seed: bool = False


def scale_compression(spec: Dict, ratio: float) -> Dict:
    """``spec`` with every "compression" (its own and its tail_qr's) set to ``ratio``."""
    spec = dict(spec)
    if "compression" in spec:
        spec["compression"] = ratio
    if isinstance(spec.get("tail_qr"), dict) and "compression" in spec["tail_qr"]:
        spec["tail_qr"] = scale_compression(spec["tail_qr"], ratio)
    return spec


def at_budget(config: ModelConfig, budget: int) -> ModelConfig:
    """A compressed preset retargeted to ``budget`` times fewer params than 64-d tables.

    The specs' ``compression`` is relative to a full table of the model's own
    ``embedding_dim``, so a model of width d needs ``budget * d / 64``.
    """
    ratio = budget * config.embedding_dim / REFERENCE_DIM
    return config.replace(
        user_embedding=scale_compression(config.user_embedding, ratio),
        movie_embedding=scale_compression(config.movie_embedding, ratio),
    )


def entries(budgets: Sequence[int]) -> List[Entry]:
    """Every row of the benchmark, in report order."""
    full = model_config.preset("full")
    # Uniform tables train exactly like the compressed presets (same L2,
    # learning rate, batch): only the tables differ.
    compressed_training = model_config.preset(model_config.DEFAULT_MODEL)
    rows = [
        Entry("seed_baseline", "full", None, model_config.SEED_BASELINE, is_seed=True),
        Entry("seed_qr_md", "qr+md", None, model_config.SEED_QR_MD, is_seed=True),
        Entry("baseline", "full", None, full),
    ]
    compressed = {
        "qr": model_config.preset("qr_16x"),
        "md": model_config.preset("md_16x"),
        "qr+md": model_config.preset("md_qr_16x"),
    }
    for budget in budgets:
        if REFERENCE_DIM % budget:
            raise ValueError(f"budget {budget} does not divide {REFERENCE_DIM}")
        uniform_name = f"uniform_{budget}x"
        rows.append(
            Entry(
                uniform_name,
                "uniform",
                budget,
                compressed_training.replace(
                    name=uniform_name,
                    embedding_dim=REFERENCE_DIM // budget,
                    user_embedding={"type": "full"},
                    movie_embedding={"type": "full"},
                ),
            )
        )
        for technique, preset in compressed.items():
            # Named after the preset: md_16x is the preset md_16x itself.
            name = preset.name.replace("_16x", f"_{budget}x")
            rows.append(
                Entry(name, technique, budget, at_budget(preset, budget).replace(name=name))
            )
    return rows


def block_dims(layers: Dict[str, keras.layers.Layer]) -> Dict[str, List[int]]:
    """The widths of each table's MD blocks; absent for other tables."""
    return {
        feature: list(layer.block_dims)
        for feature, layer in layers.items()
        if isinstance(layer, MDEmbedding)
    }


def built_technique(technique: str, layers: Dict[str, keras.layers.Layer]) -> str:
    """``technique``, or "uniform" for an MD row whose blocks all came out one width.

    The alpha rule can give every block the same dim on a small budget (ML-100K
    at 32x: 2 dims each); such a table is a plain narrow one and is reported as
    one, not as MD.
    """
    if technique != "md":
        return technique
    mixed = any(
        isinstance(layer, MDEmbedding) and (len(set(layer.block_dims)) > 1 or layer.tail_qr)
        for layer in layers.values()
    )
    return technique if mixed else "uniform"


def run_dataset(
    data: datasets.PreparedData,
    rows: Sequence[Entry],
    seeds: Sequence[int],
    on_row,
) -> List[Dict]:
    recipe = RECIPES.get(data.name, Recipe())
    if recipe.seeds:
        seeds = seeds[: recipe.seeds]
    full_params = training.full_table_params(data, REFERENCE_DIM)
    results = []
    for entry in rows:
        config = recipe.apply(entry.model, entry.is_seed)

        def on_run(seed, run, entry=entry):
            print(
                f"  {data.name} {entry.config} seed {seed}: val RMSE {run.val_rmse:.4f} "
                f"MAE {run.val_mae:.4f} at epoch {run.best_epoch}/{run.epochs_run}, "
                f"{run.embedding_params:,} emb params, {run.seconds:.0f}s",
                flush=True,
            )

        summary = training.train_seeds(config, data, seeds, on_run=on_run)
        # The tables as built on this data, for the row's labels (not trained).
        tables = model_lib.id_embeddings(config, data.user_counts, data.movie_counts)
        row = {
            "dataset": data.name,
            "config": entry.config,
            "technique": built_technique(entry.technique, tables),
            "budget": entry.budget,
            **summary.as_dict(),
            "block_dims": block_dims(tables),
            "compression": round(full_params / summary.embedding_params, 2),
            "model": json.loads(config.to_json()),
        }
        results.append(row)
        on_row(row)
    return results


def machine_description() -> Dict[str, str]:
    import os
    import platform

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": memory,
        "python": sys.version.split()[0],
    }


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description="Val RMSE of full, uniform, QR, MD and QR+MD embeddings at fixed budgets.",
    )
    parser.add_argument(
        "--datasets",
        default=",".join(datasets.DATASETS),
        help="comma-separated data sets (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds per configuration (default: %(default)s)"
    )
    parser.add_argument(
        "--budgets",
        default=",".join(map(str, DEFAULT_BUDGETS)),
        help="compression budgets vs full 64-d tables (default: %(default)s)",
    )
    parser.add_argument(
        "--configs",
        default=None,
        help="only these comma-separated config names (default: all); for quick checks",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="output folder (default: %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.quality " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in datasets.DATASETS]
    if unknown:
        print(f"unknown data set(s) {unknown}; known: {list(datasets.DATASETS)}", file=sys.stderr)
        return 2
    budgets = [int(b) for b in args.budgets.split(",")]
    rows = entries(budgets)
    if args.configs:
        wanted = {c.strip() for c in args.configs.split(",")}
        rows = [r for r in rows if r.config in wanted]
    seeds = list(range(args.seeds))
    machine = machine_description()
    started = time.perf_counter()
    results: List[Dict] = []
    skipped: Dict[str, str] = {}
    described: Dict[str, str] = {}

    def write():
        report.write_quality(
            args.out,
            results,
            command=command.strip(),
            machine=machine,
            datasets=described,
            skipped=skipped,
            seconds=time.perf_counter() - started,
        )

    for name in names:
        try:
            data = datasets.load(name)
        except datasets.DatasetUnavailable as error:
            print(f"skipping {name}: {error}", flush=True)
            skipped[name] = str(error)
            continue
        described[name] = data.describe()
        print(data.describe(), flush=True)

        def on_row(row):
            results.append(row)
            print(
                f"{row['dataset']:16s} {row['config']:14s} {row['technique']:8s} "
                f"emb {row['embedding_params']:>10,} ({row['compression']:5.1f}x) "
                f"val RMSE {row['val_rmse']:.4f} MAE {row['val_mae']:.4f} "
                f"epoch {row['best_epoch']:.1f} {row['seconds']:.0f}s/run "
                f"[{(time.perf_counter() - started) / 60:.1f} min]",
                flush=True,
            )
            write()  # partial results survive an interrupted run

        run_dataset(data, rows, seeds, on_row)
    write()
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
