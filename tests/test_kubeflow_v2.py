"""kubeflow_v2_runner.py compiles the local pipeline for Kubeflow Pipelines v2 / Vertex AI.

Everything here is offline: the pipeline is compiled into tmp_path with the
network cut off (see ``_no_network``), the spec is checked against the
pipeline local_runner.py runs, and KFP itself loads and re-compiles it.
"""

import fnmatch
import ipaddress
import json
import pathlib
import posixpath
import shlex
import socket
import subprocess
import sys

import pytest
import yaml

import kubeflow_v2_runner
from conftest import dockerfile_instructions
from pipeline import cloud
from pipeline import configs
from trainer import model_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

PROJECT = "test-project"
REGION = "europe-west4"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/memrec/pipeline:test"
OUTPUT_ROOT = "gs://test-bucket/memrec"

# Settings of the Dataflow run: the user's Beam flags follow the defaults
# unchanged, so a flag the runner drops, alters or reorders fails the comparison.
USER_BEAM_ARGS = [
    "--worker_machine_type=n2-standard-8",
    "--max_num_workers=7",
    "--service_account_email=beam@test-project.iam.gserviceaccount.com",
]
DATAFLOW_FLAGS = ["--dataflow", *(f"--beam-arg={flag}" for flag in USER_BEAM_ARGS)]
EXPECTED_DATAFLOW_ARGS = (
    cloud.dataflow_beam_pipeline_args(
        project=PROJECT, region=REGION, temp_location=f"{OUTPUT_ROOT}/tmp"
    )
    + USER_BEAM_ARGS
)

# The components that run Beam, per the issue: these get the Dataflow flags.
BEAM_COMPONENTS = {"ArrowCsvExampleGen", "StatisticsGen", "Transform", "Evaluator"}


def _runner_argv(*extra):
    return [
        f"--project={PROJECT}",
        f"--region={REGION}",
        f"--output-root={OUTPUT_ROOT}",
        f"--image={IMAGE}",
        *extra,
    ]


# --- network guard -----------------------------------------------------------


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host == "localhost":
        return True
    try:
        # An IPv6 address may carry a zone: "fe80::1%eth0".
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkAttempt(AssertionError):
    pass


@pytest.fixture(scope="module")
def network_attempts():
    """Fails and records any connection or name lookup beyond loopback.

    Covers Python's sockets (HTTP clients, gRPC's Python side, google-auth's
    metadata-server probe); not native code that opens its own sockets.
    """
    attempts = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what, target):
        attempts.append(f"{what} {target!r}")
        raise NetworkAttempt(f"test opened a network connection: {what} {target!r}")

    def remote(sock, address) -> bool:
        # AF_UNIX addresses are paths, local by definition.
        return sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0])

    def guarded_connect(sock, address):
        if remote(sock, address):
            refuse("connect", address)
        return real_connect(sock, address)

    def guarded_connect_ex(sock, address):
        if remote(sock, address):
            refuse("connect_ex", address)
        return real_connect_ex(sock, address)

    def guarded_sendto(sock, data, *flags_and_address):
        if remote(sock, flags_and_address[-1]):
            refuse("sendto", flags_and_address[-1])
        return real_sendto(sock, data, *flags_and_address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host):
            refuse("getaddrinfo", host)
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        patch.setattr(socket.socket, "sendto", guarded_sendto)
        patch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        yield attempts


# --- compiled specs, shared by the tests below --------------------------------


def _compile(tmp_path_factory, name, *extra):
    output_file = tmp_path_factory.mktemp(name) / "pipeline.json"
    assert kubeflow_v2_runner.main(_runner_argv(f"--output-file={output_file}", *extra)) == 0
    text = output_file.read_text()
    return text, json.loads(text)


@pytest.fixture(scope="module")
def container_spec(tmp_path_factory, network_attempts):
    """Defaults: Beam in each container, stock Trainer, Pusher to gs://."""
    return _compile(tmp_path_factory, "container")


