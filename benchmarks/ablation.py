"""The ``ablation`` rows of ``benchmarks.quality``: every tuning decision, one change at a time.

* ``full ladder``: from the keras-io seed's baseline to the tuned full model
  (preset ``full``), one cumulative change per row, each compared with the
  row before it;
* ``full, one change``: the tuned full model with one setting moved;
* ``16x, one change``: the default preset with one setting moved: MD alpha,
  blocks, projections and rounding; QR combiner and where QR applies; L2 and
  the per-id prior; learning rate, batch size, biases, start at the mean.

The rows of the last two are compared with their group's first row.

    python -m benchmarks.quality --group ablation
"""

from __future__ import annotations

from benchmarks import quality
from trainer import model_config

BUDGET = 16


def _group(name: str, base, variants: list[tuple[str, dict]], ladder=False) -> list:
    rows, changes = [], {}
    for i, (label, change) in enumerate(variants):
        changes = {**changes, **change} if ladder else change
        versus = variants[i - 1 if ladder else 0][0] if i else None
        model = base.replace(**changes)
        rows.append(quality.Entry(label, model, group=name, versus=versus))
    return rows


def full_ladder() -> list:
    full = model_config.preset("full")
    return _group(
        "full ladder",
        model_config.SEED_BASELINE.replace(name="ladder"),
        [
            ("seed baseline (sigmoid * 5, no biases, no L2), trained to early stopping", {}),
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
        ],
        ladder=True,
    )


def _schedule(config) -> list[tuple[str, dict]]:
    """Learning rate and batch size, halved and doubled."""
    rate = config.learning_rate
    return [
        ("learning rate / 2", dict(learning_rate=rate / 2)),
        ("learning rate x 2", dict(learning_rate=rate * 2)),
        ("batch 128, learning rate / 2", dict(batch_size=128, learning_rate=rate / 2)),
        ("batch 2048, learning rate x 2", dict(batch_size=2048, learning_rate=rate * 2)),
    ]


def full_one_change() -> list:
    full = model_config.preset("full")
    normal = {"class_name": "RandomNormal", "config": {"stddev": 0.1}}
    return _group(
        "full, one change",
        full,
        [
            ("preset full (reference)", {}),
            ("L2 0.04", dict(l2=0.04)),
            ("L2 0.12", dict(l2=0.12)),
            ("bias L2 = factor L2", dict(bias_l2=None)),
            ("per-id prior: L2 0.05 plus l2_per_id 5", dict(l2=0.05, l2_per_id=5.0)),
            ("sigmoid head over [0, 5]", dict(rating_head="sigmoid", min_rating=0.0)),
            ("no start at the mean rating", dict(init_at_mean_rating=False)),
            ("init normal(0, 0.1) instead of uniform(+-0.05)", dict(embeddings_initializer=normal)),
            ("plain Adam (beta_2 0.999, epsilon 1e-7)", dict(adam_beta_2=0.999, adam_epsilon=1e-7)),
            ("AdamW weight decay 0.004 instead of per-row L2", dict(l2=0.0, weight_decay=0.004)),
            *_schedule(full),
        ],
    )


def compressed_one_change() -> list:
    best = model_config.preset(model_config.DEFAULT_MODEL)
    ratio = BUDGET * best.embedding_dim / quality.REFERENCE_DIM

    def both(**changes):
        return dict(
            user_embedding={**best.user_embedding, **changes},
            movie_embedding={**best.movie_embedding, **changes},
        )

    def qr(users_only=False, **changes):
        spec = {"type": "qr", "operation": "mult", "compression": ratio, **changes}
        return (
            dict(user_embedding=spec)
            if users_only
            else dict(user_embedding=spec, movie_embedding=spec)
        )

    uniform = {"type": "full"}
    return _group(
        "16x, one change",
        best,
        [
            (f"preset {best.name} (reference)", {}),
            (
                "uniform 4-d tables instead (same budget)",
                dict(
                    embedding_dim=quality.REFERENCE_DIM // BUDGET,
                    user_embedding=uniform,
                    movie_embedding=uniform,
                ),
            ),
            *((f"MD alpha {a:g}", both(alpha=a)) for a in (0.0, 0.3, 0.6)),
            *((f"MD {n} blocks", both(blocks=n)) for n in (2, 8)),
            ("MD learned projections instead of zero padding", both(projection="learned")),
            ("MD budget left by rounding not spent (no fill_budget)", both(fill_budget=False)),
            ("L2 / 2", dict(l2=best.l2 / 2)),
            ("L2 x 2", dict(l2=best.l2 * 2)),
            (
                "no per-id prior: L2 0.04 per lookup alone (the preset before it)",
                dict(l2=0.04, l2_per_id=0.0),
            ),
            ("per-id prior x 2", dict(l2_per_id=best.l2_per_id * 2)),
            *_schedule(best),
            ("no start at the mean rating", dict(init_at_mean_rating=False)),
            ("no biases", dict(use_biases=False)),
            ("QR on all ids, mult (m from the budget)", qr()),
            ("QR on all ids, add", qr(operation="add")),
            ("QR on all ids, concat", qr(operation="concat")),
            ("QR on all ids, mult, 3 partitions", qr(num_partitions=3)),
            (
                "8 blocks, the rarest a QR table, mult (preset md_qr_16x)",
                both(blocks=8, tail_qr={"operation": "mult"}),
            ),
            (
                "8 blocks, the rarest a QR table, concat",
                both(blocks=8, tail_qr={"operation": "concat"}),
            ),
            ("QR (mult) on all users, movies unchanged", qr(users_only=True)),
        ],
    )


def entries() -> list:
    return full_ladder() + full_one_change() + compressed_one_change()
