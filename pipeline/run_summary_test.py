"""The run summary's memory report names both references a reader may mean."""

from pipeline import run_summary


def test_memory_report_states_compression_against_the_full_presets_64d_tables():
    report = {
        "features": {
            "user_id": {
                "type": "MDEmbedding",
                "params": 400,
                "bytes": 1600,
                "compression": 4.0,
                "input_dim": 100,
                "full_params": 1600,
                "tables": [{"name": "block_0", "rows": 100, "dim": 4, "params": 400}],
            }
        },
        "total": {"params": 400, "compression": 4.0},
    }
    text = run_summary.format_memory_report(report)
    assert "4.0x smaller than full tables of the same width" in text
    # 100 ids x 64 dims / 400 params
    assert "16.0x smaller than full 64-d tables" in text


def test_an_unservable_model_is_reported_with_the_reason():
    text = run_summary.format_serving_check(False, {"ok": False, "reason": "TF1 loading path: X"})
    assert text.startswith("NOT servable") and "TF1 loading path: X" in text
    ok = run_summary.format_serving_check(True, {"ok": True, "num_examples": 256})
    assert "256 eval examples" in ok