@pytest.fixture(scope="module")
def cloud_spec(tmp_path_factory, network_attempts):
    """Dataflow, Vertex AI Training and a Vertex AI Endpoint."""
    return _compile(
        tmp_path_factory,
        "cloud",
        *DATAFLOW_FLAGS,
        "--vertex-training",
        "--training-accelerator-type=NVIDIA_TESLA_T4",
        "--vertex-endpoint",
        "--endpoint-name=memrec-endpoint",
    )


@pytest.fixture(scope="module")
def local_nodes():
    """Node id -> upstream node ids of the pipeline local_runner.py runs, in its order."""
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
    from tfx.dsl.compiler import compiler  # pylint: disable=g-import-not-at-top

    from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top

    config = configs.PipelineConfig(
        data_root="/data",
        output_root="/out",
        beam_pipeline_args=configs.local_beam_pipeline_args(),
    )
    ir = compiler.Compiler().compile(
        pipeline_lib.create_pipeline(
            config, tfx.orchestration.metadata.sqlite_metadata_connection_config("/out/m.db")
        )
    )
    return {
        node.pipeline_node.node_info.id: set(node.pipeline_node.upstream_nodes) for node in ir.nodes
    }


def _tasks(job):
    return job["pipelineSpec"]["root"]["dag"]["tasks"]


def _executors(job):
    return job["pipelineSpec"]["deploymentSpec"]["executors"]


def _executor_of(job, task_name):
    component = job["pipelineSpec"]["components"][_tasks(job)[task_name]["componentRef"]["name"]]
    return _executors(job)[component["executorLabel"]]


def _task_upstreams(task):
    """Tasks a task waits for: explicit dependencies and the producers of its inputs."""
    upstream = set(task.get("dependentTasks", []))
    for artifact in task.get("inputs", {}).get("artifacts", {}).values():
        if "taskOutputArtifact" in artifact:
            upstream.add(artifact["taskOutputArtifact"]["producerTask"])
    return upstream


def _node_of_task(task_name, node_ids):
    """The local node a KFP task comes from.

    KFP has no resolver node: TFX splits a Resolver into one task per
    resolved input, named ``<node id>-<input>-resolver``.
    """
    if task_name in node_ids:
        return task_name
    (node_id,) = [n for n in node_ids if task_name.startswith(f"{n}-")]
    return node_id


def _beam_args(job, task_name):
    """The Beam flags the task's container gets after TFX's own arguments."""
    args = _executor_of(job, task_name)["container"]["args"]
    return args[args.index("--json_serialized_invocation_args") + 2 :]


# --- the compiled pipeline is the local one ------------------------------------


@pytest.mark.parametrize("spec", ["container_spec", "cloud_spec"])
def test_every_local_component_is_compiled(spec, local_nodes, request):
    _, job = request.getfixturevalue(spec)
    tasks = _tasks(job)
    assert {_node_of_task(t, local_nodes) for t in tasks} == set(local_nodes)
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == configs.PIPELINE_NAME


@pytest.mark.parametrize("spec", ["container_spec", "cloud_spec"])
def test_tasks_wait_for_the_same_upstream_components_as_locally(spec, local_nodes, request):
    _, job = request.getfixturevalue(spec)
    node_ids = list(local_nodes)
    kfp_upstreams = {node_id: set() for node_id in node_ids}
    for task_name, task in _tasks(job).items():
        node_id = _node_of_task(task_name, node_ids)
        kfp_upstreams[node_id] |= {_node_of_task(u, node_ids) for u in _task_upstreams(task)}
        # Edges between the tasks of one split resolver are internal to it.
        kfp_upstreams[node_id].discard(node_id)

    assert kfp_upstreams == local_nodes
    # The bad-data gate still holds Transform back on Vertex AI.
    assert "AnomaliesGate" in _tasks(job)["Transform"]["dependentTasks"]
    # The local order is a valid run order of the compiled DAG.
    for node_id, upstreams in kfp_upstreams.items():
        for upstream in upstreams:
            assert node_ids.index(upstream) < node_ids.index(node_id), (upstream, node_id)


