"""Sharding across ranks, and a real 2-process torchrun (gloo, CPU) against one process.

Stated tolerance: the 2-rank run averages the same global batches as the 1-rank run (each rank
takes every other index of the same global order, and DDP averages the two half-batch
gradients), with the same per-sample augmentation (keyed by the sample's place in the epoch) and,
for BatchNorm, statistics over both ranks (SyncBatchNorm), so the results differ only by float
summation order: first-epoch loss within 1e-5 relative, test loss within 1e-4 absolute,
accuracy-type metrics within 0.005 (measured: equal). The same holds with gradient accumulation,
where DDP all-reduces only on each optimizer step's last micro-batch.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from asklepios.build import build_experiment
from asklepios.builtins.samplers import RandomSampler
from asklepios.config import validate_config
from asklepios.sampling import (
    EvalShardSampler,
    ShardingWrapper,
    TrainBatchSampler,
    count_train_batches,
    ensure_sharded,
)
from asklepios_sdk import BuildContext, DataFacts, EmptyParams

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import REPO, RUNNER, make_config, probe_host, write_config


def _run_one_and_two(
    runner: Path,
    tmp_path: Path,
    one: dict,
    two: dict,
    env: dict,
    port: int,
    single_env: dict | None = None,
) -> None:
    """Run config ``one`` in one process and ``two`` under a 2-rank torchrun; both must succeed.

    Each writes its summaries to ``tmp_path/one*.json`` and ``tmp_path/two-<rank>.json``.
    """
    single = subprocess.run(
        [sys.executable, str(runner), str(write_config(tmp_path, one, "one.json")), "-"],
        cwd=REPO,
        env={**(single_env or env), "SUMMARY_OUT": str(tmp_path / "one")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert single.returncode == 0, single.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    config_two = str(write_config(tmp_path, two, "two.json"))
    launched = subprocess.run(
        [*torchrun, "--master_port", str(port), str(runner), config_two, "-"],
        cwd=REPO,
        env={**env, "SUMMARY_OUT": str(tmp_path / "two")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]


def test_sharded_sampler_gives_disjoint_shards_covering_the_epoch() -> None:
    ctx = BuildContext(data=DataFacts(num_samples=101), seed=7)
    shards = [
        list(RandomSampler(EmptyParams(), ctx.replace(rank=r, world_size=2))) for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 51
    single = list(RandomSampler(EmptyParams(), ctx))
    assert sorted(set(shards[0]) | set(shards[1])) == list(range(101))
    assert shards[0] == single[0::2] and shards[1][:50] == single[1::2]
    assert len(set(shards[0]) & set(shards[1])) == 1  # only the padding repeats an index


def test_plain_sampler_is_wrapped_to_shard() -> None:
    inner = torch.utils.data.RandomSampler(range(10), generator=torch.Generator())
    shards = [ensure_sharded(inner, r, 2, seed=1) for r in range(2)]
    assert all(isinstance(s, ShardingWrapper) for s in shards)
    for s in shards:
        s.set_epoch(3)
    a, b = (list(s) for s in shards)
    assert sorted(a + b) == list(range(10)) and not set(a) & set(b)
    assert ensure_sharded(inner, 0, 1, seed=1) is inner


def test_eval_shards_count_every_sample_once() -> None:
    parts = [list(EvalShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(11))


@pytest.mark.slow
def test_torchrun_two_ranks_agree_with_one_process(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["model"]["backbone"]["dropout"] = 0.0
    config["data"]["dataset"] = {"type": "core.digits", "test_per_class": 7, "val_per_class": 7}
    config["train"]["epochs"] = 2
    one = dict(config, output_dir=str(tmp_path / "one"))
    two = dict(config, output_dir=str(tmp_path / "two"))
    two["data"] = {**config["data"], "loader": {"batch_size": 16}}  # 2 x 16 = one batch of 32
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _run_one_and_two(runner, tmp_path, one, two, env, port=29517)
    rank0 = json.loads((tmp_path / "two-0.json").read_text())
    rank1 = json.loads((tmp_path / "two-1.json").read_text())
    assert rank0["test"] == rank1["test"]  # metrics are synced across ranks
    assert rank0["world_size"] == 2
    ref = json.loads((tmp_path / "one-0.json").read_text())
    for key, value in ref["test"].items():
        if isinstance(value, float):
            tol = 1e-4 if key == "loss" else 0.005
            assert rank0["test"][key] == pytest.approx(value, abs=tol), key
    run_dirs = [p for p in (tmp_path / "two").iterdir() if p.is_dir()]
    assert len(run_dirs) == 1  # rank 0 alone created and wrote the run directory
    run_dir = run_dirs[0]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["world_size"] == 2


COUNT_ALLREDUCES = """
import atexit, os
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

