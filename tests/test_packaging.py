"""The package and its image carry what the pipeline needs, at the pinned versions.

Fast checks of the files that build the image and the package: the Dockerfile
against constraints.txt (the image's Beam worker boot program comes from the
pinned Beam release), and a wheel built from setup.py (the schema travels
inside it, every package the runners import is in it, install_requires
covers the code's third-party imports, and the schema is found from an
installed copy).
"""

import pathlib
import re
import shlex

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


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


def _dockerfile_instructions():
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions = []
    pending = ""
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


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
    instructions = _dockerfile_instructions()
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