@pytest.mark.parametrize("spec", ["container_spec", "cloud_spec"])
def test_every_container_runs_the_configured_image(spec, request):
    _, job = request.getfixturevalue(spec)
    for label, executor in _executors(job).items():
        if "container" in executor:
            assert executor["container"]["image"] == IMAGE, label
        else:
            # Resolvers are metadata queries that Vertex AI runs itself.
            assert set(executor) == {"resolver"}, label
            assert label.startswith("latest_blessed_model_resolver-"), label


@pytest.mark.parametrize("spec", ["container_spec", "cloud_spec"])
def test_code_is_referenced_by_module_path_and_files_by_container_path(spec, request):
    text, job = request.getfixturevalue(spec)
    assert "components.preprocessing.preprocessing_fn" in text
    assert "trainer.task.run_fn" in text
    assert "module_file" not in text
    # Nothing of this checkout leaks into what runs in the image.
    assert str(REPO_ROOT) not in text
    schema_file = _tasks(job)["ImportSchemaGen"]["inputs"]["parameters"]["schema_file"]
    assert schema_file["runtimeValue"]["constantValue"]["stringValue"] == (
        f"{cloud.CONTAINER_SCHEMA_DIR}/schema.pbtxt"
    )


def test_outputs_go_under_the_output_root(container_spec):
    _, job = container_spec
    pipeline_root = f"{OUTPUT_ROOT}/pipelines/{configs.PIPELINE_NAME}"
    assert job["runtimeConfig"]["gcsOutputDirectory"] == pipeline_root
    data = _tasks(job)["ArrowCsvExampleGen"]["inputs"]["parameters"]["input_base"]
    assert data["runtimeValue"]["constantValue"]["stringValue"] == f"{OUTPUT_ROOT}/data"


# --- Dataflow --------------------------------------------------------------------


def test_beam_components_carry_the_dataflow_settings_when_asked(cloud_spec):
    text, job = cloud_spec
    for task_name in BEAM_COMPONENTS:
        assert _beam_args(job, task_name) == EXPECTED_DATAFLOW_ARGS, task_name
    # ExampleGen's driver resolves input spans before the executor runs.
    pre_cache_check = _executor_of(job, "ArrowCsvExampleGen")["container"]["lifecycle"][
        "preCacheCheck"
    ]
    assert pre_cache_check["args"][-len(EXPECTED_DATAFLOW_ARGS) :] == EXPECTED_DATAFLOW_ARGS
    assert f"--setup_file={cloud.CONTAINER_SETUP_FILE}" in text


def test_beam_components_run_in_their_container_when_dataflow_is_off(container_spec):
    text, job = container_spec
    for task_name in BEAM_COMPONENTS:
        assert _beam_args(job, task_name) == cloud.container_beam_pipeline_args(), task_name
    assert "DataflowRunner" not in text
    assert "--project=" not in text
    assert "--temp_location" not in text


def test_the_beam_components_are_the_ones_expected():
    from tfx.dsl.components.base import base_beam_component  # pylint: disable=g-import-not-at-top

    from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top

    config = kubeflow_v2_runner.build_config(kubeflow_v2_runner.parse_args(_runner_argv()))
    beam_components = {
        component.id
        for component in pipeline_lib.create_pipeline(config).components
        if isinstance(component, base_beam_component.BaseBeamComponent)
    }
    assert beam_components == BEAM_COMPONENTS


def _built_beam_args(*flags):
    return kubeflow_v2_runner.build_config(
        kubeflow_v2_runner.parse_args(_runner_argv(*flags))
    ).beam_pipeline_args


def test_dataflow_args_built_from_the_runner_flags():
    assert _built_beam_args(*DATAFLOW_FLAGS) == EXPECTED_DATAFLOW_ARGS
    assert "--runner=DataflowRunner" in EXPECTED_DATAFLOW_ARGS
    assert "--autoscaling_algorithm=THROUGHPUT_BASED" in EXPECTED_DATAFLOW_ARGS


