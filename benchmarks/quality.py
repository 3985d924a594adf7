"""Quality benchmark: the eval RMSE of embedding configurations, in groups of rows.

A group trains its rows (one model configuration each) on its data sets,
each data set with its ``Recipe``, once per seed, and writes
``results/<group>.json`` (``python -m benchmarks.render`` makes the tables):

* ``row_updates``: the 16x rows with dense, caught-up row-sparse and lazy
  Adam (``ModelConfig.row_updates``);
* ``quality`` (default): the keras-io seed's two models, the tuned full
  model and, at 8x, 16x and 32x fewer embedding parameters than full 64-d
  tables, a uniform (narrower) table and the QR, MD and QR+MD presets;
* ``ablation`` (``benchmarks/ablation.py``): one change at a time, ML-100K;
* ``md_layouts`` (``benchmarks/md_layouts.py``): MD layouts at 16x;
* ``sparsity`` (``benchmarks/sparsity.py``): what the factors add over the
  biases, by user activity;
* ``calibration``: the full model and uniform tables on ML-100K and on
  ML-100K-shaped generated sets at several interaction spectra, to choose
  the generator's (``components/synthetic.py``).

    python -m benchmarks.quality [--group quality] [--datasets ml-100k] [--seeds 3] [--configs a,b]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

import keras

from benchmarks import datasets
from benchmarks import measure
from benchmarks import training
from components import features
from trainer import embeddings
from trainer import model as model_lib
from trainer import model_config
from trainer.embeddings import budget as budget_lib
from trainer.model_config import ModelConfig

REFERENCE_DIM = 64
BUDGETS = (8, 16, 32)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one data set is trained, applied alike to every row on it.

    Batch sizes and learning rates are tuned on ML-100K. A bigger data set
    may set one larger ``batch_size`` for every row (far fewer steps, which
    bounds the run time on few cores: Keras 3's Adam updates every row of a
    table on every step); each row's learning rate then grows with the
    square root of its batch growth, times ``learning_rate_scale``.
    ``regularization`` overrides the L2 settings of every row but the
    seed's; ``seeds`` caps the seeds on a data set whose rows are slow.
    """

    batch_size: int | None = None
    learning_rate_scale: float = 1.0
    max_epochs: int = 30
    patience: int = 2
    regularization: dict[str, float] = dataclasses.field(default_factory=dict)
    seeds: int | None = None

    def apply(self, config: ModelConfig, is_seed: bool) -> ModelConfig:
        changes = {}
        if self.batch_size:
            growth = self.batch_size / config.batch_size
            changes.update(
                batch_size=self.batch_size,
                learning_rate=config.learning_rate * math.sqrt(growth) * self.learning_rate_scale,
            )
        if not is_seed:
            # The seed's models keep their own 3 epochs (the best one is reported).
            changes.update(epochs=self.max_epochs, early_stopping_patience=self.patience)
            changes.update(self.regularization)
        return config.replace(**changes)


RECIPES: dict[str, Recipe] = {
    # 140 ratings per id: the presets' L2 (tuned on ML-100K) held the full
    # model 0.015 above its best; 0.03 per lookup measured best for the full
    # model and the 4-d table alike, and the per-id prior added nothing
    # (4-d table, 3 seeds: 0.8614 with it, 0.8615 without).
    "synthetic-1m": Recipe(
        batch_size=4096, max_epochs=16, regularization={"l2": 0.03, "l2_per_id": 0.0}
    ),
    # Half its users rate fewer than 5 movies: with a per-lookup L2 alone
    # every row tied at the biases-only RMSE; a per-id prior lets the factors
    # of active ids learn (the sparsity group). At batch 32,768 the factors
    # still improved at epoch 12 with the square-root rule's rate, so twice it.
    "synthetic-large": Recipe(
        batch_size=32768,
        learning_rate_scale=2.0,
        max_epochs=12,
        regularization={"l2": 0.01, "l2_per_id": 20.0, "bias_l2_per_id": 5.0},
        seeds=2,
    ),
}
# The extreme group's large sets train like synthetic-large, whose sparsity
# they share (untuned for them), with the group's 3 seeds.
RECIPES["synthetic-signal"] = dataclasses.replace(RECIPES["synthetic-large"], seeds=None)
RECIPES["synthetic-wide"] = RECIPES["synthetic-signal"]
RECIPES["synthetic-factors"] = RECIPES["synthetic-signal"]
RECIPES["synthetic-wide-dense"] = RECIPES["synthetic-signal"]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row before it is trained; ``overrides`` apply after the data set's recipe."""

    config: str
    model: ModelConfig
    technique: str | None = None
    budget: int | None = None
    is_seed: bool = False
    group: str | None = None
    what: str | None = None
    # The row this one is compared with (``vs`` in the rendered table).
    versus: str | None = None
    overrides: dict = dataclasses.field(default_factory=dict)


