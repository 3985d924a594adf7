"""The scale benchmark's pipeline part: a whole local_runner process, measured per component."""

import json

import pytest

from benchmarks import scale


@pytest.mark.slow
def test_a_pipeline_run_records_time_memory_and_every_component(tmp_path, monkeypatch):
    monkeypatch.setitem(scale.PIPELINE_SIZES, "tiny", (3_000, 150, 200, 5))
    out = tmp_path / "scale.json"
    out.write_text(json.dumps({"step_ms": {"10000": 2.0}}))

    part = scale.pipeline_part(["tiny"], str(tmp_path))
    scale.merge_results("pipeline", part, str(out), "test")

    results = json.loads(out.read_text())
    assert results["step_ms"] == {"10000": 2.0}  # the other part's keys stay
    (run,) = results["pipeline"]
    assert run["returncode"] == 0, (tmp_path / run["log"]).read_text()[-2000:]
    assert (run["ratings"], run["users"], run["movies"]) == (3_000, 150, 200)
    assert {"ArrowCsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(
        run["components"]
    )
    assert 0 < sum(run["components"].values()) < run["seconds"]
    assert run["peak_rss_gb"] > 0.1
    assert 0 < run["component_peak_rss_gb"]["Trainer"] <= run["peak_rss_gb"]
    assert results["machine"]["cpu_model"] and results["parts"]["pipeline"]["command"] == "test"
    assert run["commit"] == results["machine"]["git_head"]


def test_a_run_of_some_sizes_replaces_those_sizes_only(tmp_path):
    out = tmp_path / "scale.json"

    def run(name, seconds):
        return {"name": name, "seconds": seconds}

    part = {"pipeline": [run("1m", 1), run("20m-wide", 20)]}
    scale.merge_results("pipeline", part, str(out), "first", {"git_head": "old"})
    part = {"pipeline": [{**run("4m-wide", 4), "commit": "new"}, {**run("1m", 2), "commit": "new"}]}
    scale.merge_results("pipeline", part, str(out), "second", {"git_head": "new"})
    runs = json.loads(out.read_text())["pipeline"]
    assert [(r["name"], r["seconds"], r["commit"]) for r in runs] == [
        ("1m", 2, "new"),
        ("4m-wide", 4, "new"),
        ("20m-wide", 20, "old"),  # a run without its own commit keeps the file's
    ]
    # An in-process run sits beside its size's run and replaces only its own.
    part = {"pipeline": [{**run("4m-wide-in-process", 5), "commit": "new"}]}
    scale.merge_results("pipeline", part, str(out), "third", {"git_head": "new"})
    runs = json.loads(out.read_text())["pipeline"]
    assert [r["name"] for r in runs] == ["1m", "4m-wide", "4m-wide-in-process", "20m-wide"]


def test_the_lookup_part_loads_every_id_and_measures_its_table():
    result = scale.lookup_run(20_000)
    assert result["ids"] == 20_000 and result["all_found"]
    assert result["load_seconds"] > 0 and result["file_mb"] > 0.2
    assert result["peak_rss_gb"] > 0