def test_beam_args_follow_the_dataflow_defaults_and_override_them():
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top

    defaults = cloud.dataflow_beam_pipeline_args(PROJECT, REGION, f"{OUTPUT_ROOT}/tmp")
    # --machine_type is Beam's other name for --worker_machine_type (one dest).
    user = ["--max_num_workers=7", "--machine_type=n2-standard-8", "--disk_size_gb=50"]
    args = _built_beam_args("--dataflow", *(f"--beam-arg={flag}" for flag in user))
    assert args == defaults + user
    # What the Dataflow job is built from: the last value wins.
    workers = pipeline_options.PipelineOptions(args).view_as(pipeline_options.WorkerOptions)
    assert workers.max_num_workers == 7
    assert workers.machine_type == "n2-standard-8"
    assert workers.disk_size_gb == 50
    assert f"--max_num_workers={cloud.DEFAULT_DATAFLOW_MAX_WORKERS}" in defaults


def test_beam_args_follow_the_container_defaults_too():
    args = _built_beam_args("--beam-arg=--direct_num_workers=2")
    assert args == cloud.container_beam_pipeline_args() + ["--direct_num_workers=2"]


def test_a_beam_arg_that_is_no_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        kubeflow_v2_runner.parse_args(_runner_argv("--beam-arg", "max_num_workers=7"))
    assert exit_info.value.code == 2
    assert "--beam-arg: takes a Beam flag" in capsys.readouterr().err


def test_dataflow_args_mean_to_beam_what_they_say():
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
    from tfx.utils import dependency_utils  # pylint: disable=g-import-not-at-top

    # With the --beam-arg flags docs/deploy.md shows, so their names are checked too.
    args = cloud.dataflow_beam_pipeline_args(
        project=PROJECT,
        region=REGION,
        temp_location="gs://test-bucket/tmp",
        machine_type="n2-highmem-4",
        max_num_workers=12,
    ) + [
        "--disk_size_gb=100",
        "--service_account_email=beam@test-project.iam.gserviceaccount.com",
        "--subnetwork=regions/europe-west4/subnetworks/beam",
        f"--sdk_container_image={IMAGE}",
    ]
    options = pipeline_options.PipelineOptions(args)
    # Every flag is one Beam knows (unknown ones would only be kept here).
    assert options.get_all_options(drop_default=True) == options.get_all_options(
        drop_default=True, retain_unknown_options=True
    )
    assert len(options.get_all_options(drop_default=True)) == len(args)

    assert options.view_as(pipeline_options.StandardOptions).runner == "DataflowRunner"
    gcp = options.view_as(pipeline_options.GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location) == (
        PROJECT,
        REGION,
        "gs://test-bucket/tmp",
    )
    workers = options.view_as(pipeline_options.WorkerOptions)
    assert workers.machine_type == "n2-highmem-4"
    assert workers.autoscaling_algorithm == "THROUGHPUT_BASED"
    assert workers.max_num_workers == 12
    assert workers.disk_size_gb == 100
    assert gcp.service_account_email == "beam@test-project.iam.gserviceaccount.com"
    assert workers.subnetwork == "regions/europe-west4/subnetworks/beam"
    assert workers.sdk_container_image == IMAGE
    assert options.view_as(pipeline_options.SetupOptions).setup_file == "/pipeline/setup.py"
    # A named setup file means TFX adds no sdist of its own to each job.
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_dataflow_needs_a_cloud_storage_temp_location():
    with pytest.raises(ValueError, match="gs://"):
        cloud.dataflow_beam_pipeline_args(PROJECT, REGION, temp_location="/tmp/beam")


# --- Vertex AI Training and Endpoint ----------------------------------------------


def _custom_config(job, task_name):
    value = _tasks(job)[task_name]["inputs"]["parameters"]["custom_config"]
    return json.loads(value["runtimeValue"]["constantValue"]["stringValue"])