def scale_compression(spec: dict, ratio: float) -> dict:
    """``spec`` with every "compression" (its own and its tail_qr's) set to ``ratio``."""
    spec = dict(spec)
    if "compression" in spec:
        spec["compression"] = ratio
    if isinstance(spec.get("tail_qr"), dict) and "compression" in spec["tail_qr"]:
        spec["tail_qr"] = scale_compression(spec["tail_qr"], ratio)
    return spec


def at_embedding_budget(config: ModelConfig, budget: int) -> ModelConfig:
    """A compressed preset at ``budget`` times fewer embedding params than 64-d
    tables, its full biases left out of the count: issue #4's accounting, which
    the ``quality`` group keeps so that ``results/quality.json`` stays what it
    measures (``at_budget`` counts the biases).

    The specs' ``compression`` is relative to a full table of the model's
    own ``embedding_dim``, so a model of width d needs ``budget * d / 64``.
    """
    ratio = budget * config.embedding_dim / REFERENCE_DIM
    return config.replace(
        user_embedding=scale_compression(config.user_embedding, ratio),
        movie_embedding=scale_compression(config.movie_embedding, ratio),
    )


def vocabularies(user_counts, movie_counts) -> dict[str, embeddings.Vocabulary]:
    return {
        "user_embedding": embeddings.Vocabulary.of(user_counts, features.NUM_OOV_BUCKETS),
        "movie_embedding": embeddings.Vocabulary.of(movie_counts, features.NUM_OOV_BUCKETS),
    }


def at_budget(
    config: ModelConfig,
    budget: float,
    user_counts,
    movie_counts,
    technique: dict | None = None,
    bias_technique: str = "qr",
    bias_share: float = budget_lib.BIAS_SHARE,
    compress_biases: bool = False,
) -> ModelConfig | None:
    """``config`` with tables (``technique``, default its user table's spec) and
    biases that hold at most 1/``budget`` of the id-indexed parameters of full
    64-d tables plus full biases (``trainer.embeddings.budget.fit``): biases
    compressed past 64x (or with ``compress_biases``), the width narrowed
    where the technique needs it. None when the technique cannot fit.
    """
    vocabs = vocabularies(user_counts, movie_counts)
    limit = budget_lib.Budget(ratio=budget).params({k: v.input_dim for k, v in vocabs.items()})
    fitted = budget_lib.fit(
        technique or config.user_embedding,
        vocabs,
        limit,
        config.embedding_dim,
        biases=config.use_biases,
        bias_technique=bias_technique,
        bias_share=bias_share,
        compress_biases=compress_biases,
    )
    if fitted is None:
        return None
    changes = dict(
        embedding_dim=fitted.embedding_dim,
        user_embedding=fitted.embeddings["user_embedding"],
        movie_embedding=fitted.embeddings["movie_embedding"],
    )
    bias = fitted.biases
    if config.use_biases and None in bias.values():
        changes["use_biases"] = False
    elif config.use_biases:
        changes.update(user_bias=bias["user_embedding"], movie_bias=bias["movie_embedding"])
        changes.update(budget_lib.training_changes(bias))
    return config.replace(**changes)


