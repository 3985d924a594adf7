"""The Pusher's filesystem push, made atomic: a serving version is complete or absent.

TFX's Pusher copies the model straight into ``<base>/<unix time>``. A copy
cut short (a full disk, a killed process) leaves a numbered folder with a
truncated ``saved_model.pb``, the newest version a model server then loads;
two pushes in one second share a version, and the second is skipped while
its run reports the folder as its own. Here the model is copied into a
hidden staging folder beside the versions (model servers load only numeric
folder names), and renamed to its version once complete; a version is never
reused, and what failed pushes left behind is removed by the next push.
"""

import errno
import os
import time
import uuid

from absl import logging
from tfx.components import Pusher
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

STAGING_PREFIX = ".staging-"
SAVED_MODEL_FILE = "saved_model.pb"


class PushError(RuntimeError):
    """The model could not be pushed; the serving folder is as it was."""


def is_complete_version(path: str) -> bool:
    """Whether a version folder holds a SavedModel that parses."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = os.path.join(path, SAVED_MODEL_FILE)
    if not fileio.exists(saved_model):
        return False
    try:
        saved_model_pb2.SavedModel.FromString(io_utils.read_bytes_file(saved_model))
    except Exception:  # pylint: disable=broad-except
        # A truncated or corrupt file is whatever the protobuf parser says.
        return False
    return True


def versions(base_directory: str) -> list[int]:
    if not fileio.exists(base_directory):
        return []
    names = [name.rstrip("/") for name in fileio.listdir(base_directory)]
    return sorted(int(name) for name in names if name.isdigit())


def remove_leftovers(base_directory: str) -> list[str]:
    """Deletes staging folders and unparseable versions that failed pushes left."""
    if not fileio.exists(base_directory):
        return []
    removed = []
    for name in fileio.listdir(base_directory):
        name = name.rstrip("/")
        path = os.path.join(base_directory, name)
        broken = name.isdigit() and not is_complete_version(path)
        if name.startswith(STAGING_PREFIX) or broken:
            logging.warning("Removing %s, left by an incomplete push", path)
            fileio.rmtree(path)
            removed.append(path)
    return removed


def next_version(base_directory: str) -> int:
    """The Unix time, or one past the newest version if that is later."""
    existing = versions(base_directory)
    return max(int(time.time()), existing[-1] + 1 if existing else 0)


def copy_model(model_path: str, destination: str) -> None:
    """Copies the SavedModel, ``saved_model.pb`` last, as TFX's Pusher does."""
    io_utils.copy_dir(model_path, destination, deny_regex_patterns=[r"saved_model\.pb"])
    io_utils.copy_file(
        os.path.join(model_path, SAVED_MODEL_FILE), os.path.join(destination, SAVED_MODEL_FILE)
    )


def push(model_path: str, base_directory: str) -> tuple[str, str]:
    """Publishes ``model_path`` as a new version; returns (its path, its version)."""
    fileio.makedirs(base_directory)
    remove_leftovers(base_directory)
    # Object stores rename by copying each object: there the copy goes
    # straight to its version, saved_model.pb last, which servers wait for.
    object_store = "://" in base_directory
    if object_store:
        staging = os.path.join(base_directory, str(next_version(base_directory)))
    else:
        staging = os.path.join(base_directory, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
    published = None
    try:
        copy_model(model_path, staging)
        if not is_complete_version(staging):
            raise PushError(f"the copy of {model_path} in {staging} is not a complete SavedModel")
        if object_store:
            published = staging
        else:
            version = next_version(base_directory)
            while fileio.exists(os.path.join(base_directory, str(version))):
                version += 1
            destination = os.path.join(base_directory, str(version))
            fileio.rename(staging, destination, overwrite=False)
            published = destination
        return published, os.path.basename(published)
    except PushError:
        raise
    except Exception as e:  # pylint: disable=broad-except
        # fileio raises OSError or TensorFlow's errors, by filesystem.
        reason = "the disk is full" if _is_no_space(e) else str(e)
        raise PushError(
            f"could not push the model to {base_directory}: {reason}; nothing was pushed "
            "and the serving folder keeps its earlier versions"
        ) from e
    finally:
        if published is None:
            _remove_quietly(staging)


def _is_no_space(error: BaseException) -> bool:
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _remove_quietly(path: str) -> None:
    try:
        if fileio.exists(path):
            fileio.rmtree(path)
    except Exception as e:  # pylint: disable=broad-except  # the disk fault that stopped the push may stop this too
        logging.warning("Could not remove %s: %s; the next push removes it", path, e)


class Executor(tfx_pusher_executor.Executor):
    """TFX's Pusher with the filesystem push above; other destinations are refused."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"push destination {destination.WhichOneof('destination')}")
        model_path = self.GetModelPath(input_dict)
        serving_path, version = push(model_path, destination.filesystem.base_directory)
        logging.info("Model pushed to %s", serving_path)
        # TFX's Pusher also archives the model under its output artifact; the
        # serving folder holds the pushed copy, so the artifact points there.
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)


def AtomicPusher(**kwargs) -> Pusher:  # pylint: disable=invalid-name
    """TFX's Pusher component running the executor above."""
    return Pusher(custom_executor_spec=executor_spec.ExecutorClassSpec(Executor), **kwargs)