def _executor_class(job, task_name):
    args = _executor_of(job, task_name)["container"]["args"]
    return args[args.index("--executor_class_path") + 1]


def test_stock_trainer_and_the_atomic_pusher_by_default(container_spec):
    _, job = container_spec
    assert _executor_class(job, "Trainer") == "tfx.components.trainer.executor.GenericExecutor"
    assert _executor_class(job, "Pusher") == "components.pusher.Executor"
    assert set(_custom_config(job, "Trainer")) == {"model", "code_fingerprint"}
    push_destination = _tasks(job)["Pusher"]["inputs"]["parameters"]["push_destination"]
    assert f"{OUTPUT_ROOT}/serving_model/{configs.PIPELINE_NAME}" in json.dumps(push_destination)


def _vertex_custom_config(job, task_name):
    """TFX's Vertex AI extension and the task's custom_config, checked to run the
    extension's executor on Vertex AI in the runner's region."""
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

    ai_platform = tfx.extensions.google_cloud_ai_platform
    assert _executor_class(job, task_name).startswith("tfx.extensions.google_cloud_ai_platform.")
    custom_config = _custom_config(job, task_name)
    assert custom_config[ai_platform.ENABLE_VERTEX_KEY] is True
    assert custom_config[ai_platform.VERTEX_REGION_KEY] == REGION
    return ai_platform, custom_config


def test_trainer_runs_as_a_vertex_job_in_the_pipeline_image(cloud_spec):
    _, job = cloud_spec
    ai_platform, custom_config = _vertex_custom_config(job, "Trainer")
    training_args = custom_config[ai_platform.TRAINING_ARGS_KEY]
    assert training_args["project"] == PROJECT
    (worker_pool,) = training_args["worker_pool_specs"]
    assert worker_pool["container_spec"]["image_uri"] == IMAGE
    assert worker_pool["machine_spec"] == {
        "machine_type": cloud.DEFAULT_TRAINING_MACHINE_TYPE,
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 1,
    }
    # run_fn still finds its model settings next to the Vertex ones.
    assert custom_config["model"]["name"] == model_config.DEFAULT_MODEL


def test_pusher_deploys_to_a_vertex_endpoint(cloud_spec):
    _, job = cloud_spec
    ai_platform, custom_config = _vertex_custom_config(job, "Pusher")
    assert custom_config[ai_platform.VERTEX_CONTAINER_IMAGE_URI_KEY].startswith(
        "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu."
    )
    serving_args = custom_config[ai_platform.SERVING_ARGS_KEY]
    assert serving_args["project_id"] == PROJECT
    assert serving_args["endpoint_name"] == "memrec-endpoint"


# --- KFP accepts the spec ----------------------------------------------------------


@pytest.mark.parametrize("spec", ["container_spec", "cloud_spec"])
def test_kfp_loads_and_recompiles_the_spec(spec, request, tmp_path):
    """Parses the spec as KFP's own protos, loads it as a KFP component and compiles it again.

    There is no offline "validate" call in kfp 2.5; what it offers offline:
    - ``pipeline_spec_pb2`` (kfp-pipeline-spec, the schema Vertex AI and the
      KFP backend read) parses the file strictly: an unknown or mistyped field
      is an error.
    - ``kfp.components.load_component_from_text`` loads a compiled pipeline
      (the PipelineSpec document) as a graph component.
    - ``kfp.compiler.Compiler`` compiles a KFP pipeline that calls it, which
      walks every task, input and executor of the TFX pipeline.
    """
    import kfp  # pylint: disable=g-import-not-at-top
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from kfp import compiler  # pylint: disable=g-import-not-at-top
    from kfp import dsl  # pylint: disable=g-import-not-at-top
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=g-import-not-at-top

    _, job = request.getfixturevalue(spec)
    pipeline_job = json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())
    pipeline_spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert pipeline_job.runtime_config.gcs_output_directory.startswith(OUTPUT_ROOT)
    assert pipeline_spec.schema_version in ("2.0.0", "2.1.0")

    # What the backend resolves by name must exist.
    tasks = pipeline_spec.root.dag.tasks
    for task_name, task in tasks.items():
        component = pipeline_spec.components[task.component_ref.name]
        assert component.executor_label in pipeline_spec.deployment_spec["executors"], task_name
        assert set(_task_upstreams(job["pipelineSpec"]["root"]["dag"]["tasks"][task_name])) <= set(
            tasks
        ), task_name

    tfx_pipeline = kfp.components.load_component_from_text(yaml.safe_dump(job["pipelineSpec"]))
    assert tfx_pipeline.name == configs.PIPELINE_NAME
    assert set(tfx_pipeline.pipeline_spec.root.dag.tasks) == set(tasks)

    @dsl.pipeline(name="calls-the-tfx-pipeline")
    def wrapper():
        tfx_pipeline()

    recompiled_file = tmp_path / "recompiled.yaml"
    compiler.Compiler().compile(wrapper, str(recompiled_file))
    recompiled = yaml.safe_load(recompiled_file.read_text())
    (outer_task,) = recompiled["root"]["dag"]["tasks"].values()
    inner = recompiled["components"][outer_task["componentRef"]["name"]]
    assert set(inner["dag"]["tasks"]) == set(tasks)


