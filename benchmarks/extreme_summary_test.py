"""Tests for benchmarks/extreme_summary.py: the verdicts follow the rows."""

from benchmarks import extreme_summary

HEAD_BIAS = {"type": "md", "block_fractions": [0.3, 0.7]}
QR_BIAS = {"type": "qr", "operation": "add", "compression": 2.6}


def row(config, rmse, technique, budget=None, std=0.0001, params=1000, bias=QR_BIAS):
    model = {"embedding_dim": 4, "user_embedding": {"type": technique}}
    model.update(movie_embedding=model["user_embedding"], user_bias=bias, movie_bias=bias)
    return {
        "dataset": "set",
        "config": config,
        "technique": technique,
        "budget": budget,
        "val_rmse": rmse,
        "val_rmse_std": std,
        "id_params": params,
        "model": model,
    }


PAYLOAD = {
    "command": "python -m benchmarks.quality --group extreme",
    "rows": [
        row("baseline", 0.90, "full"),
        row("biases_only", 0.95, "biases"),
        row("hash_64x", 0.95, "hash", 64),
        row("hash_128x", 0.99, "hash", 128),
        row("hash_all_128x", 0.98, "hash", 128, bias={"type": "hash"}),
        row("qr_add2_128x", 0.985, "qr", 128),
        row("qr_add2_head_128x", 0.97, "qr", 128, params=1010, bias=HEAD_BIAS),
    ],
}


def test_the_best_qr_family_row_is_held_against_the_hashing_trick_on_every_table():
    lines = extreme_summary.hashing_table(PAYLOAD)
    [at_128x] = [line for line in lines if "| 128x |" in line]
    assert "`qr_add2_head_128x` 0.9700 vs `hash_all_128x` 0.9800 | +0.0100 | 0.0002" in at_128x
    assert at_128x.endswith("**yes**, with 1.00% more parameters |")
    # At 64x, with no QR row, there is nothing to compare.
    assert not any("| 64x |" in line for line in lines)


def test_the_kinds_table_names_the_best_of_each_kind_and_the_gap_to_full():
    lines = extreme_summary.kinds_table(PAYLOAD)
    assert "biases only 0.9500 ± 0.0001 (+5.56%)" in lines[2]
    [at_128x] = [line for line in lines if "| 128x |" in line]
    assert "`qr_add2_128x` 0.9850" in at_128x and "`qr_add2_head_128x` 0.9700" in at_128x
    assert at_128x.endswith("`qr_add2_head_128x` +7.78% |")
    [at_64x] = [line for line in lines if "| 64x |" in line]
    assert at_64x.endswith("`biases_only` +5.56% |")  # a tie goes to the simpler row


def test_the_rule_pick_is_the_row_built_as_the_rule_says():
    def rule(dataset):
        settings = dict(PAYLOAD["rows"][5]["model"])  # qr_add2_128x's
        return lambda b: settings

    lines = extreme_summary.rule_table(PAYLOAD, rule)
    [at_128x] = [line for line in lines if "| 128x |" in line]
    assert at_128x.startswith("| set | 128x | `qr_add2_128x` 0.9850 ± 0.0001 |")
    assert at_128x.endswith("`qr_add2_head_128x` 0.9700 ± 0.0001 | +0.0150 |")
    [at_64x] = [line for line in lines if "| 64x |" in line]
    assert "no such row ran" in at_64x
    unavailable = extreme_summary.rule_table(PAYLOAD, lambda dataset: None)
    assert "| set | 128x | data set unavailable | | |" in unavailable
