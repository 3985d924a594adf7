"""The package and its image carry what the pipeline needs, at the pinned versions.

Fast checks of the files that build the image and the package: the Dockerfile
against constraints.txt (the image's Beam worker boot program comes from the
pinned Beam release), and a wheel built from setup.py (the schema travels
inside it, every package the runners import is in it, install_requires
covers the code's third-party imports, and the schema is found from an
installed copy).
"""

import ast
import email.parser
import importlib.metadata
import json
import os
import pathlib
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement

from conftest import dockerfile_instructions
from pipeline import cloud
from pipeline import configs

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# The entry points: the runners, and the modules components load by module path.
RUNNERS = ["local_runner.py", "kubeflow_v2_runner.py"]
MODULES_LOADED_BY_PATH = [
    configs.PREPROCESSING_FN.rpartition(".")[0],
    configs.RUN_FN.rpartition(".")[0],
]

# Libraries of TFX's own release train, which tfx==1.16.0 pins to its release:
# the code may import them without declaring them (the test checks tfx brings
# each). Everything else it imports (numpy, pandas, pyarrow, keras, ...) is
# declared in setup.py, so its range is this package's, not an accident of
# what tfx happens to require today.
THROUGH_TFX = {
    "tfx",
    "ml-pipelines-sdk",
    "absl-py",
    "apache-beam",
    "ml-metadata",
    "tensorflow-data-validation",
    "tensorflow-metadata",
    "tfx-bsl",
}

# Left out of the copy the wheel is built from, as .dockerignore leaves them out
# of the image's build context.
NOT_SOURCES = shutil.ignore_patterns(
    ".venv",
    ".git",
    "outputs",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
)


def _pins():
    """Distribution name (normalised) -> pinned version, from constraints.txt."""
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_normalise(name)] = version.strip()
    return pins


def _normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _stages(instructions):
    """Each build stage's instructions, FROM first; ARGs before the first FROM are left out."""
    stages = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def _global_args(instructions):
    """Name -> default of the ARGs declared before the first FROM."""
    args = {}
    for keyword, arguments in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args[name.strip()] = default.strip()
    return args


def _from_image(arguments):
    """(image reference, stage name or None) of a FROM instruction's arguments."""
    words = [word for word in arguments.split() if not word.startswith("--")]
    if len(words) == 3 and words[1].upper() == "AS":
        return words[0], words[2]
    assert len(words) == 1, arguments
    return words[0], None


def test_image_takes_beam_and_tfx_at_the_pinned_versions():
    pins = _pins()
    instructions = dockerfile_instructions()
    stages = _stages(instructions)
    global_args = _global_args(instructions)

    # The Beam version is written once, as BEAM_VERSION's default, and is the pin.
    assert global_args.get("BEAM_VERSION") == pins["apache-beam"], (
        f"Dockerfile ARG BEAM_VERSION={global_args.get('BEAM_VERSION')} but constraints.txt "
        f"pins apache-beam=={pins['apache-beam']}"
    )
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert text.count(pins["apache-beam"]) == 1, "the Beam version is written more than once"

    # A stage from Beam's Python SDK image of that version, for this Python.
    beam_stages = {}
    for stage in stages:
        image, name = _from_image(stage[0][1])
        if image.startswith("apache/beam_python"):
            assert image == "apache/beam_python3.10_sdk:${BEAM_VERSION}", image
            assert name, "the Beam stage needs a name for COPY --from"
            beam_stages[name] = stage
    assert beam_stages, "no stage FROM apache/beam_python3.10_sdk:${BEAM_VERSION}"

    # The final image is TFX at its pin, with Beam's /opt/apache/beam copied in
    # and Beam's boot program as its entry point.
    final = stages[-1]
    image, _ = _from_image(final[0][1])
    repository, _, tag = image.partition(":")
    assert repository == "tensorflow/tfx"
    assert tag == pins["tfx"], (
        f"FROM tensorflow/tfx:{tag} but constraints.txt pins tfx=={pins['tfx']}"
    )
    copies_from_beam = []
    for keyword, arguments in final:
        if keyword == "COPY" and arguments.startswith("--from="):
            words = shlex.split(arguments)
            source_stage = words[0].partition("=")[2]
            assert source_stage in beam_stages, f"COPY from an unexpected stage: {arguments}"
            copies_from_beam.append(words[1:])
    assert ["/opt/apache/beam", "/opt/apache/beam"] in copies_from_beam
    entrypoints = [arguments for keyword, arguments in final if keyword == "ENTRYPOINT"]
    assert entrypoints == ['["/opt/apache/beam/boot"]']


# The wheel: built from a copy of the working tree (setuptools writes build/ and
# egg-info where it builds), offline, with the venv's setuptools.


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCES)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(root / "dist"),
            str(source),
        ],
        check=True,
        cwd=root,
    )
    (path,) = (root / "dist").glob("*.whl")
    return path