def test_yaml_output_is_a_kfp_pipeline_spec(tmp_path, network_attempts):
    """``--output-file *.yaml`` writes the PipelineSpec, which KFP uploads and loads as is."""
    import kfp  # pylint: disable=g-import-not-at-top

    output_file = tmp_path / "pipeline.yaml"
    assert kubeflow_v2_runner.main(_runner_argv(f"--output-file={output_file}")) == 0
    tfx_pipeline = kfp.components.load_component_from_file(str(output_file))
    assert tfx_pipeline.name == configs.PIPELINE_NAME
    assert "Trainer" in tfx_pipeline.pipeline_spec.root.dag.tasks


# --- no network ----------------------------------------------------------------------


def test_compiling_opened_no_network_connection(container_spec, cloud_spec, network_attempts):
    assert network_attempts == []


def test_the_network_guard_refuses_remote_and_allows_loopback(network_attempts):
    # Checked on the patched function itself, so nothing is sent if it failed.
    assert socket.socket.connect.__name__ == "guarded_connect"
    assert socket.getaddrinfo.__name__ == "guarded_getaddrinfo"
    before = len(network_attempts)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkAttempt):
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed
    with pytest.raises(NetworkAttempt):
        socket.getaddrinfo("storage.googleapis.com", 443)
    assert socket.getaddrinfo("127.0.0.1", 9)
    # The refusals above were this test's own; forget them.
    del network_attempts[before:]


# --- runner flags ----------------------------------------------------------------------