_init = DistributedDataParallel.__init__
_calls = [0]
_out = os.environ["ALLREDUCE_OUT"] + "-" + os.environ.get("RANK", "0")
atexit.register(lambda: open(_out, "w").write(str(_calls[0])))


def _counting_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)

    def hook(state, bucket):
        _calls[0] += 1
        return allreduce_hook(state, bucket)

    self.register_comm_hook(None, hook)


DistributedDataParallel.__init__ = _counting_init
"""


@pytest.mark.slow
def test_torchrun_accumulation_all_reduces_once_per_optimizer_step(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["model"]["backbone"]["dropout"] = 0.0
    config["data"]["dataset"] = {"type": "core.digits", "test_per_class": 7, "val_per_class": 7}
    config["train"]["epochs"] = 2
    one = dict(config, output_dir=str(tmp_path / "one"))
    two = dict(config, output_dir=str(tmp_path / "two"))
    # 2 ranks x 2 micro-batches x 8 = the same global batches of 32 as the single process
    two["data"] = {**config["data"], "loader": {"batch_size": 8}}
    two["train"] = {**config["train"], "accumulate": 2}
    runner = tmp_path / "runner.py"
    runner.write_text(COUNT_ALLREDUCES + RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ALLREDUCE_OUT": str(tmp_path / "calls")}
    single_env = {**env, "ALLREDUCE_OUT": str(tmp_path / "x")}
    _run_one_and_two(runner, tmp_path, one, two, env, port=29518, single_env=single_env)
    host = probe_host()
    built = build_experiment(validate_config(two, host=host), host.registry, rank=0, world_size=2)
    optimizer_steps = two["train"]["epochs"] * built.ctx.steps_per_epoch
    micro_batches = two["train"]["epochs"] * math.ceil(len(built.sampler) / 8)
    assert micro_batches > optimizer_steps
    for rank in ("0", "1"):  # one bucket (a small MLP): one all-reduce per optimizer step
        assert int((tmp_path / f"calls-{rank}").read_text()) == optimizer_steps
    rank0 = json.loads((tmp_path / "two-0.json").read_text())
    rank1 = json.loads((tmp_path / "two-1.json").read_text())
    assert rank0["test"] == rank1["test"]
    ref = json.loads((tmp_path / "one-0.json").read_text())
    for key, value in ref["test"].items():
        if isinstance(value, float):
            tol = 1e-4 if key == "loss" else 0.005
            assert rank0["test"][key] == pytest.approx(value, abs=tol), key


# -- rank invariance: batches, BatchNorm, per-sample randomness ------------------------------------


def test_a_last_batch_of_one_sample_is_dropped_unless_batchnorm_is_synced() -> None:
    assert count_train_batches(481, 32, drop_last=False, drop_single=True) == 15  # 15 x 32 + 1
    assert count_train_batches(481, 32, drop_last=False, drop_single=False) == 16
    assert count_train_batches(482, 32, drop_last=False, drop_single=True) == 16  # + 2: kept
    assert count_train_batches(482, 32, drop_last=True, drop_single=True) == 15
    assert count_train_batches(1, 32, drop_last=False, drop_single=True) == 1  # nothing else
    sampler = TrainBatchSampler(range(481), 32, drop_last=False, drop_single=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 15 and {len(b) for b in batches} == {32}


def test_two_ranks_draw_the_global_batches_of_one_process_with_the_same_keys() -> None:
    ctx = BuildContext(data=DataFacts(num_samples=100), seed=7)
    single = TrainBatchSampler(RandomSampler(EmptyParams(), ctx), 20, False, True)
    ranks = [
        TrainBatchSampler(
            RandomSampler(EmptyParams(), ctx.replace(rank=r, world_size=2)), 10, False, False, r, 2
        )
        for r in range(2)
    ]
    for sampler in (single, *ranks):
        sampler.set_epoch(3)
        sampler.sampler.set_epoch(3)
    one = list(single)
    halves = [list(r) for r in ranks]
    assert len(one) == len(halves[0]) == len(halves[1]) == 5
    for i, batch in enumerate(one):
        together = sorted(halves[0][i] + halves[1][i], key=lambda key: key.position)
        assert together == batch  # same samples, same positions, same epoch
    assert {key.epoch for batch in one for key in batch} == {3}


def _bn_host() -> object:
    import _fault_plugin

    host = probe_host()
    host.add_plugin(_fault_plugin, "fault")
    return host


def _bn_config(tmp_path: Path, **loader: int) -> dict:
    config = make_config(tmp_path)
    config["model"] = {"backbone": {"type": "fault.bn_mlp", "hidden": 16}}
    config["data"] = {**config["data"], "loader": loader}
    config["train"]["epochs"] = 1
    return config


def test_batchnorm_trains_when_the_last_batch_would_hold_one_sample(tmp_path: Path) -> None:
    from asklepios.engine.run import run_experiment

    host = _bn_host()
    config = _bn_config(tmp_path, batch_size=32)
    built = build_experiment(validate_config(config, host=host), host.registry)
    samples = len(built.sampler)
    config = _bn_config(tmp_path, batch_size=samples - 1)  # one full batch, then one sample
    summary = run_experiment(validate_config(config, host=host), host=host, quiet=True)
    assert summary["test"]["loss"] > 0
    rows = (next((tmp_path / "runs").iterdir()) / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[0])["step"] == 1  # the single-sample batch was dropped


def test_batchnorm_with_a_batch_of_one_is_a_located_error(tmp_path: Path) -> None:
    from asklepios.engine.loop import EngineError
    from asklepios.engine.run import run_experiment

    host = _bn_host()
    config = validate_config(_bn_config(tmp_path, batch_size=1), host=host)
    with pytest.raises(EngineError) as caught:
        run_experiment(config, host=host, quiet=True)
    assert str(caught.value) == (
        "stage main: data.loader.batch_size is 1, but the model's BatchNorm layers (body.2) "
        "cannot normalise a single sample in training; use --set data.loader.batch_size=2 "
        "(or more)"
    )


def _sync_bn_worker(rank: int, port: int, inputs: torch.Tensor, out: str) -> None:
    import torch.distributed as dist
    from asklepios.engine.distributed import convert_sync_batchnorm

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = convert_sync_batchnorm(_conv_bn(), torch.device("cpu"))
    output = model(inputs[rank::2])
    output.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    for grad in grads:  # what DDP does with the gradients
        dist.all_reduce(grad)
        grad /= 2
    bn = model[1]
    torch.save(
        {"out": output.detach(), "grads": grads, "mean": bn.running_mean, "var": bn.running_var},
        f"{out}-{rank}.pt",
    )
    dist.destroy_process_group()


def _conv_bn() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten()
    )


@pytest.mark.slow
def test_cpu_sync_batchnorm_on_two_ranks_equals_batchnorm_on_the_whole_batch(
    tmp_path: Path,
) -> None:
    import torch.multiprocessing as mp

    inputs = torch.randn(6, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    mp.spawn(_sync_bn_worker, args=(29531, inputs, str(tmp_path / "r")), nprocs=2)
    torch.manual_seed(0)
    model = _conv_bn()
    output = model(inputs)
    output.pow(2).mean().backward()
    ranks = [torch.load(tmp_path / f"r-{r}.pt") for r in range(2)]
    for rank, got in enumerate(ranks):
        torch.testing.assert_close(got["out"], output[rank::2].detach())
        for grad, param in zip(got["grads"], model.parameters(), strict=True):
            torch.testing.assert_close(grad, param.grad)
        torch.testing.assert_close(got["mean"], model[1].running_mean)
        torch.testing.assert_close(got["var"], model[1].running_var)  # unbiased, n = 6 x 9


RUNNER_WITH_FAULT = RUNNER.replace(
    'host.add_plugin(_probe_plugin, "probe")',
    'host.add_plugin(_probe_plugin, "probe")\nimport _fault_plugin\n'
    'host.add_plugin(_fault_plugin, "fault")',
)


@pytest.mark.slow
def test_torchrun_two_ranks_with_batchnorm_and_augmentation_agree_with_one_process(
    tmp_path: Path,
) -> None:
    """1600 samples: one process takes 47 batches of 34 and one of 2; each of 2 ranks takes 47 of
    17 and one of 1 (synced BatchNorm sees 2), with the same rotations per sample."""
    config = make_config(tmp_path)
    config["model"] = {"backbone": {"type": "fault.bn_mlp", "hidden": 32}}
    config["data"] = {
        "dataset": {"type": "core.digits", "test_per_class": 7, "val_per_class": 7},
        "transforms": {"train": [{"type": "core.rotation", "degrees": 15}]},
        "loader": {"batch_size": 34},
    }
    one = dict(config, output_dir=str(tmp_path / "one"))
    two = dict(config, output_dir=str(tmp_path / "two"))
    two["data"] = {**config["data"], "loader": {"batch_size": 17}}
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER_WITH_FAULT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _run_one_and_two(runner, tmp_path, one, two, env, port=29519)

    def first_epoch_loss(root: Path) -> float:
        run_dir = next(p for p in root.iterdir() if p.is_dir())
        return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["loss"]

    assert first_epoch_loss(tmp_path / "two") == pytest.approx(
        first_epoch_loss(tmp_path / "one"), rel=1e-5
    )
    rank0 = json.loads((tmp_path / "two-0.json").read_text())
    ref = json.loads((tmp_path / "one-0.json").read_text())
    for key, value in ref["test"].items():
        if isinstance(value, float):
            assert rank0["test"][key] == pytest.approx(value, abs=0.005), key
