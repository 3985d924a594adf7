"""Tests for trainer/embeddings/md.py: blocks, the alpha rule, the budget
solvers, and the MD spec resolved against a vocabulary."""

import math

import numpy as np
import pytest

from trainer.embeddings import build_tables
from trainer.embeddings import md
from trainer.embeddings.qr import QRTable
from trainer.embeddings.spec import SpecVocabularyError
from trainer.embeddings.spec import Vocabulary


def resolve(spec, counts, num_oov, dim):
    vocab = Vocabulary.of(counts, num_oov)
    return build_tables({"f": {"type": "md", **spec}}, {"f": vocab}, dim)["f"]


def _zipf_counts(vocab_size, seed=0):
    counts = np.random.default_rng(seed).zipf(1.4, vocab_size)
    return sorted(counts.tolist(), reverse=True)


# Prefix masses 0, 40, 60, 70, 80, 90, 95, 100; one OOV bucket -> input_dim 8.
SMALL_COUNTS = [40, 20, 10, 10, 10, 5, 5]


class TestBlockBoundaries:
    COUNTS = SMALL_COUNTS

    def test_equal_mass_two_blocks(self):
        # Target 50 lies between prefixes 40 (cut 1) and 60 (cut 2), both 10
        # away; ties keep the smaller head block.
        assert md.block_boundaries_equal_mass(self.COUNTS, 2) == [0, 1, 7]

    def test_equal_mass_pushes_coinciding_cuts_apart(self):
        # Targets 25, 50, 75 -> nearest cuts 1, 1, 3 (75 ties 70/80 -> 3).
        # Id 0 alone exceeds a quarter of the mass, so cut 2 moves to 2.
        assert md.block_boundaries_equal_mass(self.COUNTS, 4) == [0, 1, 2, 3, 7]

    def test_equal_mass_uniform_counts_gives_equal_rows(self):
        assert md.block_boundaries_equal_mass([3] * 12, 3) == [0, 4, 8, 12]

    def test_equal_mass_blocks_are_never_empty(self):
        rng = np.random.default_rng(1)
        counts = np.sort(rng.zipf(1.3, 500))[::-1]
        for blocks in (1, 2, 5, 17, 500):
            offsets = md.block_boundaries_equal_mass(counts, blocks)
            assert offsets[0] == 0 and offsets[-1] == 500
            assert len(offsets) == blocks + 1
            assert all(b > a for a, b in zip(offsets, offsets[1:], strict=False))

    @pytest.mark.parametrize(
        "counts,blocks", [([0, 0, 0], 2), ([5, 4], 3), ([3, -1], 1), ([3, 2], 0)]
    )
    def test_equal_mass_rejects_impossible_input(self, counts, blocks):
        with pytest.raises(ValueError):
            md.block_boundaries_equal_mass(counts, blocks)

    def test_fractions(self):
        # Cumulative 0.5 and 0.8 of 10 rows -> cuts 5 and 8.
        assert md.block_boundaries_from_fractions(10, [0.5, 0.3, 0.2]) == [0, 5, 8, 10]

    def test_fractions_keep_every_block_non_empty(self):
        # Both cuts round to 3; they are pushed back to 1 and 2.
        assert md.block_boundaries_from_fractions(3, [0.98, 0.01, 0.01]) == [0, 1, 2, 3]

    @pytest.mark.parametrize("fractions", [[0.5, 0.4], [1.2, -0.2], []])
    def test_bad_fractions_raise(self, fractions):
        with pytest.raises(ValueError):
            md.block_boundaries_from_fractions(10, fractions)

    def test_sizes(self):
        assert md.block_boundaries_from_counts(10, [2, 3, 5]) == [0, 2, 5, 10]

    @pytest.mark.parametrize("sizes", [[2, 3, 4], [0, 10], []])
    def test_bad_sizes_raise(self, sizes):
        with pytest.raises(ValueError):
            md.block_boundaries_from_counts(10, sizes)

    def test_popularity_counts_missing_rows_as_zero(self):
        # Blocks [0, 2) and [2, 6) over 4 counted rows plus 2 OOV rows:
        # (40 + 20) / 2 = 30 and (10 + 10 + 0 + 0) / 4 = 5.
        assert md.block_popularity([40, 20, 10, 10], [0, 2, 6]) == [30.0, 5.0]


