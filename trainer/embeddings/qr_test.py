"""Tests for trainer/embeddings/qr.py: the QR spec, its sizes and its budget solver."""

import itertools
import math

import pytest

from trainer.embeddings import build_tables
from trainer.embeddings import qr
from trainer.embeddings.full import PlainTable
from trainer.embeddings.qr import QRTable
from trainer.embeddings.spec import Vocabulary


def resolve(spec, vocab_size, num_oov, dim):
    vocab = Vocabulary.of([1] * vocab_size, num_oov)
    return build_tables({"f": {"type": "qr", **spec}}, {"f": vocab}, dim)["f"]


def params(n, d, m, k=2, op="mult"):
    return QRTable(n, d, m, k, op).params


def test_integer_root_ceil_matches_brute_force():
    for k in (2, 3, 4):
        for n in range(1, 3000):
            expected = next(m for m in itertools.count(1) if m**k >= n)
            assert qr.integer_root_ceil(n, k) == expected


def test_default_buckets():
    # input_dim = 998 + 2 = 1000, m = ceil(sqrt(1000)) = 32,
    # quotient rows ceil(1000 / 32) = 32.
    table = resolve({}, 998, 2, 16)
    assert table == QRTable(1000, 16, 32, 2, "mult")
    assert table.params == (32 + 32) * 16


@pytest.mark.parametrize("k,op", [(2, "mult"), (2, "concat"), (3, "add")])
def test_explicit_options_pass_through(k, op):
    table = resolve({"num_buckets": 12, "num_partitions": k, "operation": op}, 140, 4, 6)
    assert table == QRTable(144, 6, 12, k, op)


def test_threshold_falls_back_to_plain_table():
    # input_dim = 10 + 1 = 11: a plain table at threshold 11, QR below.
    assert resolve({"threshold": 11}, 10, 1, 4) == PlainTable(11, 4)
    assert isinstance(resolve({"threshold": 10}, 10, 1, 4), QRTable)


def test_compression_k2_matches_closed_form():
    # n = 10000, c = 4: m + n / m = n / c = 2500 has the root
    # m = (2500 + sqrt(2500**2 - 4 * 10000)) / 2 = 2495.996.
    n, d, c = 10000, 16, 4.0
    table = resolve({"compression": c}, n - 2, 2, d)
    closed_form = (n / c + math.sqrt((n / c) ** 2 - 4 * n)) / 2
    assert abs(table.num_buckets - closed_form) <= 1
    assert n * d / table.params == pytest.approx(c, rel=0.01)


@pytest.mark.parametrize(
    "n,k,op,c",
    [
        (5000, 3, "mult", 20.0),
        (5000, 2, "concat", 8.0),
        (5000, 3, "concat", 30.0),
        (45_237, 2, "concat", 4.0),
        (499_975, 2, "concat", 4.0),
        (943, 2, "mult", 3.0),
    ],
)
def test_compression_is_never_exceeded_and_nothing_larger_fits(n, k, op, c):
    d = 12
    m = qr.buckets_for_compression(n, d, c, k, op)
    budget = n * d / c
    chosen = params(n, d, m, k, op)
    assert chosen <= budget
    # No valid base uses more of the budget (exhaustive over the range).
    assert not any(
        chosen < params(n, d, b, k, op) <= budget for b in range(qr.default_num_buckets(n, k), n)
    )


def test_budget_is_a_ceiling_not_the_nearest_ratio():
    # n = 499,975 at 16-d "concat", ratio 4: the nearest ratio overshot the
    # budget by 8 params.
    n, d, c = 499_975, 16, 4.0
    m = qr.buckets_for_compression(n, d, c, 2, "concat")
    assert params(n, d, m, 2, "concat") <= n * d / c
    assert params(n, d, m + 1, 2, "concat") > n * d / c


def test_unreachable_compression_gives_maximum_compression():
    assert qr.buckets_for_compression(10000, 16, 1e6) == qr.default_num_buckets(10000)


@pytest.mark.parametrize(
    "spec",
    [
        {"compression": 1.0},
        {"compression": 4.0, "num_buckets": 40},
        {"num_buckets": 18},  # 18**2 < 943
    ],
)
def test_bad_specs_raise(spec):
    with pytest.raises(ValueError):
        resolve(spec, 940, 3, 8)


@pytest.mark.parametrize(
    "spec, vocab",
    [({}, 1), ({"compression": 4.0, "operation": "concat"}, 1), ({"num_buckets": 5000}, 943)],
)
def test_a_table_no_smaller_than_a_plain_one_becomes_plain(spec, vocab):
    table = resolve(spec, vocab, 1, 8)
    assert table == PlainTable(vocab + 1, 8, notes=table.notes)
    assert len(table.notes) == 1
    assert "too few for QR" in table.notes[0] and "a plain table is used" in table.notes[0]
