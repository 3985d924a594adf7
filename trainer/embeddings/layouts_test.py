"""Pins the tables every preset and a range of specs build on fixed counts.

The expected layouts (``layouts_test.json``) were recorded from the code
before the embedding specs became typed objects: a refactor of how a spec
resolves must build the same tables (blocks, dims, buckets), or the presets'
benchmark figures no longer describe them.
"""

import json
import os

import pytest

from trainer import model as model_lib
from trainer import model_config
from trainer.embeddings import build_embedding

COUNTS = {
    "ml100k": (
        [int(400 / (i + 1) ** 0.6) + 20 for i in range(943)],
        [int(3000 / (i + 1) ** 0.9) + 1 for i in range(1682)],
    ),
    "skewed": (
        [int(300 / (i + 1) ** 0.3) + 5 for i in range(6040)],
        [int(20000 / (i + 1) ** 1.1) + 1 for i in range(3706)],
    ),
    "tiny": ([3, 2], [1]),
    # Movies far more skewed than users: nested MD tables get cut to one width.
    "aligned": (
        list(range(943, 0, -1)),
        [int(5000 / (i + 1) ** 0.7) + 1 for i in range(1682)],
    ),
}


def describe(layer):
    kind = type(layer).__name__
    if kind in ("Embedding", "RowEmbedding"):
        return f"full {layer.input_dim}x{layer.output_dim}"
    if kind == "QREmbedding":
        return (
            f"qr {layer.input_dim}x{layer.output_dim} m={layer.num_buckets} "
            f"k={layer.num_partitions} {layer.operation}"
        )
    text = (
        f"md {layer.projection} {'/'.join(map(str, layer.block_offsets))} "
        f"dims {'/'.join(map(str, layer.block_dims))}"
    )
    tail = [f"{t['rows']}x{t['dim']}" for t in layer.tables() if "_qr_" in t["name"]]
    return text + (f" tail {','.join(tail)}" if tail else "")


with open(os.path.join(os.path.dirname(__file__), "layouts_test.json")) as f:
    EXPECTED = json.load(f)


@pytest.mark.parametrize("counts", sorted(COUNTS))
@pytest.mark.parametrize("preset", sorted(model_config.PRESETS))
def test_every_preset_builds_the_pinned_tables(counts, preset):
    layers = model_lib.id_embeddings(model_config.PRESETS[preset], *COUNTS[counts])
    assert tuple(describe(layer) for layer in layers.values()) == tuple(
        EXPECTED["presets"][counts][preset]
    )


@pytest.mark.parametrize("spec, width, expected", EXPECTED["specs"])
def test_a_spec_builds_its_pinned_table(spec, width, expected):
    assert describe(build_embedding(spec, COUNTS["ml100k"][0], 1, width, "t")) == expected


@pytest.mark.parametrize("user, movie, expected_user, expected_movie", EXPECTED["pairs"])
def test_two_specs_build_their_pinned_tables(user, movie, expected_user, expected_movie):
    config = model_config.ModelConfig(embedding_dim=32, user_embedding=user, movie_embedding=movie)
    layers = model_lib.id_embeddings(config, *COUNTS["aligned"])
    assert tuple(describe(layer) for layer in layers.values()) == (expected_user, expected_movie)
