"""How many processes the local run's data-parallel Beam steps use, decided from the data's size.

Beam's in-process engine runs a step's Python on one core. On large data,
StatisticsGen, Transform's analysis and the Evaluator are that Python, so
the plan runs those three in worker processes, one per usable core (Beam's
``multi_processing`` mode); ExampleGen, which mostly waits on the file and
the gzip writer, stays in-process. Each worker imports TensorFlow and the
step's libraries first, a cost only data past ``PARALLEL_FROM_BYTES`` repays
(``benchmarks/results/scale.json`` holds the runs behind it). From
``EVALUATOR_IN_PROCESS_FROM_BYTES`` the Evaluator goes back to this process:
each of its workers loads the model with the vocabularies of millions of
ids, so the workers roughly doubled the run's peak memory; one process is
slower there, and the plan takes the memory over the time (``docs/scale.md``
has both runs). A user's own ``--direct_running_mode`` or
``--direct_num_workers`` flag replaces the plan.
"""

from __future__ import annotations

import dataclasses
import os

# Ratings-file size from which worker processes pay for their start-up.
PARALLEL_FROM_BYTES = 64_000_000
# Ratings-file size (about 10M ratings) from which the Evaluator's workers
# would each hold a model too large to copy per core.
EVALUATOR_IN_PROCESS_FROM_BYTES = 256_000_000
# The Beam flags that choose the engine's processes; a user who sets one decides.
_ENGINE_FLAGS = ("--direct_running_mode", "--direct_num_workers")


@dataclasses.dataclass(frozen=True)
class BeamPlan:
    """Extra Beam flags for the data-parallel steps, and why."""

    workers: int  # 1: the steps run in this process
    reason: str
    evaluator_in_process: bool = False

    @property
    def parallel_step_args(self) -> list[str]:
        """Flags for StatisticsGen and Transform."""
        if self.workers <= 1:
            return []
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={self.workers}"]

    @property
    def evaluator_args(self) -> list[str]:
        return [] if self.evaluator_in_process else self.parallel_step_args

    def describe(self) -> str:
        if self.workers <= 1:
            return f"Beam: every step in this process ({self.reason})"
        if self.evaluator_in_process:
            return (
                f"Beam: StatisticsGen and Transform in {self.workers} worker processes, "
                f"the Evaluator in this process ({self.reason})"
            )
        return (
            f"Beam: StatisticsGen, Transform and the Evaluator in {self.workers} worker "
            f"processes ({self.reason})"
        )


def plan(data_bytes: int | None, user_beam_args: list[str], cpus: int | None = None) -> BeamPlan:
    """The plan for a ratings file of ``data_bytes`` (None: unknown, kept in-process)."""
    if any(arg.split("=", 1)[0] in _ENGINE_FLAGS for arg in user_beam_args):
        return BeamPlan(1, "as your --beam-arg flags set")
    cpus = usable_cpus() if cpus is None else cpus
    if data_bytes is None:
        return BeamPlan(1, "data size unknown")
    size = f"{data_bytes / 1e6:,.1f} MB of ratings"
    if data_bytes < PARALLEL_FROM_BYTES:
        limit = f"{PARALLEL_FROM_BYTES / 1e6:,.0f} MB"
        return BeamPlan(1, f"{size}, under the {limit} that repays worker processes")
    if cpus < 2:
        return BeamPlan(1, f"{size}, but 1 usable CPU")
    if data_bytes >= EVALUATOR_IN_PROCESS_FROM_BYTES:
        limit = f"{EVALUATOR_IN_PROCESS_FROM_BYTES / 1e6:,.0f} MB"
        why = (
            f"{size}, {cpus} usable CPUs; from {limit} one model per Evaluator worker costs memory"
        )
        return BeamPlan(cpus, why, evaluator_in_process=True)
    return BeamPlan(cpus, f"{size}, {cpus} usable CPUs")


def usable_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota."""
    cpus = len(os.sched_getaffinity(0))
    try:
        with open(os.path.join(cgroup_root, "cpu.max")) as f:
            quota, period = f.read().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cpus