def entries(budgets: Sequence[int] = BUDGETS) -> list[Entry]:
    """The rows of the ``quality`` group, in report order."""
    rows = [
        Entry("seed_baseline", model_config.SEED_BASELINE, "full", is_seed=True),
        Entry("seed_qr_md", model_config.SEED_QR_MD, "qr+md", is_seed=True),
        Entry("baseline", model_config.preset("full"), "full"),
    ]
    # Uniform tables train exactly like the compressed presets: only the tables differ.
    compressed_training = model_config.preset(model_config.DEFAULT_MODEL)
    compressed = {"qr": "qr_16x", "md": "md_16x", "qr+md": "md_qr_16x"}
    for budget in budgets:
        uniform = f"uniform_{budget}x"
        rows.append(
            Entry(
                uniform,
                compressed_training.replace(
                    name=uniform,
                    embedding_dim=REFERENCE_DIM // budget,
                    user_embedding={"type": "full"},
                    movie_embedding={"type": "full"},
                ),
                "uniform",
                budget,
            )
        )
        for technique, preset in compressed.items():
            name = preset.replace("_16x", f"_{budget}x")
            model = at_embedding_budget(model_config.preset(preset), budget).replace(name=name)
            rows.append(Entry(name, model, technique, budget, versus=uniform))
        # The hashing trick (QR's baseline), and the default preset with its
        # per-id biases hashed at the same budget (biases inside the budget).
        hashed = {"type": "hash", "compression": 2}  # rescaled by at_budget
        model = at_embedding_budget(
            compressed_training.replace(user_embedding=hashed, movie_embedding=hashed), budget
        )
        name = f"hash_{budget}x"
        rows.append(Entry(name, model.replace(name=name), "hash", budget, versus=uniform))
        model = at_embedding_budget(model_config.preset("md_16x"), budget)
        hashed_biases = {"type": "hash", "compression": budget}
        name = f"md_{budget}x_hashed_biases"
        model = model.replace(name=name, user_bias=hashed_biases, movie_bias=hashed_biases)
        rows.append(Entry(name, model, "md", budget, versus=uniform))
    return rows


EXTREME_BUDGETS = (64, 128, 256, 1024)
# Each technique's spec at the compressed presets' width; ``at_budget`` sets its knob.
EXTREME_TECHNIQUES: dict[str, tuple[str, dict]] = {
    "hash": ("hash", {"type": "hash", "compression": 2}),
    **{
        f"qr_{operation}{k}": (
            "qr",
            {"type": "qr", "operation": operation, "num_partitions": k, "compression": 2},
        )
        for k in (2, 3)
        for operation in ("mult", "add", "concat")
    },
    # A head of plain rows and a 3-partition QR tail (the cheapest QR, so it
    # reaches 1024x at a useful width), half of the budget each.
    "md_qr": (
        "qr+md",
        {
            "type": "md",
            "dims": [1, 1],
            "projection": "nested",
            "tail_qr": {"operation": "mult", "num_partitions": 3},
        },
    ),
    "md": ("md", model_config.MD_16X.user_embedding),
    "uniform": ("uniform", {"type": "full"}),
}
# Rows whose compressed biases follow their own technique instead of QR "add"
# (``budget.bias_spec``): the hashing trick on every id-indexed table, the QR
# paper's baseline; and QR tables beside QR+MD biases, the most rated ids'
# own biases and a QR "add" tail (QR "add" alone on a side whose ids are
# rated about equally: ``budget.HEAD_MIN_SPREAD``). Where full biases fit,
# these rows would repeat their tables' rows, so they are left out there.
EXTREME_WITH_BIASES: dict[str, tuple[str, str]] = {
    "hash_all": ("hash", "hash"),
    "md_qr_head": ("md_qr", "head"),
    "qr_add2_head": ("qr_add2", "head"),
    "qr_concat3_head": ("qr_concat3", "head"),
}


