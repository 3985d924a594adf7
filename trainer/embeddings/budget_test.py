"""Tests for trainer/embeddings/budget.py: budgets parse, and fitted specs keep them."""

import math

import pytest

from trainer.embeddings import budget
from trainer.embeddings import build_tables
from trainer.embeddings.spec import Vocabulary

# Zipf-like counts, most frequent first, and one OOV row each.
VOCABS = {
    "user_embedding": Vocabulary.of([int(9000 / (i + 1)) + 1 for i in range(3000)], 1),
    "movie_embedding": Vocabulary.of([int(9000 / (i + 1)) + 1 for i in range(800)], 1),
}
IDS = {name: vocab.input_dim for name, vocab in VOCABS.items()}
TECHNIQUES = [
    {"type": "hash", "compression": 2},
    {"type": "qr", "operation": "mult", "compression": 2},
    {"type": "qr", "operation": "concat", "num_partitions": 3, "compression": 2},
    {"type": "md", "blocks": 4, "alpha": 0.1, "compression": 2, "projection": "nested"},
    {"type": "md", "dims": [1, 1], "projection": "nested", "tail_qr": {"num_partitions": 3}},
    {"type": "full"},
]


@pytest.mark.parametrize(
    "text, ratio, size",
    [("64x", 64, None), ("1.5X", 1.5, None), ("20MB", None, 20_000_000), ("512KiB", None, 524288)],
)
def test_a_budget_is_a_ratio_or_a_size(text, ratio, size):
    parsed = budget.Budget.parse(text)
    assert (parsed.ratio, parsed.bytes) == (ratio, size)


@pytest.mark.parametrize("text", ["", "x", "0.5x", "-3x", "2 apples", "1B", "64xx"])
def test_a_bad_budget_says_what_it_takes(text):
    with pytest.raises(budget.BudgetError, match="ratio|size"):
        budget.Budget.parse(text)


def test_a_ratio_counts_full_64d_tables_plus_full_biases():
    assert budget.reference_params(IDS) == (3001 + 801) * 65
    assert budget.Budget.parse("64x").params(IDS) == math.floor(3802 * 65 / 64)
    assert budget.Budget.parse("400B").params(IDS) == 100
    assert budget.Budget.parse("400B").ratio_for(IDS) == pytest.approx(3802 * 65 / 100)


def test_biases_are_full_when_they_fit_then_qr_then_hashed():
    vocab = {"b": Vocabulary.of([1] * 999, 1)}

    def rows(spec):
        return build_tables({"b": spec}, vocab, 1)["b"]

    assert budget.bias_spec(1000, 1000) == {"type": "full"}
    spec = budget.bias_spec(1000, 200)
    m = rows(spec).num_buckets
    assert spec["operation"] == "add" and m + math.ceil(1000 / m) <= 200
    assert (m + 1) + math.ceil(1000 / (m + 1)) > 200  # the largest that fits
    assert budget.qr_add_buckets(1000, 200) == m
    hashed = budget.bias_spec(1000, 50)
    assert hashed["type"] == "hash" and rows(hashed).params == 50
    assert budget.bias_spec(1000, 0) is None
    skewed = Vocabulary.of([int(9000 / (i + 1)) + 1 for i in range(1000)], 1)
    head = budget.bias_spec(1001, 200, "head", skewed)
    rows = build_tables({"b": head}, {"b": skewed}, 1)["b"]
    assert head["type"] == "md" and rows.params <= 200


def test_head_biases_only_where_ids_are_rated_unequally():
    even = Vocabulary.of([10] * 990 + [9] * 10, 1)
    assert budget.rating_spread(even.counts) < budget.HEAD_MIN_SPREAD
    assert budget.bias_spec(1001, 200, "head", even) == budget.bias_spec(1001, 200)
    assert budget.bias_spec(1001, 200, "head") == budget.bias_spec(1001, 200)
    assert budget.rating_spread([]) == 0.0


@pytest.mark.parametrize("n, allowed", [(30_001, 11_425), (1_001, 200), (1_001, 120)])
def test_head_biases_fitted_to_a_larger_vocabulary_keep_its_ratio(n, allowed):
    # The local runner fits to every id in the file; Transform reads the train split's.
    zipf = Vocabulary.of([int(9000 / (i + 1)) + 1 for i in range(n - 1)], 1)
    spec = budget.bias_spec(n, allowed, "head", zipf)
    for share in (1.0, 0.9, 0.65):
        size = int(n * share)
        table = build_tables({"b": spec}, {"b": Vocabulary.of([1] * (size - 1), 1)}, 1)["b"]
        assert table.params <= allowed * size / n
        assert table.offsets[1] >= 1  # a head of own biases


