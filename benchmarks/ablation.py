"""Ablation on ML-100K: every tuning decision of issue #4, one change at a time.

Three groups, each row a single change against a named reference:

* ``full ladder``: from the keras-io seed baseline to the tuned full model
  (preset ``full``), adding one change per row (cumulative), so each delta is
  the effect of that change alone given the ones above it.
* ``full, one change``: the tuned full model with one setting moved.
* ``16x, one change``: the best 16x configuration (``DEFAULT_MODEL``) with one
  setting moved: MD alpha, blocks, projections and budget rounding; QR
  combiner, partitions and where QR applies; L2 and the per-id prior;
  learning rate, batch size, biases and the start at the mean rating.

Every row trains with early stopping on the eval split (best weights
restored); figures are means over ``--seeds`` seeds. Writes ``ablation.json``
and ``ablation.md`` to ``--out``.

    python -m benchmarks.ablation [--seeds 2] [--groups ladder,full,16x]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks import datasets
from benchmarks import quality
from benchmarks import report
from benchmarks import training
from trainer import model_config
from trainer.model_config import ModelConfig

DATASET = "ml-100k"
BUDGET = 16


@dataclasses.dataclass(frozen=True)
class Step:
    group: str
    change: str
    model: ModelConfig
    # Which row the delta is measured against: the previous row of a ladder,
    # else the group's reference row (the first one).
    compare_to_previous: bool = False


def _md_spec(spec: Dict, **changes) -> Dict:
    return {**spec, **changes}


def full_ladder() -> List[Step]:
    """Seed baseline -> tuned full model, one cumulative change per row."""
    full = model_config.preset("full")
    # Every rung trains as long as the tuned model (early stopping), so the
    # ladder measures the model changes, not a longer schedule.
    schedule = dict(epochs=full.epochs, early_stopping_patience=full.early_stopping_patience)
    rungs = [("seed baseline (sigmoid * 5, no biases, no L2), trained to early stopping", {})]
    rungs += [
        ("+ per-user and per-movie biases", dict(use_biases=True)),
        (
            "+ output starts at the mean rating, not sigmoid(0) * 5 = 2.5",
            dict(init_at_mean_rating=True),
        ),
        (f"+ per-row L2 {full.l2} on factors and biases", dict(l2=full.l2)),
        (f"+ bias L2 lowered to {full.bias_l2}", dict(bias_l2=full.bias_l2)),
        (
            f"+ linear head clipped to [{full.min_rating}, {full.max_rating}]",
            dict(rating_head=full.rating_head, min_rating=full.min_rating),
        ),
        (
            f"+ Adam beta_2 {full.adam_beta_2}, epsilon {full.adam_epsilon:g}",
            dict(adam_beta_2=full.adam_beta_2, adam_epsilon=full.adam_epsilon),
        ),
        (
            f"+ batch {full.batch_size}, learning rate {full.learning_rate:g} (= preset full)",
            dict(batch_size=full.batch_size, learning_rate=full.learning_rate),
        ),
    ]
    steps, changes = [], dict(schedule)
    for label, change in rungs:
        changes.update(change)
        steps.append(
            Step(
                "full ladder",
                label,
                model_config.SEED_BASELINE.replace(name="ladder", **changes),
                compare_to_previous=True,
            )
        )
    return steps


def full_one_change() -> List[Step]:
    full = model_config.preset("full")
    variants = [
        ("preset full (reference)", {}),
        ("L2 0.04", dict(l2=0.04)),
        ("L2 0.12", dict(l2=0.12)),
        ("bias L2 = factor L2", dict(bias_l2=None)),
        ("per-id prior: L2 0.05 plus l2_per_id 5", dict(l2=0.05, l2_per_id=5.0)),
        ("sigmoid head over [0, 5]", dict(rating_head="sigmoid", min_rating=0.0)),
        ("no start at the mean rating", dict(init_at_mean_rating=False)),
        (
            "init normal(0, 0.1) instead of uniform(+-0.05)",
            dict(embeddings_initializer={"class_name": "RandomNormal", "config": {"stddev": 0.1}}),
        ),
        ("plain Adam (beta_2 0.999, epsilon 1e-7)", dict(adam_beta_2=0.999, adam_epsilon=1e-7)),
        ("AdamW weight decay 0.004 instead of per-row L2", dict(l2=0.0, weight_decay=0.004)),
        ("learning rate / 2", dict(learning_rate=full.learning_rate / 2)),
        ("learning rate x 2", dict(learning_rate=full.learning_rate * 2)),
        (
            "batch 128, learning rate / 2",
            dict(batch_size=128, learning_rate=full.learning_rate / 2),
        ),
        (
            "batch 2048, learning rate x 2",
            dict(batch_size=2048, learning_rate=full.learning_rate * 2),
        ),
    ]
    return [Step("full, one change", label, full.replace(**change)) for label, change in variants]


def compressed_one_change() -> List[Step]:
    best = model_config.preset(model_config.DEFAULT_MODEL)
    ratio = BUDGET * best.embedding_dim / quality.REFERENCE_DIM
    users, movies = best.user_embedding, best.movie_embedding

    def both(**changes):
        return dict(
            user_embedding=_md_spec(users, **changes), movie_embedding=_md_spec(movies, **changes)
        )

    def qr_spec(**changes):
        return {"type": "qr", "operation": "mult", "compression": ratio, **changes}

    alpha = users.get("alpha")
    blocks = users.get("blocks")
    variants = [
        (f"preset {best.name} (reference)", {}),
        (
            "uniform 4-d tables instead (same budget)",
            dict(
                embedding_dim=quality.REFERENCE_DIM // BUDGET,
                user_embedding={"type": "full"},
                movie_embedding={"type": "full"},
            ),
        ),
        *((f"MD alpha {a:g}", both(alpha=a)) for a in (0.0, 0.3, 0.6) if a != alpha),
        *((f"MD {n} blocks", both(blocks=n)) for n in (2, 8) if n != blocks),
        (
            "MD learned projections instead of zero padding",
            both(projection="learned"),
        ),
        ("MD budget left by rounding not spent (no fill_budget)", both(fill_budget=False)),
        ("L2 / 2", dict(l2=best.l2 / 2)),
        ("L2 x 2", dict(l2=best.l2 * 2)),
        (
            "no per-id prior: L2 0.04 per lookup alone (the preset before it)",
            dict(l2=0.04, l2_per_id=0.0),
        ),
        ("per-id prior x 2", dict(l2_per_id=best.l2_per_id * 2)),
        ("learning rate / 2", dict(learning_rate=best.learning_rate / 2)),
        ("learning rate x 2", dict(learning_rate=best.learning_rate * 2)),
        (
            "batch 128, learning rate / 2",
            dict(batch_size=128, learning_rate=best.learning_rate / 2),
        ),
        (
            "batch 2048, learning rate x 2",
            dict(batch_size=2048, learning_rate=best.learning_rate * 2),
        ),
        ("no start at the mean rating", dict(init_at_mean_rating=False)),
        ("no biases", dict(use_biases=False)),
        (
            "QR on all ids, mult (m from the budget)",
            dict(user_embedding=qr_spec(), movie_embedding=qr_spec()),
        ),
        (
            "QR on all ids, add",
            dict(user_embedding=qr_spec(operation="add"), movie_embedding=qr_spec(operation="add")),
        ),
        (
            "QR on all ids, concat",
            dict(
                user_embedding=qr_spec(operation="concat"),
                movie_embedding=qr_spec(operation="concat"),
            ),
        ),
        (
            "QR on all ids, mult, 3 partitions",
            dict(
                user_embedding=qr_spec(num_partitions=3), movie_embedding=qr_spec(num_partitions=3)
            ),
        ),
        (
            "8 blocks, the rarest a QR table, mult (preset md_qr_16x)",
            both(blocks=8, tail_qr={"operation": "mult"}),
        ),
        (
            "8 blocks, the rarest a QR table, concat",
            both(blocks=8, tail_qr={"operation": "concat"}),
        ),
        ("QR (mult) on all users, movies unchanged", dict(user_embedding=qr_spec())),
    ]
    return [Step("16x, one change", label, best.replace(**change)) for label, change in variants]


GROUPS = {"ladder": full_ladder, "full": full_one_change, "16x": compressed_one_change}


def ablation_markdown(
    rows: List[Dict], command: str, machine: Dict, dataset: str, seconds: float
) -> str:
    lines = ["# Ablation on ML-100K", ""]
    lines += report.machine_lines(command, machine, seconds)
    lines += [
        "",
        dataset,
        "",
        "Mean of the seeds; val RMSE at the best epoch. `delta` is against the previous row "
        "in the ladder and against the group's reference (first) row elsewhere; negative "
        "is better.",
    ]
    columns = [
        ("change", "change", "s"),
        ("embedding params", "embedding_params", ",d"),
        ("compression", "compression", ".1f"),
        ("val RMSE", "val_rmse", ".4f"),
        ("± std", "val_rmse_std", ".4f"),
        ("delta", "delta", "+.4f"),
        ("val MAE", "val_mae", ".4f"),
        ("best epoch", "best_epoch", ".1f"),
        ("seconds/run", "seconds", ".0f"),
    ]
    groups: Dict[str, List[Dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    for group, members in groups.items():
        lines += ["", f"## {group}", ""] + report.table_lines(members, columns)
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation",
        description="One-change-at-a-time tuning ablation on ML-100K.",
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds per row (default: %(default)s)")
    parser.add_argument(
        "--groups", default=",".join(GROUPS), help="comma-separated groups (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=quality.RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.ablation " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    try:
        data = datasets.load(DATASET)
    except datasets.DatasetUnavailable as error:
        print(f"skipping the ablation: {error}")
        return 0
    print(data.describe(), flush=True)
    recipe = quality.RECIPES[DATASET]
    full_params = training.full_table_params(data, quality.REFERENCE_DIM)
    machine = quality.machine_description()
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    rows: List[Dict] = []
    for group in [g.strip() for g in args.groups.split(",") if g.strip()]:
        steps = GROUPS[group]()
        reference = previous = None
        for step in steps:
            config = recipe.apply(step.model, is_seed=False)
            summary = training.train_seeds(config, data, seeds)
            against = previous if step.compare_to_previous else reference
            row = {
                "group": step.group,
                "change": step.change,
                **summary.as_dict(),
                "compression": round(full_params / summary.embedding_params, 2),
                "delta": None if against is None else round(summary.val_rmse - against, 4),
                "model": json.loads(config.to_json()),
            }
            rows.append(row)
            reference = summary.val_rmse if reference is None else reference
            previous = summary.val_rmse
            print(
                f"{step.group:18s} {step.change[:60]:60s} val RMSE {row['val_rmse']:.4f} "
                f"delta {row['delta'] if row['delta'] is not None else '':>8} "
                f"({row['compression']:.1f}x, epoch {row['best_epoch']:.1f}, "
                f"{row['seconds']:.0f}s/run) [{(time.perf_counter() - started) / 60:.1f} min]",
                flush=True,
            )
            args.out.mkdir(parents=True, exist_ok=True)
            payload = {
                "command": command.strip(),
                "machine": machine,
                "dataset": data.describe(),
                "rows": rows,
            }
            (args.out / "ablation.json").write_text(json.dumps(payload, indent=2) + "\n")
            (args.out / "ablation.md").write_text(
                ablation_markdown(
                    rows, command.strip(), machine, data.describe(), time.perf_counter() - started
                )
            )
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
