"""Tests for the Trainer's input plan: in memory or streamed, decided from the splits' size."""

import gzip

import pytest

from trainer import input_plan

GIB = 1 << 30


@pytest.fixture
def split_files(tmp_path):
    """A gzipped split of 1 MB of records and an uncompressed one of 1,000 bytes."""
    train = tmp_path / "Split-train"
    train.mkdir()
    (train / "data.gz").write_bytes(gzip.compress(b"r" * 1_000_000))
    evaluation = tmp_path / "Split-eval"
    evaluation.mkdir()
    (evaluation / "data").write_bytes(b"e" * 1_000)
    return [str(train / "*"), str(evaluation / "*")]


def _with_available(monkeypatch, available):
    monkeypatch.setattr(input_plan, "available_memory_bytes", lambda: available)


def test_the_record_bytes_are_the_uncompressed_sizes(split_files, monkeypatch):
    _with_available(monkeypatch, 8 * GIB)
    assert input_plan.plan(None, split_files).record_bytes == 1_001_000


def test_splits_that_fit_are_read_into_memory(split_files, monkeypatch):
    _with_available(monkeypatch, 3_000_000)
    plan = input_plan.plan(None, split_files)
    assert plan.in_memory
    assert "into memory" in plan.describe() and "fits in 50%" in plan.describe()


def test_splits_past_half_the_available_memory_are_streamed(split_files, monkeypatch):
    _with_available(monkeypatch, 1_900_000)
    plan = input_plan.plan(None, split_files)
    assert not plan.in_memory
    assert "streaming" in plan.describe() and "exceeds" in plan.describe()


@pytest.mark.parametrize("requested", [True, False])
def test_a_setting_overrides_the_size_rule(split_files, monkeypatch, requested):
    _with_available(monkeypatch, 1_000)  # far too little: the setting still wins
    plan = input_plan.plan(requested, split_files)
    assert plan.in_memory is requested
    assert f"input_in_memory={str(requested).lower()}" in plan.reason


def test_unknown_memory_keeps_the_fast_path(split_files, monkeypatch):
    _with_available(monkeypatch, None)
    assert input_plan.plan(None, split_files).in_memory


def test_a_cgroup_limit_below_the_machine_memory_counts(tmp_path):
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("73741824\n")
    assert input_plan._cgroup_room(str(tmp_path)) == 1_000_000_000


def test_an_unlimited_cgroup_leaves_the_machine_memory(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("1000\n")
    assert input_plan._cgroup_room(str(tmp_path)) is None


def test_this_machine_reports_some_available_memory():
    assert input_plan.available_memory_bytes() > 0
