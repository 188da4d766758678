"""Build: config -> components, the read-only context, adapters, weights, optimizers, schedules."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from asklepios.build import build_experiment, build_optimizers
from asklepios.config import load_config, validate_config
from asklepios.optim import OptimError, build_optimizer, build_schedule, lr_factor
from asklepios.sampling import ShardingWrapper

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import make_config, probe_host, write_config


def _build(config: dict, **kwargs):
    host = probe_host()
    return build_experiment(validate_config(config, host=host), host.registry, **kwargs)


def test_context_comes_from_the_training_split_after_eval_transforms(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["data"]["transforms"] = {
        "train": [{"type": "core.rotation"}],
        "eval": [{"type": "core.resize", "size": 10}],
    }
    built = _build(config)
    facts = built.ctx.data
    assert facts.image_size == (10, 10) and facts.in_channels == 1
    assert sum(facts.class_counts) == facts.num_samples == len(built.train_split)
    assert facts.labels is not None and len(facts.labels) == facts.num_samples
    assert built.ctx.steps_per_epoch == math.ceil(facts.num_samples / 32)
    assert built.train_split[0]["image"].shape == (1, 8, 8)  # train transforms keep size
    assert built.eval_splits["val"][0]["image"].shape == (1, 10, 10)
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        built.ctx.seed = 1  # type: ignore[misc]


def test_adapters_wrap_in_list_order_and_plain_samplers_get_sharded(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["model"]["adapters"] = [{"type": "probe.aux"}, {"type": "probe.aux"}]
    config["data"]["sampler"] = {"type": "probe.plain"}
    built = _build(config, rank=1, world_size=2)
    outer = built.model
    assert type(outer).__name__ == "AuxAdapter" and type(outer.model).__name__ == "AuxAdapter"
    assert outer.model.model is built.backbone
    assert isinstance(built.sampler, ShardingWrapper) and built.sampler.rank == 1
    assert built.component_ids.count("probe.aux") == 2


def test_per_batch_augmentation_in_per_sample_list_is_an_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["data"]["batch_transforms"] = [{"type": "core.hflip"}]
    with pytest.raises(Exception, match="per-sample transform"):
        _build(config)


def test_weights_are_applied_after_construction(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = _build(make_config(tmp_path)).backbone
    state = {k: v + 1.0 for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "mlp.safetensors"))
    config = make_config(tmp_path)
    config["model"]["backbone"]["weights"] = {"path": str(tmp_path / "mlp.safetensors")}
    built = _build(config)
    for key, value in built.backbone.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert built.weights["model.backbone"]["loaded"] == len(state)
    config["model"]["backbone"]["weights"] = {"path": str(tmp_path / "missing.pt")}
    with pytest.raises(Exception, match=r"missing\.pt"):
        _build(config)


def test_relative_weights_paths_follow_the_file_that_wrote_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import save_file

    tmp_path = tmp_path.resolve()
    source = _build(make_config(tmp_path)).backbone
    state = {k: v + 2.0 for k, v in source.state_dict().items()}
    (tmp_path / "shared").mkdir()
    (tmp_path / "exps").mkdir()
    (tmp_path / "elsewhere").mkdir()
    save_file(state, str(tmp_path / "shared" / "mlp.safetensors"))
    base = make_config(tmp_path)
    base["model"]["backbone"]["weights"] = {"path": "mlp.safetensors"}
    write_config(tmp_path / "shared", base, "base.json")
    child = write_config(tmp_path / "exps", {"extends": "../shared/base.json", "seed": 3})
    monkeypatch.chdir(tmp_path / "elsewhere")
    host = probe_host()
    config = load_config(child, host=host)
    expected = str(tmp_path / "shared" / "mlp.safetensors")
    assert config.model.backbone.weights is not None
    assert config.model.backbone.weights.path == expected
    built = build_experiment(config, host.registry)
    for key, value in built.backbone.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert built.weights["model.backbone"]["path"] == expected  # the run record's entry
    # a --set path is relative to the working directory; absolute paths stay as written
    (tmp_path / "elsewhere" / "w").mkdir()
    save_file(state, str(tmp_path / "elsewhere" / "w" / "m.safetensors"))
    config = load_config(child, ["model.backbone.weights.path=w/m.safetensors"], host=host)
    assert config.model.backbone.weights.path == str(tmp_path / "elsewhere" / "w" / "m.safetensors")
    config = load_config(child, [f"model.backbone.weights.path={expected}"], host=host)
    assert config.model.backbone.weights.path == expected


def test_optimizer_by_name_checks_its_arguments() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    cfg = SimpleNamespace(name="SGD", lr=0.1, weight_decay=0.0, kwargs={"momentum": 0.9})
    opt = build_optimizer(params, cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    with pytest.raises(OptimError, match=r"does not accept \['betas'\]"):
        build_optimizer(
            params,
            SimpleNamespace(name="sgd", lr=0.1, weight_decay=0, kwargs={"betas": (0.9, 0.99)}),
        )
    with pytest.raises(OptimError, match="unknown optimizer 'adamx'"):
        build_optimizer(params, SimpleNamespace(name="adamx", lr=0.1, weight_decay=0, kwargs={}))
    with pytest.raises(OptimError, match="no trainable parameters"):
        build_optimizer([], SimpleNamespace(name="sgd", lr=0.1, weight_decay=0, kwargs={}))


def _schedule(**kw) -> SimpleNamespace:
    base = {
        "name": "constant",
        "warmup_epochs": 0.0,
        "warmup_start_factor": 0.1,
        "min_lr": 0.0,
        "constant_epochs": 0.0,
        "step_size": 30,
        "milestones": [],
        "gamma": 0.1,
    }
    return SimpleNamespace(**{**base, **kw})


def test_schedules_follow_their_formulas() -> None:
    f = lr_factor(
        _schedule(name="cosine", warmup_epochs=1), steps_per_epoch=10, epochs=5, min_factor=0.1
    )
    assert f(0) == pytest.approx(0.1) and f(5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(10) == pytest.approx(1.0)
    t = (30 - 10) / 40
    assert f(30) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
    assert f(50) == pytest.approx(0.1)
    step = lr_factor(_schedule(name="step", step_size=2, gamma=0.5), 10, 6)
    assert [step(e * 10) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    multi = lr_factor(_schedule(name="multistep", milestones=[1, 4]), 10, 6)
    assert [multi(e * 10) for e in range(6)] == pytest.approx([1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_linear_schedule_holds_then_decays_to_min_lr() -> None:
    # pix2pixHD: base rate for constant_epochs, then a straight line to min_lr at the last step.
    config = _schedule(name="linear", warmup_epochs=1, constant_epochs=3, min_lr=0.02)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = build_schedule(optimizer, config, steps_per_epoch=10, epochs=8)
    lrs = []
    for _ in range(81):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # hand computation: warm-up 0.01 -> 0.1 over steps 0..9, 0.1 until step 30, then
    # 0.1 - (0.1 - 0.02) * (step - 30) / 50 until step 80
    assert lrs[0] == pytest.approx(0.01) and lrs[5] == pytest.approx(0.055)
    assert lrs[10] == pytest.approx(0.1) and lrs[29] == pytest.approx(0.1)
    assert lrs[30] == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.1 - 0.08 * 25 / 50)
    assert lrs[79] == pytest.approx(0.1 - 0.08 * 49 / 50)
    assert lrs[80] == pytest.approx(0.02)
    # a warm-up longer than constant_epochs comes first; the decay starts where it ends
    f = lr_factor(_schedule(name="linear", warmup_epochs=2), 10, 6, min_factor=0.0)
    assert f(10) == pytest.approx(0.1 + 0.9 * 10 / 20) and f(20) == pytest.approx(1.0)
    assert f(40) == pytest.approx(0.5) and f(60) == pytest.approx(0.0)
    # constant_epochs beyond the run keeps the base rate throughout
    assert lr_factor(_schedule(name="linear", constant_epochs=9), 10, 6)(59) == 1.0


def test_trainer_groups_without_a_configured_optimizer_are_an_error(tmp_path: Path) -> None:
    built = _build(make_config(tmp_path))
    built.trainer.optimizer_groups = lambda model: {  # type: ignore[method-assign]
        "main": list(model.parameters()),
        "critic": list(model.parameters()),
    }
    with pytest.raises(Exception, match=r"optimizers: \{critic"):
        build_optimizers(built, built.model, 5)


def test_fold_facts_describe_the_fold_training_split_for_survival_data() -> None:
    from asklepios.build import FoldDataset
    from asklepios_sdk import DataFacts, Dataset

    class Survival(Dataset):
        """Ten subjects in train, five in val; time = 10 * index + 1, event = index % 2."""

        def __init__(self) -> None:
            self.rows = {"train": range(10), "val": range(10, 15), "test": range(15, 18)}

        def split(self, name: str) -> list[dict]:
            return [{"time": 10.0 * i + 1, "event": i % 2} for i in self.rows[name]]

        def facts(self) -> DataFacts:
            train = self.split("train")
            return DataFacts(
                task="survival",
                num_samples=10,
                times=tuple(s["time"] for s in train),
                events=tuple(s["event"] for s in train),
            )

    fold = FoldDataset(1, 3, seed=0).wrap(Survival())
    train = list(fold.split("train"))
    facts = fold.facts()
    assert facts.num_samples == len(train) == 10
    assert facts.times == tuple(s["time"] for s in train)
    assert facts.events == tuple(s["event"] for s in train)
    assert any(t > 100 for t in facts.times)  # the fold's train split draws from the val pool


def test_trainable_loss_parameters_join_the_main_optimizer(tmp_path: Path) -> None:
    built = _build(make_config(tmp_path))
    built.loss.centres = torch.nn.Parameter(torch.zeros(10, 4))  # a center-loss-like parameter
    optimizers, _ = build_optimizers(built, built.model, 5)
    main = [p for group in optimizers["main"].param_groups for p in group["params"]]
    assert any(p is built.loss.centres for p in main)
    assert sum(p.numel() for p in main) == sum(
        p.numel() for p in [*built.model.parameters(), built.loss.centres]
    )