def biases_only() -> ModelConfig:
    """The compressed presets' training with full biases and one shared 1-d
    factor per side (a constant): the model ids add nothing to beyond their biases."""
    shared = {"type": "hash", "num_buckets": 1}
    return model_config.preset(model_config.DEFAULT_MODEL).replace(
        name="biases_only", embedding_dim=1, user_embedding=shared, movie_embedding=shared
    )


def extreme_entries(data: datasets.PreparedData, budgets=EXTREME_BUDGETS) -> list[Entry]:
    """The ``extreme`` group's rows on ``data``: the full model and biases-only as
    references, then every technique at each budget that it fits (counting
    biases); a technique that cannot fit a budget gets an entry without a model."""
    compressed_training = model_config.preset(model_config.DEFAULT_MODEL)
    rows = [
        Entry("baseline", model_config.preset("full"), "full", 1),
        Entry("biases_only", biases_only(), "biases"),
    ]
    labels = {label: (label, "qr") for label in EXTREME_TECHNIQUES}
    labels.update(EXTREME_WITH_BIASES)
    for budget in budgets:
        for label, (tables, biases) in labels.items():
            if label in EXTREME_WITH_BIASES and budget < budget_lib.FULL_BIASES_UP_TO:
                continue  # full biases fit: the row would repeat its tables' row
            technique, spec = EXTREME_TECHNIQUES[tables]
            name = f"{label}_{budget}x"
            model = at_budget(
                compressed_training, budget, data.user_counts, data.movie_counts, spec, biases
            )
            model = model and model.replace(name=name)
            # QR and MD tables against hashed ones beside the same biases; rows
            # with their own biases against the hashing trick on everything.
            versus = f"hash_all_{budget}x" if label in EXTREME_WITH_BIASES else f"hash_{budget}x"
            rows.append(Entry(name, model, technique, budget, versus=versus))
    return [e if e.technique != "hash" else dataclasses.replace(e, versus=None) for e in rows]


BIAS_BUDGET = 64
BIAS_TECHNIQUES = ("qr", "hash", "head")


def bias_entries(data: datasets.PreparedData) -> list[Entry]:
    """At 64x, one embedding table (QR "concat", the ``qr_16x`` preset's) with
    its biases full (over the budget), absent, or compressed to a quarter (and
    three quarters) of the budget by each way of ``budget.bias_spec``."""
    base = model_config.preset(model_config.DEFAULT_MODEL)
    spec = EXTREME_TECHNIQUES["qr_concat2"][1]
    counts = (data.user_counts, data.movie_counts)
    rows = []
    for technique in BIAS_TECHNIQUES:
        model = at_budget(base, BIAS_BUDGET, *counts, spec, technique, compress_biases=True)
        if rows:  # the first row's tables: biases that hold fewer parameters leave more
            model = model.replace(
                embedding_dim=rows[0].model.embedding_dim,
                user_embedding=rows[0].model.user_embedding,
                movie_embedding=rows[0].model.movie_embedding,
            )
        rows.append(Entry(f"biases_{technique}", model, technique, BIAS_BUDGET))
    tables = rows[0].model
    for technique in ("qr", "hash"):  # three quarters of the budget to the biases
        model = at_budget(
            base, BIAS_BUDGET, *counts, spec, technique, bias_share=0.75, compress_biases=True
        )
        rows.append(Entry(f"biases_{technique}_share75", model, technique, BIAS_BUDGET))
    rows.insert(
        0,
        Entry(
            "biases_full",
            tables.replace(user_bias={"type": "full"}, movie_bias={"type": "full"}),
            "full",
        ),
    )
    rows.insert(1, Entry("no_biases", tables.replace(use_biases=False), "none", BIAS_BUDGET))
    return [dataclasses.replace(e, versus="biases_full") for e in rows]