@pytest.mark.parametrize("ratio", [8, 32, 64, 128, 256, 1024])
@pytest.mark.parametrize("spec", TECHNIQUES, ids=lambda s: s["type"] + str(len(s)))
def test_a_fitted_model_keeps_its_budget_counting_biases(spec, ratio):
    limit = budget.Budget(ratio=ratio).params(IDS)
    fitted = budget.fit(spec, VOCABS, limit, 16)
    if fitted is None:  # this technique cannot go that far; the narrowest ones can
        assert spec["type"] in ("full", "md", "qr") and ratio >= 64
        return
    tables = build_tables(fitted.embeddings, VOCABS, fitted.embedding_dim)
    resolved = {name: table.params for name, table in tables.items()}
    for name, bias in fitted.biases.items():
        if bias is not None:
            resolved[f"{name}_bias"] = build_tables({name: bias}, {name: VOCABS[name]}, 1)[
                name
            ].params
    assert sum(resolved.values()) == fitted.total <= limit
    # Full biases up to 64x; past it they alone would not fit.
    full = all(b == {"type": "full"} for b in fitted.biases.values())
    assert full == (ratio < budget.FULL_BIASES_UP_TO) or spec["type"] == "full"


def test_the_hashing_trick_reaches_any_budget_and_uniform_stops_at_one_dim():
    limit = budget.Budget(ratio=64).params(IDS)
    uniform = budget.fit({"type": "full"}, VOCABS, limit, 16)
    assert uniform.embedding_dim == 1
    assert budget.fit({"type": "full"}, VOCABS, limit // 2, 16) is None
    hashed = budget.fit({"type": "hash", "compression": 2}, VOCABS, 40, 16)
    assert hashed is not None and hashed.total <= 40


def test_a_memory_report_confirms_or_refuses_a_budget():
    def report(table_params, bias_params):
        return {
            "features": {"user_id": {"input_dim": 3001}, "movie_id": {"input_dim": 801}},
            "total": {"params": table_params},
            "biases": {"total": {"params": bias_params}},
        }

    limit = budget.Budget.parse("64x").params(IDS)
    kept, line = budget.check(report(limit - 3802, 3802), budget.Budget.parse("64x"))
    assert kept and line.endswith(f"limit {limit:,}: kept")
    kept, line = budget.check(report(limit, 3802), budget.Budget.parse("64x"))
    assert not kept and line.endswith("EXCEEDED")


def test_choose_falls_back_to_hashing_where_its_technique_does_not_fit():
    tiny = {"user_embedding": 30, "movie_embedding": 20}
    choice = budget.choose(budget.Budget.parse("1024x"), tiny)
    assert choice.technique == "hash" and choice.params <= choice.limit
    assert "does not fit" in choice.why


def test_choose_turns_the_per_id_prior_off_only_with_compressed_biases():
    at_32x = budget.choose(budget.Budget.parse("32x"), IDS).settings
    at_128x = budget.choose(budget.Budget.parse("128x"), IDS).settings
    assert at_32x["user_bias"] == {"type": "full"} and "l2_per_id" not in at_32x
    assert at_128x["user_bias"]["type"] != "full" and at_128x["l2_per_id"] == 0.0


def test_choose_tries_qr_concat_in_3_partitions_before_hashing():
    # ML-100K's vocabularies at 256x: QR add in 2 partitions does not fit, 3 do.
    ml_100k = {"user_embedding": 944, "movie_embedding": 1660}
    choice = budget.choose(budget.Budget.parse("256x"), ml_100k)
    assert choice.technique == "qr" and choice.params <= choice.limit
    assert choice.settings["user_embedding"]["num_partitions"] == 3
    assert choice.settings["user_embedding"]["operation"] == "concat"
    assert "QR add in 2 partitions does not fit" in choice.why


COUNTS = {name: vocab.counts[::-1] for name, vocab in VOCABS.items()}  # in any order


def test_choose_gives_the_most_rated_ids_own_biases_where_it_knows_their_ratings():
    known = budget.choose(budget.Budget.parse("128x"), IDS, COUNTS)
    assert known.settings["user_bias"]["type"] == "md"
    assert "own biases for the most rated ids" in known.lines()[0]
    # A ratio without the sizes (the Kubeflow runner): QR add biases, whose ratio holds on any.
    for unknown in (
        budget.choose(budget.Budget.parse("128x")),
        budget.choose(budget.Budget.parse("128x"), IDS),
    ):
        assert unknown.settings["user_bias"]["type"] == "qr"
        assert "QR add biases" in unknown.lines()[0] and "without the ratings per id" in unknown.why


def test_choose_gives_ids_rated_about_equally_qr_add_biases():
    even = {**COUNTS, "user_embedding": [10] * (IDS["user_embedding"] - 1)}
    choice = budget.choose(budget.Budget.parse("128x"), IDS, even)
    assert choice.settings["user_bias"]["type"] == "qr"
    assert choice.settings["movie_bias"]["type"] == "md"
    assert "users QR add biases, movies own biases" in choice.lines()[0]
    assert "the users are rated about equally" in choice.why
    assert choice.params <= choice.limit
