"""A push is complete or absent: full disks, leftovers and pushes in the same second."""

import errno
import os
import subprocess
import uuid

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components import pusher


def _saved_model(path, padding: int = 0) -> str:
    """A parseable SavedModel file, ``padding`` bytes larger, and a variables file."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    meta_graph = proto.meta_graphs.add()
    meta_graph.meta_info_def.tags.append("serve")
    meta_graph.meta_info_def.meta_graph_version = "x" * padding
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(proto.SerializeToString())
    with open(os.path.join(path, "variables", "variables.index"), "wb") as f:
        f.write(b"i" * 100)
    return str(path)


def _versions(base):
    return sorted(os.listdir(base))


def test_a_push_is_a_complete_new_version(tmp_path):
    model = _saved_model(tmp_path / "model")
    base = tmp_path / "serving"
    path, version = pusher.push(model, str(base))
    assert _versions(base) == [version] and path == str(base / version)
    assert pusher.is_complete_version(path)
    assert os.path.isfile(os.path.join(path, "variables", "variables.index"))


def test_pushes_in_the_same_second_get_their_own_versions(tmp_path):
    model = _saved_model(tmp_path / "model")
    base = str(tmp_path / "serving")
    pushed = [pusher.push(model, base)[1] for _ in range(3)]
    assert len(set(pushed)) == 3
    assert _versions(base) == sorted(pushed)


def _copy_that_fills_the_disk(real_copy_file):
    """io_utils.copy_file that writes half of saved_model.pb, then fails as a full disk does."""

    def copy_file(src, dst, overwrite=False):
        if os.path.basename(src) != "saved_model.pb":
            return real_copy_file(src, dst, overwrite)
        with open(src, "rb") as f:
            data = f.read()
        with open(dst, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)

    return copy_file


def test_a_full_disk_leaves_no_version_and_the_next_push_cleans_up(tmp_path, monkeypatch):
    model = _saved_model(tmp_path / "model")
    base = str(tmp_path / "serving")
    _, first = pusher.push(model, base)
    monkeypatch.setattr(io_utils, "copy_file", _copy_that_fills_the_disk(io_utils.copy_file))
    with pytest.raises(pusher.PushError, match="the disk is full; nothing was pushed"):
        pusher.push(model, base)
    assert _versions(base) == [first]  # no truncated version, no staging folder left
    monkeypatch.undo()
    _, second = pusher.push(model, base)
    assert int(second) > int(first)
    assert _versions(base) == [first, second]


def test_leftovers_of_failed_pushes_are_removed_and_never_the_newest(tmp_path):
    model = _saved_model(tmp_path / "model")
    base = tmp_path / "serving"
    _, good = pusher.push(model, str(base))
    # What TFX's own Pusher leaves on a full disk: a newer version, truncated.
    truncated = base / str(int(good) + 1000)
    truncated.mkdir()
    (truncated / "saved_model.pb").write_bytes(b"\x0a\xff\xff")
    staging = base / f"{pusher.STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir()
    path, version = pusher.push(model, str(base))
    assert not truncated.exists() and not staging.exists()
    assert _versions(base) == sorted([good, version])
    assert pusher.is_complete_version(path)


def _executor_inputs(tmp_path, model_dir, evaluator_blessed=True, servable=True):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model_artifact")
    io_utils.copy_dir(model_dir, os.path.join(model.uri, "Format-Serving"))
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", int(evaluator_blessed))
    infra = standard_artifacts.InfraBlessing()
    infra.set_int_custom_property("blessed", int(servable))
    return {"model": [model], "model_blessing": [blessing], "infra_blessing": [infra]}


def _run_executor(tmp_path, inputs, base):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed_{uuid.uuid4().hex}")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base))
    )
    properties = {"push_destination": proto_utils.proto_to_json(destination)}
    pusher.Executor().Do(inputs, {"pushed_model": [pushed]}, properties)
    return pushed


def test_the_executor_records_exactly_what_is_on_disk(tmp_path):
    model = _saved_model(tmp_path / "model")
    base = tmp_path / "serving"
    pushed = _run_executor(tmp_path, _executor_inputs(tmp_path, model), base)
    assert pushed.get_int_custom_property("pushed") == 1
    destination = pushed.get_string_custom_property("pushed_destination")
    assert destination == str(base / pushed.get_string_custom_property("pushed_version"))
    assert pusher.is_complete_version(destination)

    for evaluator_blessed, servable in [(False, True), (True, False)]:
        inputs = _executor_inputs(tmp_path, model, evaluator_blessed, servable)
        refused = _run_executor(tmp_path, inputs, base)
        assert refused.get_int_custom_property("pushed") == 0
    assert _versions(base) == [pushed.get_string_custom_property("pushed_version")]


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 2 MiB tmpfs; needs root and mount rights (CI and this project's machines)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({result.stderr.strip()}); the simulated "
            "full disk above covers the same path"
        )
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_a_really_full_disk_leaves_the_serving_folder_as_it_was(tmp_path, small_filesystem):
    base = small_filesystem / "serving"
    small = _saved_model(tmp_path / "small_model")
    _, first = pusher.push(small, str(base))
    # Too large for what is left: the copy fails part way through saved_model.pb.
    large = _saved_model(tmp_path / "large_model", padding=3 * 2**20)
    with pytest.raises(pusher.PushError, match="disk is full"):
        pusher.push(large, str(base))
    assert _versions(base) == [first]
    assert pusher.is_complete_version(str(base / first))