class TestAlphaRule:
    def test_hand_computed_dims(self):
        # 64 * 0.1 ** 0.5 = 20.24 -> 20 and 64 * 0.01 ** 0.5 = 6.4 -> 6.
        assert md.alpha_power_dims([100, 10, 1], 0.5, 64) == [64, 20, 6]

    def test_power_of_two_rounding(self):
        # 20.24 is nearer 16 than 32; 6.4 is nearer 8 than 4.
        assert md.alpha_power_dims([100, 10, 1], 0.5, 64, round_to_power_of_two=True) == [64, 16, 8]

    def test_min_dim_floor_and_alpha_zero(self):
        assert md.alpha_power_dims([100, 10, 1], 0.5, 64, min_dim=8) == [64, 20, 8]
        assert md.alpha_power_dims([100, 10, 1], 0.0, 64) == [64, 64, 64]

    def test_rounds_half_up(self):
        # 9 * 0.25 ** 0.5 = 4.5 -> 5 (Python's round() would give 4).
        assert md.alpha_power_dims([1, 0.25], 0.5, 9) == [9, 5]

    def test_head_need_not_be_first(self):
        # alpha = 1: dims proportional to popularity 4 : 8 : 1 over base 16.
        assert md.alpha_power_dims([4, 8, 1], 1.0, 16) == [8, 16, 2]

    def test_matches_dlrm_size_form_for_equal_mass_blocks(self):
        # Equal mass F per block makes p_i = F / n_i, so the popularity rule
        # equals DLRM's d_i = d0 * (n_min / n_i) ** alpha.
        rows, mass, alpha, d0 = [10, 40, 200, 1000], 1000.0, 0.4, 64
        popularity = [mass / n for n in rows]
        dlrm = [int(np.floor(d0 * (min(rows) / n) ** alpha + 0.5)) for n in rows]
        assert md.alpha_power_dims(popularity, alpha, d0) == dlrm

    @pytest.mark.parametrize(
        "args", [([0, 0], 0.5, 8), ([1, -1], 0.5, 8), ([1, 1], -0.5, 8), ([], 0.5, 8)]
    )
    def test_bad_inputs_raise(self, args):
        with pytest.raises(ValueError):
            md.alpha_power_dims(*args)


class TestBudget:
    """The budget solvers, through a spec whose equal-mass blocks are worked by hand.

    Blocks of 10, 100 and 1000 rows each hold 1000 lookups: popularity
    [100, 10, 1]. Alpha 0.5 and output_dim 16: head dim b gives dims
    [b, b / 3.162, b / 10] rounded, and the cost is the tables 10*b + 100*d1 +
    1000*d2, plus 16*d for each learned projection (d < 16):
      b = 16: [16, 5, 2]  -> 160 + 500 + 2000 + 80 + 32        = 2772
      b = 15: [15, 5, 2]  -> 150 + 500 + 2000 + 240 + 80 + 32  = 3002
      b = 14: [14, 4, 1]  -> 140 + 400 + 1000 + 224 + 64 + 16  = 1844
      b = 1:  [1, 1, 1]   -> 10 + 100 + 1000 + 3 * 16          = 1158
    """

    COUNTS = [100] * 10 + [10] * 100 + [1] * 1000
    ROWS = [10, 100, 1000]

    def dims(self, budget, **spec):
        spec = {"blocks": 3, "alpha": 0.5, "param_budget": budget, **spec}
        table = resolve(spec, self.COUNTS, 0, 16)
        assert table.offsets == (0, 10, 110, 1110)
        assert table.params <= budget
        return list(table.dims)

    def cost(self, dims):
        return md.md_param_count(self.ROWS, dims, 16)

    def test_param_count_formula(self):
        assert self.cost([16, 5, 2]) == 2772
        assert self.cost([15, 5, 2]) == 3002
        assert self.cost([14, 4, 1]) == 1844

    def test_budget_picks_widest_head_that_fits(self):
        assert self.dims(2772) == [16, 5, 2]
        # b = 15 costs more than b = 16 (its head needs a projection), so one
        # parameter less than 2772 drops all the way to b = 14.
        assert self.dims(2771) == [14, 4, 1]

    def test_budget_with_power_of_two_rounding(self):
        # b = 16 -> [16, 4, 2]: 160 + 400 + 2000 + 64 + 32 = 2656.
        assert self.dims(2656, round_to_power_of_two=True) == [16, 4, 2]
        assert self.dims(2655, round_to_power_of_two=True) != [16, 4, 2]

    def test_fill_budget_spends_the_leftover(self):
        # Worked by hand from [14, 4, 1] (1844): the head reaches 16 (dropping
        # its projection), the middle block grows while +116 fits, the tail's
        # +1,016 never does: 160 + 1300 + 1000 + 13 * 16 + 16 = 2684.
        widened = self.dims(2771, fill_budget=True)
        assert widened == [16, 13, 1]
        assert self.cost(widened) == 2684
        for i in range(len(widened)):
            wider = widened[:i] + [widened[i] + 1] + widened[i + 1 :]
            ceiling = 16 if i == 0 else widened[i - 1]
            assert wider[i] > ceiling or self.cost(wider) > 2771

    def test_widen_keeps_what_already_fits_and_rejects_dims_over_budget(self):
        assert md.widen_to_budget([14, 4, 1], self.cost, 16, 2771) == [16, 13, 1]
        with pytest.raises(ValueError, match="exceed"):
            md.widen_to_budget([16, 5, 2], self.cost, 16, 2771)

    def test_budget_too_small_raises(self):
        with pytest.raises(SpecVocabularyError, match="param_budget=1157 is too small"):
            self.dims(1157)
        assert self.dims(1158) == [1, 1, 1]


