"""Rule ``evaluator-ddp``: an evaluator synced over 2 gloo ranks equals it on one process.

Each rank builds the evaluator afresh (the hook module is imported in a new interpreter), updates
it on its half of the example inputs (samples ``rank::2``) and calls ``compute()``, which syncs the
declared states across ranks; rank 0 writes the results. The parent compares them with one
instance updated on all inputs. One 2-process job checks every evaluator of a plugin.

Run as ``python -m asklepios_sdk.testing._ddp JOB RANK`` (the parent does this).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from asklepios_sdk.io import write_atomic

__all__ = ["run_ddp_job", "shard"]


def shard(value: Any, rank: int, world_size: int, batch_size: int) -> Any:
    """Return this rank's samples ``rank::world_size`` of every batch-first tensor or list."""
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch_size:
        return value[rank::world_size]
    if isinstance(value, list) and len(value) == batch_size:  # text answers, questions
        return value[rank::world_size]
    if isinstance(value, Mapping):
        return {k: shard(v, rank, world_size, batch_size) for k, v in value.items()}
    return value


def _scalars(result: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(torch.as_tensor(v).double()) for k, v in result.items()}


def _worker(job_file: str, rank: int) -> None:
    import torch.distributed as dist

    from asklepios_sdk.testing._collect import collect
    from asklepios_sdk.testing._config import host_components
    from asklepios_sdk.testing._rules_eval import fit_example

    with open(job_file, "rb") as handle:
        job = pickle.load(handle)
    dist.init_process_group(
        "gloo", init_method=f"file://{job['rendezvous']}", rank=rank, world_size=2
    )
    entries = {e.component_id: e for e in collect(job["hooks"], job["plugin_id"]).entries}
    results: dict[str, Any] = {}
    for component_id, task in job["tasks"].items():  # every rank runs every task, in order
        entry = entries[component_id]
        try:
            params = entry.registration.params_model(**task["params"])
            ctx = task["ctx"].replace(rank=rank, world_size=2, components=host_components)
            evaluator = entry.factory()(params, ctx)
            outputs, batch = task["inputs"]
            size = task["batch_size"]
            outputs, batch = shard(outputs, rank, 2, size), shard(batch, rank, 2, size)
            fit_example(evaluator, outputs, batch)  # evaluators with fit_split fit first
            evaluator.update(outputs, batch)
            results[component_id] = _scalars(evaluator.compute())
        except Exception as err:  # reported per evaluator by the parent
            results[component_id] = f"{type(err).__name__}: {err}"
    if rank == 0:
        write_atomic(job["output"], pickle.dumps(results))
    dist.barrier()
    # Leave without tearing gloo down: its threads can abort a normal interpreter exit
    # ("terminate called without an active exception") once the other rank is gone.
    sys.stdout.flush()
    os._exit(0)


def run_ddp_job(
    hooks: str, plugin_id: str, tasks: Mapping[str, Mapping[str, Any]], timeout: float = 300.0
) -> dict[str, Any]:
    """Run every task (``{component id: {params, ctx, inputs, batch_size}}``) on 2 gloo ranks.

    Returns ``{component id: {key: value}}`` from rank 0, or an error text per component. Raises
    RuntimeError with both ranks' output when the job itself fails.
    """
    with tempfile.TemporaryDirectory(prefix="asklepios-ddp-") as tmp:
        job: dict[str, Any] = {
            "hooks": hooks,
            "plugin_id": plugin_id,
            "tasks": dict(tasks),
            "rendezvous": str(Path(tmp) / "rendezvous"),
            "output": str(Path(tmp) / "results.pkl"),
        }
        job_file = str(Path(tmp) / "job.pkl")
        with open(job_file, "wb") as handle:
            pickle.dump(job, handle)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env.setdefault("OMP_NUM_THREADS", "1")
        command = [sys.executable, "-m", "asklepios_sdk.testing._ddp", job_file]
        procs = [
            subprocess.Popen(
                [*command, str(rank)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for rank in (0, 1)
        ]
        outputs = []
        for proc in procs:
            try:
                outputs.append(proc.communicate(timeout=timeout)[0])
            except subprocess.TimeoutExpired:
                for other in procs:
                    other.kill()
                raise RuntimeError(
                    f"the 2-rank gloo job did not finish in {timeout:.0f} s"
                ) from None
        if any(proc.returncode != 0 for proc in procs) or not Path(job["output"]).is_file():
            text = "\n".join(f"rank {r}:\n{out[-2000:]}" for r, out in enumerate(outputs))
            raise RuntimeError(f"the 2-rank gloo job failed:\n{text}")
        with open(job["output"], "rb") as handle:
            return dict(pickle.load(handle))


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]))