def block_dims(layers: dict[str, keras.layers.Layer]) -> dict[str, list[int]]:
    """The widths of each MD table's blocks (an MD layer is one with ``block_dims``)."""
    return {
        f: list(layer.block_dims) for f, layer in layers.items() if hasattr(layer, "block_dims")
    }


def built_technique(technique: str, layers: dict[str, keras.layers.Layer]) -> str:
    """``technique``, or "uniform" for an MD row whose blocks all came out one width."""
    if technique != "md":
        return technique
    mixed = any(
        len(set(dims)) > 1 or getattr(layers[f], "tail_qr", None)
        for f, dims in block_dims(layers).items()
    )
    return technique if mixed else "uniform"


def id_params(config: ModelConfig, user_counts, movie_counts) -> int:
    """Parameters of every id-indexed table: embeddings and, with biases, the per-id biases."""
    vocabs = vocabularies(user_counts, movie_counts)
    specs = {"user_embedding": config.user_embedding, "movie_embedding": config.movie_embedding}
    total = sum(
        t.params for t in embeddings.build_tables(specs, vocabs, config.embedding_dim).values()
    )
    if config.use_biases:
        for name, spec in (
            ("user_embedding", config.user_bias),
            ("movie_embedding", config.movie_bias),
        ):
            total += embeddings.build_tables({name: spec}, {name: vocabs[name]}, 1)[name].params
    return int(total)


def train_row(entry: Entry, config: ModelConfig, data, seeds: Sequence[int]) -> list[dict]:
    """Trains one row once per seed: its means, the tables it built, its settings."""

    def on_run(seed, run):
        print(
            f"  {data.name} {entry.config} seed {seed}: val RMSE {run.val_rmse:.4f} "
            f"at epoch {run.best_epoch}/{run.epochs_run}, NDCG@10 {run.ndcg_at_10:.4f}, "
            f"{run.seconds:.0f}s",
            flush=True,
        )

    summary = training.train_seeds(config, data, seeds, on_run=on_run)
    tables = model_lib.id_embeddings(config, data.user_counts, data.movie_counts)
    params = id_params(config, data.user_counts, data.movie_counts)
    vocabs = vocabularies(data.user_counts, data.movie_counts)
    reference = budget_lib.reference_params({k: v.input_dim for k, v in vocabs.items()})
    row = {
        "group": entry.group,
        "config": entry.config,
        "what": entry.what,
        "technique": entry.technique and built_technique(entry.technique, tables),
        "budget": entry.budget,
        **summary.as_dict(),
        "id_params": params,
        # Every id-indexed parameter (tables and per-id biases) against full
        # 64-d tables plus full biases, the budget's own measure.
        "compression": round(reference / params, 2),
        "block_dims": block_dims(tables),
        "versus": entry.versus,
        "model": json.loads(config.to_json()),
    }
    return [{k: v for k, v in row.items() if v is not None and v != {}}]


@dataclasses.dataclass(frozen=True)
class Group:
    rows: Callable[[datasets.PreparedData], list[Entry]]
    datasets: Sequence[str]
    seeds: int
    train: Callable = train_row


CALIBRATION_ROWS = ("baseline", "uniform_8x", "uniform_16x", "uniform_32x")
# Issue #20: NDCG@10 of the full model, the uniform table and each compressed preset.
RANKING_ROWS = ("baseline", "uniform_16x", "md_16x", "qr_16x", "md_qr_16x", "hash_16x")


# Issue #17: how the id-indexed tables are updated (``ModelConfig.row_updates``).
ROW_UPDATE_ROWS = ("baseline", "uniform_16x", "md_16x", "md_qr_16x", "qr_16x")


