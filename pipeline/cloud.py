"""Settings for running the pipeline on Google Cloud.

Vertex AI Pipelines runs every component in the image built from this
repository's ``Dockerfile``; the helpers here build what differs from a
local run: paths inside that image, Beam flags for Dataflow, and the
``custom_config`` of the Vertex Training / Vertex Endpoint Trainer and Pusher.
Nothing here talks to Google Cloud: it only builds settings.
"""

import posixpath
from typing import Any

# Where the Dockerfile copies this repository inside the image. Components
# read files by these paths at run time, in the container, so they must not
# be this checkout's paths.
CONTAINER_PROJECT_ROOT = "/pipeline"
# The schema is package data of ``pipeline`` (``configs.SCHEMA_DIR``).
CONTAINER_SCHEMA_DIR = posixpath.join(CONTAINER_PROJECT_ROOT, "pipeline", "schema")
CONTAINER_SETUP_FILE = posixpath.join(CONTAINER_PROJECT_ROOT, "setup.py")

DEFAULT_REGION = "us-central1"
DEFAULT_DATAFLOW_MACHINE_TYPE = "e2-standard-4"
DEFAULT_DATAFLOW_MAX_WORKERS = 4
DEFAULT_TRAINING_MACHINE_TYPE = "n1-standard-8"
DEFAULT_SERVING_MACHINE_TYPE = "n1-standard-4"
# The newest TensorFlow prediction image that google-cloud-aiplatform 1.165
# lists. The model is saved by TF 2.16: check that a pushed model serves (see
# docs/deploy.md) or pass a newer image when Vertex AI offers one.
DEFAULT_SERVING_IMAGE_NAME = "tf2-cpu.2-15:latest"


def _tfx_google_cloud_ai_platform():
    """TFX's Vertex AI extension, imported on first use.

    Importing TFX takes seconds; the runner's ``--help`` and the Beam flag
    helpers do not need it.
    """
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

    return tfx.extensions.google_cloud_ai_platform


def container_beam_pipeline_args() -> list[str]:
    """Beam settings for running Beam steps inside each component's container.

    The same in-process engine as ``configs.local_beam_pipeline_args`` (see
    there for why), with the image's setup.py so TFX does not build an sdist
    of this package for every Beam component.
    """
    return [
        "--runner=FnApiRunner",
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
        f"--setup_file={CONTAINER_SETUP_FILE}",
    ]


def dataflow_beam_pipeline_args(
    project: str,
    region: str,
    temp_location: str,
    setup_file: str = CONTAINER_SETUP_FILE,
    machine_type: str = DEFAULT_DATAFLOW_MACHINE_TYPE,
    max_num_workers: int = DEFAULT_DATAFLOW_MAX_WORKERS,
) -> list[str]:
    """Beam flags that run ExampleGen, StatisticsGen, Transform and Evaluator on Dataflow.

    Only what every Dataflow run needs; any other Dataflow option (disk size,
    service account, subnetwork, worker image) is a Beam flag the runner's
    ``--beam-arg`` appends after these.

    Args:
      project: GCP project the Dataflow jobs run in.
      region: Dataflow regional endpoint, e.g. ``us-central1``.
      temp_location: gs:// folder for Dataflow's temporary and staged files.
      setup_file: this package's setup.py as seen by the process that launches
        the Dataflow job (the component's container). Beam builds an sdist
        from it and workers install it, so they can import
        ``components.preprocessing`` and the other modules by path.
      machine_type: Compute Engine machine type of the workers.
      max_num_workers: upper bound for throughput-based autoscaling.

    Returns:
      A list of ``--flag=value`` strings for ``PipelineConfig.beam_pipeline_args``.
    """
    if not temp_location.startswith("gs://"):
        raise ValueError(f"Dataflow needs a gs:// temp_location, got {temp_location!r}")
    if not project:
        raise ValueError("Dataflow needs a GCP project")
    if max_num_workers < 1:
        raise ValueError(f"max_num_workers must be at least 1, got {max_num_workers}")
    return [
        "--runner=DataflowRunner",
        f"--project={project}",
        f"--region={region}",
        f"--temp_location={temp_location}",
        f"--setup_file={setup_file}",
        f"--worker_machine_type={machine_type}",
        "--autoscaling_algorithm=THROUGHPUT_BASED",
        f"--max_num_workers={max_num_workers}",
    ]


