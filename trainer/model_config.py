"""Model and training settings, passed to the Trainer as ``custom_config``.

Everything the model builder needs lives here, so no hyperparameter is
hard-coded in the model. The dataclass round-trips through JSON because TFX
stores ``custom_config`` as JSON in ML Metadata.
"""

import dataclasses
import json
from typing import Any, Dict, Optional


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
      l2: L2 penalty on embedding rows (and biases), per looked-up row.
      init_at_mean_rating: start the output bias so an untrained model
        predicts the training mean instead of sigmoid(0) * max_rating.
      max_rating: predictions are ``max_rating * sigmoid(score)``, so they lie
        in [0, max_rating] for any input, unknown ids included.
      learning_rate, batch_size, epochs: Adam settings and length of training.
      early_stopping_patience: epochs without eval improvement before stopping
        (best weights restored); 0 trains all ``epochs``.
      shuffle_buffer: rows shuffled together when reading the train split.
      seed: seeds Keras, TF and the input shuffle.
    """

    name: str = "custom"
    embedding_dim: int = 64
    user_embedding: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "full"})
    movie_embedding: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "full"})
    use_biases: bool = False
    l2: float = 0.0
    init_at_mean_rating: bool = False
    max_rating: float = 5.0
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 3
    early_stopping_patience: int = 0
    shuffle_buffer: int = 100_000
    seed: int = 42

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown model setting(s) {unknown}; known: {sorted(known)}")
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

PRESETS = {c.name: c for c in (SEED_BASELINE, SEED_QR_MD)}


def preset(name: str, overrides: Optional[Dict[str, Any]] = None) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[name]
    return config.replace(**overrides) if overrides else config

# The preset local_runner.py and the pipeline use unless told otherwise.
DEFAULT_MODEL = "qr_md"