class TestSpec:
    def test_equal_mass_blocks_and_alpha_dims(self):
        # Two equal-mass blocks: [0, 1) and [1, 8) (the OOV row joins the
        # tail).  Popularity 40 / 1 = 40 and 60 / 7; alpha 0.5 and base 16:
        # 16 * sqrt((60 / 7) / 40) = 7.41 -> 7.
        table = resolve({"blocks": 2, "alpha": 0.5}, SMALL_COUNTS, 1, 16)
        assert (table.offsets, table.dims) == ((0, 1, 8), (16, 7))
        assert table.params == 1 * 16 + 7 * 7 + 7 * 16

    def test_defaults_are_four_equal_mass_blocks_and_alpha_0_3(self):
        # Targets 25, 50, 75 of the mass 100 cut at 1, 2 (pushed apart from 1)
        # and 3; popularity 40, 20, 10 and 30 / 5 = 6 (the OOV row counts 0):
        # 16 * (p / 40) ** 0.3 = 16, 13.0, 10.6, 9.1.
        table = resolve({}, SMALL_COUNTS, 1, 16)
        assert (table.offsets, table.dims) == ((0, 1, 2, 3, 8), (16, 13, 11, 9))

    @pytest.mark.parametrize(
        "key,value,offsets",
        [
            ("block_sizes", [2, 5], (0, 2, 8)),  # sums to vocab: OOV appended
            ("block_sizes", [2, 6], (0, 2, 8)),  # sums to input_dim
            ("block_fractions", [0.3, 0.7], (0, 2, 8)),  # rint(0.3 * 7) = 2
        ],
    )
    def test_explicit_blocking(self, key, value, offsets):
        table = resolve({key: value, "dims": [16, 4]}, SMALL_COUNTS, 1, 16)
        assert (table.offsets, table.dims) == (offsets, (16, 4))

    def test_explicit_dims_set_block_count(self):
        table = resolve({"dims": [8, 4, 2]}, SMALL_COUNTS, 1, 8)
        # Equal-mass targets 33.3 and 66.7: the nearest prefix masses are 40
        # (cut 1) and 70 (cut 3, 3.3 away vs 6.7 for 60).
        assert table.offsets == (0, 1, 3, 8)
        assert table.params == 1 * 8 + 2 * 4 + 5 * 2 + 4 * 8 + 2 * 8

    def test_tail_qr(self):
        table = resolve(
            {"blocks": 3, "dims": [16, 8, 4], "tail_qr": {"operation": "add"}},
            _zipf_counts(200),
            2,
            16,
        )
        rows = table.rows
        m = math.ceil(math.sqrt(rows[2]))
        assert table.tail == QRTable(rows[2], 4, m, 2, "add")
        tail = (m + math.ceil(rows[2] / m)) * 4
        assert table.params == rows[0] * 16 + rows[1] * 8 + 8 * 16 + tail + 4 * 16

    def test_tail_qr_within_budget(self):
        spec = {"blocks": 3, "alpha": 0.6, "param_budget": 4000, "tail_qr": {}}
        table = resolve(spec, _zipf_counts(2000), 2, 32)
        assert isinstance(table.tail, QRTable) and table.params <= 4000

    @pytest.mark.parametrize("tail_qr", [None, {}])
    def test_fill_budget_spends_more_but_never_exceeds(self, tail_qr):
        counts, budget = _zipf_counts(2000), 6000
        spec = {"blocks": 8, "alpha": 0.3, "param_budget": budget, "tail_qr": tail_qr}
        plain = resolve(spec, counts, 1, 16)
        filled = resolve(dict(spec, fill_budget=True), counts, 1, 16)
        assert plain.params < filled.params <= budget
        assert all(f >= p for f, p in zip(filled.dims, plain.dims, strict=False))
        assert list(filled.dims) == sorted(filled.dims, reverse=True)

    def test_nested_projection_spends_the_budget_on_rows(self):
        counts, budget = _zipf_counts(2000), 6000
        spec = {"blocks": 4, "alpha": 0.3, "param_budget": budget, "fill_budget": True}
        learned = resolve(spec, counts, 1, 32)
        nested = resolve(dict(spec, projection="nested"), counts, 1, 32)
        assert nested.params <= budget

        def row_params(table):
            return sum(r * d for r, d in zip(table.rows, table.dims, strict=False))

        # What learned projections cost goes to wider rows instead.
        assert row_params(nested) == nested.params
        assert row_params(nested) > row_params(learned)

    def test_max_dim_caps_every_block_and_fill_spends_below_it(self):
        # A gentle power law: every equal-mass block holds many rows.
        counts, budget = [int(5000 / (i + 1) ** 0.7) for i in range(2000)], 12000
        spec = {
            "blocks": 4,
            "alpha": 0.3,
            "param_budget": budget,
            "projection": "nested",
            "fill_budget": True,
        }
        free = resolve(spec, counts, 1, 32)
        cap = free.dims[0] - 6
        capped = resolve(dict(spec, max_dim=cap), counts, 1, 32)
        assert capped.dims[0] == cap and capped.output_dim == 32
        assert list(capped.dims) == sorted(capped.dims, reverse=True)
        assert capped.params <= budget
        # The head's lost width goes to the blocks below it.
        assert sum(capped.dims[1:]) > sum(free.dims[1:])

    def test_capped_keeps_explicit_dims_and_lowers_base_and_min_dim(self):
        spec = md.MDSpec(base_dim=16, min_dim=12, projection="nested")
        assert md.MDSpec(dims=[8, 4]).capped(2) is None
        capped = spec.capped(8)
        assert (capped.max_dim, capped.base_dim, capped.min_dim) == (8, 8, 8)
        capped.validate(16)

    @pytest.mark.parametrize(
        "spec,match",
        [
            ({"projection": "identity"}, "projection"),
            ({"dims": [8, 4], "max_dim": 8}, "dims"),
            ({"blocks": 2, "max_dim": 17}, "max_dim"),
            ({"blocks": 2, "max_dim": 4, "base_dim": 8}, "base_dim"),
            ({"dims": [8, 4], "alpha": 0.5}, "dims"),
            ({"base_dim": 8, "param_budget": 100}, "exclusive"),
            ({"blocks": 2, "block_sizes": [2, 5]}, "exclusive"),
            ({"blocks": 2, "base_dim": 32}, "base_dim"),
            ({"block_sizes": [2, 4]}, "sum"),
            ({"dims": [8, 4, 2], "blocks": 2}, "dims"),
            ({"tail_qr": {"collisions": 4}}, "collisions"),
            ({"tail_qr": {"threshold": 4}}, "threshold"),
            ({"blocks": 2, "param_budget": 10}, "too small"),
        ],
    )
    def test_bad_specs_raise(self, spec, match):
        with pytest.raises(ValueError, match=match):
            resolve(spec, SMALL_COUNTS, 1, 16)

    def test_more_blocks_than_ids_gives_one_block_per_id(self):
        table = resolve({"blocks": 5000}, [50, 30, 10], 1, 8)
        assert len(table.dims) == 3 and table.offsets[-1] == 4
        assert table.notes == ("5000 MD blocks asked for, but the vocabulary has 3 ids: 3 blocks",)
        # Explicit dims keep their head; fractions merge their tail.
        spec = {"block_fractions": [0.25, 0.25, 0.25, 0.25], "dims": [8, 4, 2, 1]}
        table = resolve(spec, [5, 1], 1, 8)
        assert (table.dims, table.offsets) == ((8, 4), (0, 1, 3))

    def test_tail_qr_too_small_for_its_block_is_a_plain_block(self):
        spec = {"blocks": 2, "dims": [4, 2], "tail_qr": {"operation": "mult"}}
        table = resolve(spec, [10, 1], 1, 4)
        assert table.tail is None and len(table.notes) == 1
        assert table.notes[0].startswith("tail_qr: ")
        assert table.notes[0].endswith(": the last MD block is a plain table")