def row_update_entries() -> list[Entry]:
    """Each of ``ROW_UPDATE_ROWS`` with dense Adam, row-sparse Adam caught up,
    and lazy Adam, compared with dense Adam at the same commit."""
    rows = []
    for entry in entries():
        if entry.config not in ROW_UPDATE_ROWS:
            continue
        for updates in model_config.ROW_UPDATES[::-1]:  # dense first, the reference
            rows.append(
                dataclasses.replace(
                    entry,
                    config=f"{entry.config}_{updates}",
                    versus=None if updates == "dense" else f"{entry.config}_dense",
                    overrides={"row_updates": updates},
                )
            )
    return rows


def groups() -> dict[str, Group]:
    from benchmarks import ablation
    from benchmarks import md_layouts
    from benchmarks import sparsity

    three = ("ml-100k", "synthetic-1m", "synthetic-large")
    return {
        "extreme": Group(extreme_entries, ("ml-100k", *datasets.EXTREME_SETS), 3),
        "bias_compression": Group(bias_entries, ("ml-100k",), 3),
        "row_updates": Group(lambda data: row_update_entries(), three, 3),
        "quality": Group(lambda data: entries(), three, 3),
        "ablation": Group(lambda data: ablation.entries(), ("ml-100k",), 2),
        "md_layouts": Group(md_layouts.entries, three, 5),
        "sparsity": Group(sparsity.entries, ("ml-100k", "synthetic-large"), 1, sparsity.train),
        "ranking": Group(
            lambda data: [e for e in entries() if e.config in RANKING_ROWS],
            ("ml-100k", "synthetic-1m"),
            3,
        ),
        "calibration": Group(
            lambda data: [e for e in entries() if e.config in CALIBRATION_ROWS],
            ("ml-100k", *datasets.CALIBRATION_SETS),
            2,
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    known = groups()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__)
    parser.add_argument("--group", default="quality", choices=list(known))
    parser.add_argument("--datasets", help="comma-separated (default: the group's)")
    parser.add_argument("--seeds", type=int, help="seeds per row (default: the group's)")
    parser.add_argument("--configs", help="only these comma-separated rows (quick checks)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    group = known[args.group]
    names = args.datasets.split(",") if args.datasets else list(group.datasets)
    unknown = [n for n in names if n not in datasets.DATASETS]
    if unknown:
        parser.error(f"unknown data set(s) {unknown}; known: {list(datasets.DATASETS)}")
    wanted = set(args.configs.split(",")) if args.configs else None
    started = time.perf_counter()
    payload = {
        "command": " ".join(["python -m benchmarks.quality", *(argv or sys.argv[1:])]),
        "machine": measure.machine_info(),
        "datasets": {},
        "skipped": {},
        "rows": [],
    }
    out = args.out / f"{args.group}.json"

    def write():  # after every row: an interrupted run keeps what it finished
        payload["wall_seconds"] = round(time.perf_counter() - started, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")

    for name in names:
        try:
            data = datasets.load(name)
        except datasets.DatasetUnavailable as error:
            print(f"skipping {name}: {error}", flush=True)
            payload["skipped"][name] = str(error)
            continue
        payload["datasets"][name] = data.describe()
        print(data.describe(), flush=True)
        recipe = RECIPES.get(name, Recipe())
        seeds = list(range(min(args.seeds or group.seeds, recipe.seeds or 10**6)))
        for entry in group.rows(data):
            if wanted and entry.config not in wanted:
                continue
            if entry.model is None:  # the technique cannot fit this budget on this data
                payload["skipped"][f"{name} {entry.config}"] = "does not fit the budget"
                print(f"  {name} {entry.config}: does not fit the budget", flush=True)
                continue
            config = recipe.apply(entry.model, entry.is_seed).replace(**entry.overrides)
            for row in group.train(entry, config, data, seeds):
                payload["rows"].append({"dataset": name, **row})
                print({k: v for k, v in row.items() if k != "model"}, flush=True)
            write()
    write()
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; wrote {out}")
    return 0


if __name__ == "__main__":
    from benchmarks import quality  # one module instance for the groups that import it

    sys.exit(quality.main())