def test_runner_defaults_derive_from_project_and_region(monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    args = kubeflow_v2_runner.parse_args(["--project=p1", "--region=us-east1"])
    assert args.output_root == "gs://p1-memrec"
    assert args.data_root == "gs://p1-memrec/data"
    assert args.image == "us-east1-docker.pkg.dev/p1/memrec/pipeline:latest"
    assert args.dataflow_temp_location == "gs://p1-memrec/tmp"
    assert not args.dataflow and not args.vertex_training and not args.submit


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no project for the defaults
        [f"--project={PROJECT}", "--data-root=/home/me/ratings"],  # not readable on Vertex AI
        [f"--project={PROJECT}", "--output-root=outputs"],
    ],
)
def test_runner_rejects_settings_that_cannot_run_on_google_cloud(argv, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        kubeflow_v2_runner.parse_args(argv)
    assert exit_info.value.code == 2


def test_vertex_setting_flags_take_cloud_defaults_and_reach_the_config():
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

    ai_platform = tfx.extensions.google_cloud_ai_platform
    args = kubeflow_v2_runner.parse_args(_runner_argv())
    assert args.training_machine_type == cloud.DEFAULT_TRAINING_MACHINE_TYPE
    assert args.training_accelerator_type is None
    assert args.serving_machine_type == cloud.DEFAULT_SERVING_MACHINE_TYPE
    assert args.serving_image is None

    config = kubeflow_v2_runner.build_config(
        kubeflow_v2_runner.parse_args(
            _runner_argv(
                "--vertex-training",
                "--training-accelerator-type=NVIDIA_L4",
                "--training-accelerator-count=2",
                "--vertex-endpoint",
                "--serving-image=gcr.io/p/serving:1",
                "--serving-machine-type=n1-standard-2",
            )
        )
    )
    (worker_pool,) = config.vertex_training[ai_platform.TRAINING_ARGS_KEY]["worker_pool_specs"]
    assert worker_pool["machine_spec"] == {
        "machine_type": cloud.DEFAULT_TRAINING_MACHINE_TYPE,
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 2,
    }
    serving = config.vertex_serving
    assert serving[ai_platform.VERTEX_CONTAINER_IMAGE_URI_KEY] == "gcr.io/p/serving:1"
    assert serving[ai_platform.SERVING_ARGS_KEY]["machine_type"] == "n1-standard-2"


def test_runner_help_is_quick_and_documents_the_settings():
    result = subprocess.run(
        [sys.executable, "kubeflow_v2_runner.py", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for flag in ["--project", "--region", "--output-root", "--data-root", "--image", "--dataflow"]:
        assert flag in result.stdout
    assert "--vertex-endpoint" in result.stdout and "--submit" in result.stdout
    assert "--beam-arg" in result.stdout


# --- Docker build context ----------------------------------------------------------------


def _dockerignore_patterns():
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    # Exceptions would need Docker's full matcher; this file has none.
    assert not any(p.startswith("!") for p in patterns)
    return [p.rstrip("/") for p in patterns]


def _dockerignored(relative_path, patterns):
    """Docker leaves a path out when a pattern matches it or a folder above it."""
    parts = relative_path.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        for pattern in patterns:
            if fnmatch.fnmatch(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatch(parts[depth - 1], pattern[3:]):
                return True
    return False


def test_image_builds_on_tfx_and_installs_the_package_where_the_runner_expects_it():
    instructions = dockerfile_instructions()
    # A multi-stage build: the last stage is the image, earlier ones only lend it
    # files (Beam's worker boot program, see tests/test_packaging.py).
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    instructions = instructions[last_from:]
    assert instructions[0] == ("FROM", "tensorflow/tfx:1.16.0")

    (workdir,) = [arguments for keyword, arguments in instructions if keyword == "WORKDIR"]
    assert workdir == cloud.CONTAINER_PROJECT_ROOT

    copies = [
        shlex.split(arguments)
        for keyword, arguments in instructions
        if keyword == "COPY" and not arguments.startswith("--from=")
    ]
    assert copies
    copied_sources = []
    for copy in copies:
        *sources, destination = [part for part in copy if not part.startswith("--")]
        assert posixpath.normpath(posixpath.join(workdir, destination)).startswith(
            cloud.CONTAINER_PROJECT_ROOT
        )
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the build context"
            copied_sources.append(posixpath.normpath(source))

    # What the image needs at run time is copied and not left out by .dockerignore.
    patterns = _dockerignore_patterns()
    for needed in [
        "setup.py",
        "constraints.txt",
        posixpath.relpath(
            f"{cloud.CONTAINER_SCHEMA_DIR}/schema.pbtxt", cloud.CONTAINER_PROJECT_ROOT
        ),
        "components/preprocessing.py",
        "trainer/task.py",
        "pipeline/pipeline.py",
    ]:
        assert (REPO_ROOT / needed).is_file(), needed
        assert any(s == "." or needed == s or needed.startswith(f"{s}/") for s in copied_sources), (
            needed
        )
        assert not _dockerignored(needed, patterns), needed

    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    install = [run for run in runs if "pip install" in run]
    assert install, "the Dockerfile installs nothing"
    install_words = shlex.split(install[0].split("&&")[0])
    assert "-c" in install_words and install_words[install_words.index("-c") + 1] == (
        "constraints.txt"
    )
    assert install_words[-1] == "."
    assert "-e" not in install_words and "--editable" not in install_words
    # Installed after the sources are in place.
    keywords = [keyword for keyword, _ in instructions]
    install_index = [i for i, (k, a) in enumerate(instructions) if k == "RUN" and a == install[0]]
    assert max(i for i, k in enumerate(keywords) if k == "COPY") < install_index[0]


def test_dockerignore_keeps_local_state_out_of_the_image():
    patterns = _dockerignore_patterns()
    for local_only in [".venv/bin/python", "outputs/metadata/x.db", ".git/HEAD"]:
        assert _dockerignored(local_only, patterns), local_only
    assert _dockerignored("trainer/__pycache__/task.cpython-310.pyc", patterns)


def test_model_and_evaluation_flags_match_the_local_runner(tmp_path):
    import local_runner

    shared = [
        "--model",
        "baseline",
        "--epochs",
        "4",
        "--movie-embedding",
        '{"type": "md", "blocks": 3}',
        "--rmse-upper-bound",
        "0.95",
        "--rmse-max-increase",
        "0.02",
        "--compare-full-model",
    ]
    local = local_runner.pipeline_config(local_runner.parse_args(shared), str(tmp_path))
    cloud_config = kubeflow_v2_runner.build_config(
        kubeflow_v2_runner.parse_args(["--project", PROJECT, *shared])
    )
    assert cloud_config.model == local.model
    assert cloud_config.evaluation == local.evaluation
    assert cloud_config.compare_full_model and local.compare_full_model
    assert local.model.movie_embedding == {"type": "md", "blocks": 3}


# --- open-source Kubeflow Pipelines -------------------------------------------------


@pytest.fixture(scope="module")
def kubeflow_spec(tmp_path_factory, network_attempts):
    """--platform kubeflow, written as the PipelineSpec YAML a KFP v2 cluster uploads."""
    output_file = tmp_path_factory.mktemp("kubeflow") / "pipeline.yaml"
    argv = _runner_argv("--platform=kubeflow", f"--output-file={output_file}")
    assert kubeflow_v2_runner.main(argv) == 0
    return yaml.safe_load(output_file.read_text())


def test_the_kubeflow_spec_has_no_resolver_executor(kubeflow_spec):
    executors = kubeflow_spec["deploymentSpec"]["executors"]
    assert executors
    for label, executor in executors.items():
        assert "resolver" not in executor, label
        assert executor["container"]["image"] == IMAGE, label
    tasks = kubeflow_spec["root"]["dag"]["tasks"]
    assert not [t for t in tasks if t.startswith(configs.LATEST_BLESSED_MODEL_RESOLVER_ID)]
    # The push is still guarded by both blessings.
    pusher_inputs = tasks["Pusher"]["inputs"]["artifacts"]
    assert pusher_inputs["model_blessing"]["taskOutputArtifact"]["producerTask"] == "Evaluator"
    assert pusher_inputs["infra_blessing"]["taskOutputArtifact"]["producerTask"] == (
        configs.SERVING_CHECK_ID
    )


def test_the_vertex_spec_keeps_its_baseline_and_is_guarded_by_the_serving_check(container_spec):
    _, job = container_spec
    tasks = _tasks(job)
    assert [t for t in tasks if t.startswith(configs.LATEST_BLESSED_MODEL_RESOLVER_ID)]
    assert "baseline_model" in tasks["Evaluator"]["inputs"]["artifacts"]
    assert configs.SERVING_CHECK_ID in _task_upstreams(tasks["Pusher"])


@pytest.mark.parametrize("flag", ["--vertex-training", "--vertex-endpoint", "--submit"])
def test_kubeflow_refuses_vertex_only_flags(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        kubeflow_v2_runner.parse_args(_runner_argv("--platform=kubeflow", flag))
    assert exit_info.value.code == 2
    assert f"{flag} needs --platform=vertex" in capsys.readouterr().err