def _wheel_files(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _imports(source):
    """Absolute module names a module imports, anywhere in it (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports: resolve them here first"
            names.add(node.module)
            # ``from pipeline import cli`` imports the module pipeline.cli.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _first_party_file(module):
    """The checkout's file for a module name, or None when it is not this project's."""
    path = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(REPO_ROOT).as_posix()
    return None


def _first_party_closure(roots):
    """Every file of this project the roots import, transitively, and each package's __init__."""
    seen = set()
    pending = list(roots)
    while pending:
        relative = pending.pop()
        if relative in seen:
            continue
        seen.add(relative)
        for module in _imports((REPO_ROOT / relative).read_text()):
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                found = _first_party_file(".".join(parts[:depth]))
                if found and found not in seen:
                    pending.append(found)
    return seen


def test_wheel_carries_the_schema_and_every_module_the_runners_import(wheel):
    files = _wheel_files(wheel)

    schema = pathlib.Path(configs.SCHEMA_DIR, "schema.pbtxt")
    schema_in_package = schema.relative_to(REPO_ROOT).as_posix()
    assert files.get(schema_in_package) == schema.read_bytes(), (
        f"{schema_in_package} is not in {wheel.name}: {sorted(files)}"
    )
    # The Kubeflow runner points ImportSchemaGen at the same file in the image.
    assert (
        posixpath.relpath(
            f"{cloud.CONTAINER_SCHEMA_DIR}/schema.pbtxt", cloud.CONTAINER_PROJECT_ROOT
        )
        == schema_in_package
    )

    roots = RUNNERS + [_first_party_file(module) for module in MODULES_LOADED_BY_PATH]
    needed = _first_party_closure(roots) - set(RUNNERS)
    assert {"pipeline/pipeline.py", "components/preprocessing.py", "trainer/task.py"} <= needed
    missing = sorted(path for path in needed if path not in files)
    assert not missing, f"imported by the runners but not in {wheel.name}: {missing}"


def _distributions_by_module():
    """Import name -> installed distributions providing it, from their file lists.

    Keyed by the top-level name and by its first two parts, so a namespace
    package (``google.protobuf``) maps to the one distribution that fills it.
    """
    owners = {}
    for distribution in importlib.metadata.distributions():
        name = _normalise(distribution.metadata["Name"])
        for file in distribution.files or []:
            # An extension module's file is "name.<abi tag>.so".
            parts = [part.removesuffix(".py") for part in file.parts]
            if parts[-1].endswith(".so"):
                parts[-1] = parts[-1].split(".")[0]
            if parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] == "..":
                continue
            for depth in (1, 2):
                if len(parts) >= depth:
                    owners.setdefault(".".join(parts[:depth]), set()).add(name)
    return owners


def _requirements(metadata_requires, extras=()):
    """Distribution names of a Requires-Dist list that apply without extras (or with these)."""
    names = set()
    for line in metadata_requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras)):
            names.add(_normalise(requirement.name))
    return names


def _requirement_closure(name):
    closure, pending = set(), [name]
    while pending:
        current = pending.pop()
        if current in closure:
            continue
        closure.add(current)
        try:
            requires = importlib.metadata.requires(current)
        except importlib.metadata.PackageNotFoundError:
            continue
        pending.extend(_requirements(requires) - closure)
    return closure


def test_install_requires_covers_every_third_party_import(wheel):
    files = _wheel_files(wheel)
    (metadata_name,) = [name for name in files if name.endswith(".dist-info/METADATA")]
    metadata = email.parser.BytesParser().parsebytes(files[metadata_name])
    declared = _requirements(metadata.get_all("Requires-Dist"))
    assert "tfx" in declared

    tfx_closure = _requirement_closure("tfx")
    assert THROUGH_TFX <= tfx_closure, sorted(THROUGH_TFX - tfx_closure)
    accepted = declared | THROUGH_TFX

    first_party = {name.split("/")[0] for name in files if "/" in name}
    owners = _distributions_by_module()
    undeclared = {}
    for name, content in sorted(files.items()):
        if not name.endswith(".py") or name.endswith("_test.py"):
            continue
        for module in _imports(content.decode()):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in first_party:
                continue
            two = ".".join(module.split(".")[:2])
            providers = owners.get(two) or owners.get(top)
            assert providers, f"{name} imports {module}, which no installed distribution provides"
            if not providers & accepted:
                undeclared.setdefault(" or ".join(sorted(providers)), set()).add(name)
    assert not undeclared, f"imported but not in setup.py's install_requires: {undeclared}"


def test_an_installed_copy_finds_its_schema(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    probe = (
        "import json, os; from pipeline import configs; "
        "print(json.dumps([configs.__file__, configs.SCHEMA_DIR]))"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, schema_dir = json.loads(result.stdout.strip().splitlines()[-1])
    # The installed copy, not this checkout, was imported.
    assert pathlib.Path(module_file).is_relative_to(target), module_file
    assert pathlib.Path(schema_dir).is_relative_to(target), schema_dir
    assert os.path.isfile(os.path.join(schema_dir, "schema.pbtxt"))
