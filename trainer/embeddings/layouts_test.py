"""Pins the tables every preset and a range of specs build on fixed counts.

The expected layouts were recorded from the code before the embedding specs
became typed objects: a refactor of how a spec resolves must build the same
tables (blocks, dims, buckets), or the presets' benchmark figures no longer
describe them.
"""

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
    if kind == "Embedding":
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


PRESETS = {
    "ml100k": {
        "baseline": ("full 944x64", "full 1683x64"),
        "full": ("full 944x64", "full 1683x64"),
        "md_16x": (
            "md nested 0/118/352/635/944 dims 4/4/4/4",
            "md nested 0/8/72/412/1683 dims 4/4/4/4",
        ),
        "md_qr_16x": (
            "md nested 0/36/118/227/352/489/635/786/944 dims 7/6/5/5/4/4/4/4 tail 13x4,13x4",
            "md nested 0/2/8/26/72/180/412/866/1683 dims 7/7/7/7/7/7/7/7 tail 29x7,29x7",
        ),
        "qr_16x": ("qr 944x16 m=469 k=2 concat", "qr 1683x16 m=838 k=2 concat"),
        "qr_md": ("qr 944x64 m=31 k=2 mult", "md learned 0/182/772/1683 dims 64/32/16"),
        "uniform_16x": ("full 944x4", "full 1683x4"),
    },
    "skewed": {
        "baseline": ("full 6041x64", "full 3707x64"),
        "full": ("full 6041x64", "full 3707x64"),
        "md_16x": (
            "md nested 0/907/2351/4089/6041 dims 4/4/4/4",
            "md nested 0/2/19/202/3707 dims 4/4/4/4",
        ),
        "md_qr_16x": (
            "md nested 0/348/907/1585/2351/3190/4089/5042/6041 dims 6/5/5/5/5/4/4/4 tail 32x4,32x4",
            "md nested 0/1/2/7/19/58/202/821/3707 dims 6/6/6/6/6/6/6/6 tail 54x6,54x6",
        ),
        "qr_16x": ("qr 6041x16 m=3017 k=2 concat", "qr 3707x16 m=1850 k=2 concat"),
        "qr_md": ("qr 6041x64 m=78 k=2 mult", "md learned 0/400/1700/3707 dims 64/32/16"),
        "uniform_16x": ("full 6041x4", "full 3707x4"),
    },
    "tiny": {
        "baseline": ("full 3x64", "full 2x64"),
        "full": ("full 3x64", "full 2x64"),
        "md_16x": ("md nested 0/1/3 dims 4/4", "md nested 0/2 dims 4"),
        "md_qr_16x": ("md nested 0/1/3 dims 4/4", "md nested 0/2 dims 4"),
        "qr_16x": ("qr 3x16 m=2 k=2 concat", "full 2x16"),
        "qr_md": ("qr 3x64 m=2 k=2 mult", "md learned 0/2 dims 64"),
        "uniform_16x": ("full 3x4", "full 2x4"),
    },
    "aligned": {
        "baseline": ("full 944x64", "full 1683x64"),
        "full": ("full 944x64", "full 1683x64"),
        "md_16x": (
            "md nested 0/126/276/472/944 dims 4/4/4/4",
            "md nested 0/37/225/716/1683 dims 4/4/4/4",
        ),
        "md_qr_16x": (
            "md nested 0/61/126/198/276/366/472/610/944 dims 7/6/6/6/6/6/5/5 tail 19x5,18x5",
            "md nested 0/8/37/103/225/422/716/1129/1683 dims 7/7/7/6/6/6/5/5 tail 24x5,24x5",
        ),
        "qr_16x": ("qr 944x16 m=469 k=2 concat", "qr 1683x16 m=838 k=2 concat"),
        "qr_md": ("qr 944x64 m=31 k=2 mult", "md learned 0/182/772/1683 dims 64/32/16"),
        "uniform_16x": ("full 944x4", "full 1683x4"),
    },
}

