# The image every component runs in on Kubeflow Pipelines / Vertex AI, and
# the Vertex AI Training job with --vertex-training. Build from the repository
# root (see docs/deploy.md):
#   docker build -t IMAGE .
#
# The Beam SDK version this image runs: apache-beam's pin in constraints.txt
# (tests/test_packaging.py fails when they differ). Dataflow workers started in
# this image (--beam-arg=--sdk_container_image=IMAGE) run Beam's worker boot program, which
# must come from the same Beam release as the SDK that pip installs below; the
# tensorflow/tfx base image carries an older release's.
ARG BEAM_VERSION=2.74.0

FROM apache/beam_python3.10_sdk:${BEAM_VERSION} AS beam_sdk

FROM tensorflow/tfx:1.16.0
ARG BEAM_VERSION

# Beam's worker boot program and what goes with it, replacing the base image's.
COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam

# kubeflow_v2_runner.py points components at files under this folder
# (CONTAINER_PROJECT_ROOT in pipeline/cloud.py): ImportSchemaGen reads
# pipeline/schema/schema.pbtxt and Dataflow jobs build this package from
# setup.py. Keep the two in step.
WORKDIR /pipeline
COPY . /pipeline

# Non-editable install, so components import the code by module path
# (components.preprocessing.preprocessing_fn, trainer.task.run_fn) from
# site-packages wherever they start. constraints.txt holds the versions the
# pipeline is tested with; pip moves the base image's packages to them.
# The import from / checks the installed copy, not the one in WORKDIR, and
# that the Beam SDK is the boot program's release.
RUN python -m pip install --no-cache-dir -c constraints.txt . \
    && cd / \
    && python -c "import components.preprocessing, pipeline.pipeline, trainer.task" \
    && python -c "import apache_beam as b; assert b.__version__ == '${BEAM_VERSION}', b.__version__"

# Beam's worker boot, needed when Dataflow runs workers in this image;
# Kubeflow and Vertex AI set each component's command themselves.
ENTRYPOINT ["/opt/apache/beam/boot"]
