"""Model and training settings, passed to the Trainer as ``custom_config``.

Everything the model builder needs lives here, so no hyperparameter is
hard-coded in the model. The dataclass round-trips through JSON because TFX
stores ``custom_config`` as JSON in ML Metadata.
"""

import dataclasses
import json
from typing import Any

from trainer import embeddings
from trainer.embeddings.spec import is_int as _is_int
from trainer.embeddings.spec import is_number as _is_number
from trainer.embeddings.spec import shown as _shown

# How a score becomes a rating; see ModelConfig.rating_head.
RATING_HEADS = ("sigmoid", "linear")
ROW_UPDATES = ("catch_up", "lazy", "dense")

# numpy's seeds are 32-bit.
_MAX_SEED = 2**32 - 1


class SettingError(ValueError):
    """A model setting out of its type or range; ``setting`` names the field.

    The message is one line: ``batch_size must be an integer >= 1, got 0``, or
    ``user_embedding: unknown key ...`` for a table spec, whose ``detail`` is
    the spec's own message (what the runners print after the flag that set it).
    """

    def __init__(self, setting: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.setting = setting
        self.detail = message if detail is None else detail


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A rating model: two id embeddings, a dot product and a rating head.

    Attributes:
      name: the preset's name, recorded in the model's reports.
      embedding_dim: width of the vectors whose dot product scores a pair.
      user_embedding: spec of the user table (see ``trainer.embeddings``),
        e.g. ``{"type": "qr", "num_buckets": 32}``.
      movie_embedding: spec of the movie table, e.g. ``{"type": "md", ...}``.
      use_biases: add a per-user and a per-movie scalar bias.
      user_bias, movie_bias: the bias tables' specs, as the embedding specs
        but one wide (``{"type": "full"}``: one scalar per id). A compressed
        table (``{"type": "hash", "compression": 16}``, or QR with operation
        "add") keeps the biases inside a memory budget: at 64x and beyond a
        full bias table alone is as large as the compressed embeddings.
      l2: L2 penalty on embedding rows (and biases), per looked-up row.
      l2_per_id: an L2 penalty each id pays once per epoch whatever its
        frequency, spread over its lookups (``l2_per_id / count`` per lookup,
        on top of ``l2``): the prior of Bayesian matrix factorisation, which
        shrinks rare ids hardest (see ``trainer.model.RowL2``). In the units
        of the squared error of one rating.
      bias_l2_per_id: the same for the biases.
      bias_l2: L2 penalty on the per-user and per-movie biases, per looked-up
        row; None uses ``l2``.
      init_at_mean_rating: start the output bias so an untrained model
        predicts the training mean instead of the middle of the rating range
        (for the seed's head, sigmoid(0) * max_rating = 2.5).
      rating_head: "sigmoid" (the seed's): ``min_rating + (max_rating -
        min_rating) * sigmoid(score)``, or "linear": the score itself, clipped
        to [min_rating, max_rating] on the forward pass with the unclipped
        gradient (see ``trainer.model.RatingHead``).
      min_rating, max_rating: the range every prediction lies in, for any
        input, unknown ids included. The seed's head spans [0, 5].
      embeddings_initializer: initializer of the id tables, as Keras accepts
        it in JSON (a name such as "uniform" or ``{"class_name":
        "RandomNormal", "config": {"stddev": 0.1}}``); None keeps each
        layer's default (uniform(-0.05, 0.05) for plain and MD tables, a
        variance-matched uniform for QR tables).
      weight_decay: if > 0, AdamW's decoupled weight decay on every weight,
        on top of (or instead of) the per-row ``l2``.
      row_updates: how Adam trains the id-indexed tables (``trainer.row_sparse``).
        "catch_up" (the default): only the rows a batch looks up, each first
        caught up on the steps it sat out, so the tables train as under dense
        Adam at the batch's cost. "lazy": only those rows, the steps sat out
        skipped (TF Addons' LazyAdam; a rare id learns more slowly). "dense":
        Keras' Adam on every row every step, for comparison (a step costs the
        vocabulary). Decoupled ``weight_decay`` is dense whatever this says.
      learning_rate, batch_size, epochs: Adam settings and length of training.
      adam_beta_2, adam_epsilon: Adam's second-moment decay and epsilon. An
        embedding row gets a gradient only in the batches that hold its id,
        so its second moment decays between sightings and plain Adam takes
        large steps on rare ids; a shorter memory (beta_2 0.99) and a larger
        epsilon temper that.
      early_stopping_patience: epochs without eval improvement before stopping
        (best weights restored); 0 trains all ``epochs``.
      input_in_memory: true reads each split once into memory and draws every
        epoch's batches from a fresh permutation of its rows (about 20 bytes a
        rating). false streams the TFRecords every epoch through a
        ``shuffle_buffer``-row shuffle instead, for splits that do not fit in
        memory; decoding them each epoch is most of the Trainer's time on
        small data. null (the default) decides from the splits' size and the
        memory available (``trainer.input_plan``), and logs the plan.
      shuffle_buffer: rows shuffled together when streaming the train split.
      seed: seeds Keras, TF and the input shuffle.
    """

    name: str = "custom"
    embedding_dim: int = 64
    user_embedding: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "full"})
    movie_embedding: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "full"})
    use_biases: bool = False
    user_bias: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "full"})
    movie_bias: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "full"})
    l2: float = 0.0
    bias_l2: float | None = None
    l2_per_id: float = 0.0
    bias_l2_per_id: float = 0.0
    init_at_mean_rating: bool = False
    rating_head: str = "sigmoid"
    min_rating: float = 0.0
    max_rating: float = 5.0
    embeddings_initializer: Any | None = None
    weight_decay: float = 0.0
    row_updates: str = "catch_up"
    learning_rate: float = 1e-3
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-7
    batch_size: int = 128
    epochs: int = 3
    early_stopping_patience: int = 0
    input_in_memory: bool | None = None
    shuffle_buffer: int = 100_000
    seed: int = 42

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Checks every setting's type and range, and the table specs' keys.

        Runs on construction, so a preset, a ``replace`` and ``from_dict``
        (the runners' ``--model-settings``, the Trainer's ``custom_config``)
        are all checked before anything is built. What depends on the data
        (a table larger than the vocabulary allows) is settled by
        ``trainer.embeddings.build_tables`` in the Trainer.

        Raises:
          SettingError: naming the setting and what it allows, in one line.
        """

        def fail(name: str, allowed: str):
            raise SettingError(name, f"{name} must be {allowed}, got {_shown(getattr(self, name))}")

        def integer(name: str, low: int, high: int | None = None):
            value = getattr(self, name)
            if not _is_int(value) or value < low or (high is not None and value > high):
                fail(
                    name,
                    f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]",
                )

        def number(name: str, low: float | None, inclusive=True, optional=False):
            value = getattr(self, name)
            if value is None and optional:
                return
            if not _is_number(value) or (
                low is not None and (value < low or (value == low and not inclusive))
            ):
                allowed = (
                    "a finite number"
                    if low is None
                    else (f"a number {'>=' if inclusive else '>'} {low:g}")
                )
                fail(name, allowed + (" or null" if optional else ""))

        def boolean(name: str):
            if not isinstance(getattr(self, name), bool):
                fail(name, "true or false")

        if not isinstance(self.name, str) or not self.name:
            fail("name", "a non-empty string")
        integer("embedding_dim", 1)
        for name in ("use_biases", "init_at_mean_rating"):
            boolean(name)
        if not (self.input_in_memory is None or isinstance(self.input_in_memory, bool)):
            fail("input_in_memory", "true, false or null (decide from the data's size)")
        for name in ("l2", "l2_per_id", "bias_l2_per_id", "weight_decay"):
            number(name, 0)
        number("bias_l2", 0, optional=True)
        if self.rating_head not in RATING_HEADS:
            fail("rating_head", "one of " + ", ".join(_shown(h) for h in RATING_HEADS))
        if self.row_updates not in ROW_UPDATES:
            fail("row_updates", "one of " + ", ".join(_shown(h) for h in ROW_UPDATES))
        number("min_rating", None)
        number("max_rating", None)
        if not self.min_rating < self.max_rating:
            raise SettingError(
                "max_rating",
                f"min_rating must be below max_rating, got {self.min_rating:g} and "
                f"{self.max_rating:g}",
            )
        initializer = self.embeddings_initializer
        if not (initializer is None or isinstance(initializer, (str, dict))):
            fail(
                "embeddings_initializer",
                'a Keras initializer name, a {"class_name": ...} object or null',
            )
        number("learning_rate", 0, inclusive=False)
        value = self.adam_beta_2
        if not _is_number(value) or not 0 <= value < 1:
            fail("adam_beta_2", "a number in [0, 1)")
        number("adam_epsilon", 0, inclusive=False)
        integer("batch_size", 1)
        integer("epochs", 1)
        integer("early_stopping_patience", 0)
        integer("shuffle_buffer", 1)
        integer("seed", 0, _MAX_SEED)
        widths = {"user_embedding": self.embedding_dim, "movie_embedding": self.embedding_dim}
        widths.update(user_bias=1, movie_bias=1)  # a bias table is one wide
        for name, width in widths.items():
            try:
                embeddings.parse(getattr(self, name), width)
            except embeddings.SpecError as error:
                raise SettingError(name, f"{name}: {error}", detail=str(error)) from None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """The config from JSON-like values; every setting is checked (``validate``)."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [name for name in values if name not in known]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            raise SettingError(
                unknown[0],
                f"unknown setting{'s' if len(unknown) > 1 else ''} {names} "
                f"(known: {', '.join(known)})",
            )
        return cls(**values)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


# The keras-io "memory_efficient_embeddings" baseline: 64-d tables, dot
# product, sigmoid * 5, MSE, Adam 1e-3, batch 128, 3 epochs.
SEED_BASELINE = ModelConfig(name="baseline")

# The keras-io example's compressed model: QR users (about sqrt(n) buckets)
# and MD movies in three popularity blocks of 64/32/16 dims, cut at ranks
# 400 and 1700 of MovieLens-1M's 3,706 movies.
SEED_QR_MD = ModelConfig(
    name="qr_md",
    user_embedding={"type": "qr", "operation": "mult"},
    movie_embedding={
        "type": "md",
        "block_fractions": [400 / 3706, 1300 / 3706, 2006 / 3706],
        "dims": [64, 32, 16],
    },
)

# The tuned full model: 64-d tables, per-user and per-movie biases, an output
# that starts at the mean rating and adds the dot product linearly, per-row
# L2 on the factors (almost none on the biases) and an Adam whose short
# second-moment memory keeps rare ids from taking outsized steps.
FULL = ModelConfig(
    name="full",
    use_biases=True,
    l2=0.08,
    bias_l2=0.001,
    init_at_mean_rating=True,
    rating_head="linear",
    min_rating=0.5,
    learning_rate=4e-3,
    adam_beta_2=0.99,
    adam_epsilon=1e-4,
    batch_size=512,
    epochs=30,
    early_stopping_patience=2,
)

# The compressed presets train like FULL with less per-row L2, because a
# narrow table already limits what each row can fit, plus a per-id prior
# (``l2_per_id``), because it shrinks the ids with few ratings, the rows a
# narrow table can least afford to spend on noise (benchmarks/results/
# ablation.md). Their budgets are ``compression`` knobs, ratios to a full
# table of the model's own ``embedding_dim``, so they follow any vocabulary
# size: ``embedding_dim`` 16 at ratio 4 is 16x fewer parameters than full
# 64-d tables.
_COMPRESSED_DIM = 16
_RATIO_16X = 16 * _COMPRESSED_DIM / 64
_COMPRESSED = FULL.replace(embedding_dim=_COMPRESSED_DIM, l2=0.02, l2_per_id=5.0)

# Mixed-dimension tables on both sides: four blocks of equal lookup mass,
# dims by the alpha power rule (popular ids wide, rare ids narrow), each
# narrow block zero-padded into the shared width ("nested" projections).
# Alpha 0.1, a mild slope, because no layout that moves more of the budget
# to popular ids beat a flat one (benchmarks/results/md_layouts.md).
# Padding rather than learned projections, because a projection is shared by
# a whole block and updated by every example, so under Adam with a per-row
# L2 it shrinks and wanders before the rows it serves have learned anything,
# and it costs parameters. ``fill_budget`` spends what rounding the alpha
# rule to integers leaves of the budget, so an MD row is compared with a
# uniform table of the same size rather than a smaller one.
_MD_SPEC = {
    "type": "md",
    "blocks": 4,
    "alpha": 0.1,
    "compression": _RATIO_16X,
    "fill_budget": True,
    "projection": "nested",
}
MD_16X = _COMPRESSED.replace(name="md_16x", user_embedding=_MD_SPEC, movie_embedding=_MD_SPEC)

# Quotient-remainder tables on both sides, the remainder table as large as
# the budget allows. Ids are sorted by frequency, so the first
# ``num_buckets`` ids (the head) share only the first quotient row and keep
# vectors of their own; the tail shares them. "concat" (half the width from
# each table), because "mult" starts as a product of two small factors and
# barely leaves zero.
_QR_SPEC = {"type": "qr", "operation": "concat", "compression": _RATIO_16X}
QR_16X = _COMPRESSED.replace(name="qr_16x", user_embedding=_QR_SPEC, movie_embedding=_QR_SPEC)

# MD_16X whose rarest block is a QR table (m = sqrt(rows)): the long tail,
# which holds most rows but little of the lookups, costs almost nothing, so
# the budget widens the popular blocks. Eight blocks rather than four, so
# that the shared QR rows serve a smaller share of the lookups.
_MD_QR_SPEC = {**_MD_SPEC, "blocks": 8, "tail_qr": {"operation": "mult"}}
MD_QR_16X = MD_16X.replace(
    name="md_qr_16x", user_embedding=_MD_QR_SPEC, movie_embedding=_MD_QR_SPEC
)

# The honest competitor: plain 4-d tables, 16x fewer parameters than 64-d
# ones, trained like the compressed presets: the benchmark's ``uniform_16x``
# row, the bar every QR/MD preset is measured against
# (benchmarks/results/quality.md).
UNIFORM_16X = _COMPRESSED.replace(name="uniform_16x", embedding_dim=64 // 16)

PRESETS = {
    c.name: c for c in (SEED_BASELINE, SEED_QR_MD, FULL, MD_16X, QR_16X, MD_QR_16X, UNIFORM_16X)
}


def preset(name: str, overrides: dict[str, Any] | None = None) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[name]
    return config.replace(**overrides) if overrides else config


# The preset local_runner.py and the pipeline use unless told otherwise: the
# QR/MD configuration at 16x fewer embedding parameters than full 64-d tables
# with the smallest worst-case gap to uniform_16x across the benchmark's data
# sets (benchmarks/results/quality.md).
DEFAULT_MODEL = "md_16x"
