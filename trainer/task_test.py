"""The Trainer's input: raw examples through the Transform graph, in memory or streamed."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from conftest import TINY_TRAIN
from trainer import task
from trainer.model_config import ModelConfig


def test_every_epoch_is_a_fresh_permutation_of_all_rows():
    rows = np.arange(10, dtype=np.int64).reshape(-1, 1)
    inputs = {features.USER_INDEX: rows, features.MOVIE_INDEX: rows * 100}
    labels = rows.astype(np.float32)
    dataset, steps = task.shuffled_batches(inputs, labels, batch_size=4, seed=7)
    assert steps == 3

    batches = list(dataset.take(3 * steps))
    epochs = [
        np.concatenate([b[1].numpy().ravel() for b in batches[e * steps : (e + 1) * steps]])
        for e in range(3)
    ]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(10))
    assert not np.array_equal(epochs[0], epochs[1])
    # Features stay with their label.
    for inputs_batch, label_batch in batches:
        np.testing.assert_array_equal(
            inputs_batch[features.MOVIE_INDEX].numpy(), label_batch.numpy() * 100
        )
    again, _ = task.shuffled_batches(inputs, labels, batch_size=4, seed=7)
    np.testing.assert_array_equal(
        np.concatenate([b[1].numpy().ravel() for b in again.take(steps)]), epochs[0]
    )


@pytest.fixture
def raw_examples(tmp_path):
    path = tmp_path / "Split-train" / "data.gz"
    path.parent.mkdir()
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in TINY_TRAIN + [
            {"user_id": [b"stranger"], "movie_id": [b"movie_x"], "rating": [1.0]}
        ]:
            example = tf.train.Example()
            for name in ("user_id", "movie_id"):
                example.features.feature[name].bytes_list.value.extend(row[name])
            example.features.feature["rating"].float_list.value.extend(row["rating"])
            writer.write(example.SerializeToString())
    return [str(path.parent / "*")]


def _rows(dataset, steps=None):
    if steps is not None:
        dataset = dataset.take(steps)
    rows = []
    for inputs, labels in dataset:
        rows += zip(
            inputs[features.USER_INDEX].numpy().ravel().tolist(),
            inputs[features.MOVIE_INDEX].numpy().ravel().tolist(),
            labels.numpy().ravel().tolist(),
            strict=False,
        )
    return sorted(rows)


@pytest.mark.parametrize("in_memory", [True, False])
def test_raw_examples_reach_the_model_as_frequency_ranked_ids(
    tiny_transform, raw_examples, in_memory
):
    _, work, _ = tiny_transform
    config = ModelConfig(batch_size=3, input_in_memory=in_memory)
    data = task.read_training_data(config, raw_examples, raw_examples, tft.TFTransformOutput(work))

    # user_b (3 ratings) is 0, user_a 1, user_c 2, unseen users the OOV index 3.
    expected = sorted([(0, 0, 4.0)] * 3 + [(1, 1, 2.0)] * 2 + [(2, 0, 5.0)] + [(3, 0, 1.0)])
    assert _rows(data.train, data.steps_per_epoch) == expected
    assert _rows(data.eval) == expected
    assert data.mean_rating == pytest.approx(np.mean([r[2] for r in expected]))


def test_run_fn_hands_memory_back_even_when_training_fails(monkeypatch):
    released = []
    monkeypatch.setattr(task, "release_memory", lambda: released.append(True))

    def fail(fn_args):
        raise ValueError("bad split")

    monkeypatch.setattr(task, "_train_and_export", fail)
    with pytest.raises(ValueError, match="bad split"):
        task.run_fn(None)
    assert released == [True]


def test_release_memory_returns_freed_heap_to_the_system():
    pytest.importorskip("ctypes").CDLL("libc.so.6")  # glibc only
    # Many small blocks land on malloc's heap, where only a trim returns them.
    blocks = [bytearray(4096) for _ in range(100_000)]
    held = task._resident_gib()
    del blocks
    task.release_memory()
    assert task._resident_gib() < held - 0.2