def vertex_training_config(
    project: str,
    region: str,
    image: str,
    machine_type: str = DEFAULT_TRAINING_MACHINE_TYPE,
    accelerator_type: str | None = None,
    accelerator_count: int = 1,
) -> dict[str, Any]:
    """``custom_config`` entries that make the Trainer run as a Vertex AI custom job.

    The job runs the same ``trainer.task.run_fn`` in ``image`` (the pipeline
    image, which has this package installed) on one machine.

    Args:
      project: GCP project of the training job.
      region: Vertex AI region, e.g. ``us-central1``.
      image: container image for the training job.
      machine_type: Compute Engine machine type for the job.
      accelerator_type: e.g. ``NVIDIA_TESLA_T4``; CPU only when None.
      accelerator_count: accelerators attached when ``accelerator_type`` is set.

    Returns:
      A dict for ``PipelineConfig.vertex_training``.
    """
    machine_spec: dict[str, Any] = {"machine_type": machine_type}
    if accelerator_type:
        machine_spec["accelerator_type"] = accelerator_type
        machine_spec["accelerator_count"] = max(accelerator_count, 1)
    ai_platform = _tfx_google_cloud_ai_platform()
    return {
        ai_platform.ENABLE_VERTEX_KEY: True,
        ai_platform.VERTEX_REGION_KEY: region,
        ai_platform.TRAINING_ARGS_KEY: {
            # TFX pops "project" before sending the CustomJob spec.
            "project": project,
            "worker_pool_specs": [
                {
                    "machine_spec": machine_spec,
                    "replica_count": 1,
                    "container_spec": {"image_uri": image},
                }
            ],
        },
    }


def default_serving_image(region: str) -> str:
    """Vertex AI's TensorFlow prediction image from the registry nearest ``region``."""
    if region.startswith("europe"):
        registry = "europe-docker.pkg.dev"
    elif region.startswith(("asia", "australia")):
        registry = "asia-docker.pkg.dev"
    else:
        registry = "us-docker.pkg.dev"
    return f"{registry}/vertex-ai/prediction/{DEFAULT_SERVING_IMAGE_NAME}"


def vertex_serving_config(
    project: str,
    region: str,
    endpoint_name: str,
    image: str | None = None,
    machine_type: str = DEFAULT_SERVING_MACHINE_TYPE,
    min_replica_count: int = 1,
    max_replica_count: int = 1,
) -> dict[str, Any]:
    """``custom_config`` for a Pusher that deploys blessed models to a Vertex AI Endpoint.

    The endpoint is created on the first push and reused after; each push
    uploads a new Model and sends it all traffic.

    Args:
      project: GCP project of the endpoint.
      region: Vertex AI region of the endpoint.
      endpoint_name: display name of the endpoint.
      image: prediction container; Vertex's TensorFlow image when None.
      machine_type: machine type of the serving replicas.
      min_replica_count, max_replica_count: autoscaling bounds of the replicas.

    Returns:
      A dict for ``PipelineConfig.vertex_serving``.
    """
    ai_platform = _tfx_google_cloud_ai_platform()
    return {
        ai_platform.ENABLE_VERTEX_KEY: True,
        ai_platform.VERTEX_REGION_KEY: region,
        ai_platform.VERTEX_CONTAINER_IMAGE_URI_KEY: image or default_serving_image(region),
        ai_platform.SERVING_ARGS_KEY: {
            "project_id": project,
            "endpoint_name": endpoint_name,
            # Forwarded to aiplatform.Model.deploy.
            "machine_type": machine_type,
            "min_replica_count": min_replica_count,
            "max_replica_count": max_replica_count,
        },
    }