SPECS = [
    ({"compression": 20.0, "num_partitions": 3, "type": "qr"}, 16, "qr 944x16 m=22 k=3 mult"),
    ({"num_buckets": 40, "operation": "add", "type": "qr"}, 16, "qr 944x16 m=40 k=2 add"),
    ({"threshold": 2000, "type": "qr"}, 16, "full 944x16"),
    ({"type": "md"}, 32, "md learned 0/118/352/635/944 dims 32/26/25/24"),
    (
        {
            "alpha": 0.5,
            "blocks": 3,
            "min_dim": 2,
            "param_budget": 9000,
            "round_to_power_of_two": True,
            "type": "md",
        },
        32,
        "md learned 0/188/537/944 dims 8/8/8",
    ),
    (
        {"alpha": 0.3, "blocks": 5, "compression": 6.0, "fill_budget": True, "type": "md"},
        32,
        "md learned 0/81/251/461/694/944 dims 7/5/4/4/4",
    ),
    (
        {
            "alpha": 0.2,
            "blocks": 8,
            "compression": 8.0,
            "fill_budget": True,
            "max_dim": 20,
            "projection": "nested",
            "tail_qr": {"operation": "concat"},
            "type": "md",
        },
        32,
        "md nested 0/36/118/227/352/489/635/786/944 dims 7/5/5/5/5/4/4/4 tail 13x2,13x2",
    ),
    (
        {"alpha": 0.4, "base_dim": 24, "block_fractions": [0.1, 0.3, 0.6], "type": "md"},
        32,
        "md learned 0/94/377/944 dims 24/18/16",
    ),
    (
        {
            "block_sizes": [10, 100, 833],
            "dims": [32, 8, 2],
            "tail_qr": {"num_buckets": 40, "num_partitions": 2},
            "type": "md",
        },
        32,
        "md learned 0/10/110/944 dims 32/8/2 tail 40x2,21x2",
    ),
    (
        {
            "blocks": 4,
            "param_budget": 6000,
            "tail_qr": {"compression": 3.0, "operation": "mult"},
            "type": "md",
        },
        32,
        "md learned 0/118/352/635/944 dims 8/7/6/6 tail 99x6,4x6",
    ),
]

PAIRS = [
    (
        {
            "alpha": 0.3,
            "blocks": 4,
            "compression": 8.0,
            "fill_budget": True,
            "projection": "nested",
            "type": "md",
        },
        {"alpha": 0.5, "blocks": 3, "param_budget": 20000, "projection": "nested", "type": "md"},
        "md nested 0/126/276/472/944 dims 6/5/4/3",
        "md nested 0/75/508/1683 dims 6/3/2",
    ),
    (
        {"alpha": 0.5, "base_dim": 4, "blocks": 3, "projection": "nested", "type": "md"},
        {
            "alpha": 0.3,
            "blocks": 5,
            "fill_budget": True,
            "param_budget": 20000,
            "projection": "nested",
            "type": "md",
        },
        "md nested 0/173/399/944 dims 4/4/2",
        "md nested 0/22/122/376/866/1683 dims 4/4/4/4/4",
    ),
    (
        {"alpha": 0.3, "blocks": 4, "param_budget": 12000, "projection": "nested", "type": "md"},
        {"dims": [12, 6], "projection": "nested", "type": "md"},
        "md nested 0/126/276/472/944 dims 12/11/11/8",
        "md nested 0/225/1683 dims 12/6",
    ),
    (
        {"dims": [12, 6], "projection": "nested", "type": "md"},
        {
            "alpha": 0.2,
            "blocks": 6,
            "compression": 4.0,
            "fill_budget": True,
            "projection": "nested",
            "tail_qr": {},
            "type": "md",
        },
        "md nested 0/276/944 dims 12/6",
        "md nested 0/14/75/225/508/977/1683 dims 12/12/12/12/12/12 tail 27x12,27x12",
    ),
    (
        {
            "alpha": 0.3,
            "blocks": 4,
            "compression": 8.0,
            "fill_budget": True,
            "projection": "learned",
            "type": "md",
        },
        {"alpha": 0.5, "base_dim": 10, "blocks": 3, "projection": "nested", "type": "md"},
        "md learned 0/126/276/472/944 dims 5/5/4/2",
        "md nested 0/75/508/1683 dims 10/4/3",
    ),
]


@pytest.mark.parametrize("counts", sorted(COUNTS))
@pytest.mark.parametrize("preset", sorted(model_config.PRESETS))
def test_every_preset_builds_the_pinned_tables(counts, preset):
    layers = model_lib.id_embeddings(model_config.PRESETS[preset], *COUNTS[counts])
    assert tuple(describe(layer) for layer in layers.values()) == PRESETS[counts][preset]


@pytest.mark.parametrize("spec, width, expected", SPECS)
def test_a_spec_builds_its_pinned_table(spec, width, expected):
    assert describe(build_embedding(spec, COUNTS["ml100k"][0], 1, width, "t")) == expected


@pytest.mark.parametrize("user, movie, expected_user, expected_movie", PAIRS)
def test_two_specs_build_their_pinned_tables(user, movie, expected_user, expected_movie):
    config = model_config.ModelConfig(embedding_dim=32, user_embedding=user, movie_embedding=movie)
    layers = model_lib.id_embeddings(config, *COUNTS["aligned"])
    assert tuple(describe(layer) for layer in layers.values()) == (expected_user, expected_movie)
