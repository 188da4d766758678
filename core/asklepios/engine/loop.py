"""One stage of training: epochs of trainer steps, periodic evaluation, checkpoints, final test.

The hot path calls plain callables: the trainer's ``train_step`` through a :class:`StepContext`,
batch transforms, and the ``step_end`` hook only when some plugin implements it.

Training batches come from :class:`~asklepios.sampling.TrainBatchSampler` (a last batch of one
sample is dropped unless BatchNorm is synchronised over several ranks) and samples are read
through :class:`~asklepios.engine.samples.KeyedSplit` (randomness keyed by the sample's place in
the epoch; read errors name split and row). Under DDP, BatchNorm layers are synchronised
(:func:`~asklepios.engine.distributed.convert_sync_batchnorm`) unless ``train.sync_batchnorm`` is
off, and every loss a trainer back-propagates is checked for NaN/Inf (``train.nonfinite``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections.abc import Callable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any, cast

import torch
from asklepios_sdk import AsklepiosError, Loss, LossOutput, split_collate
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from asklepios.build import Built, build_optimizers, drops_single_batch
from asklepios.engine.answers import cached_generation
from asklepios.engine.checkpoint import (
    load_checkpoint,
    load_latest,
    prune_epoch_checkpoints,
    restore_stage_state,
    save_checkpoint,
    stage_state,
)
from asklepios.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    batchnorm_layers,
    convert_sync_batchnorm,
    single_sample_problem,
)
from asklepios.engine.numerics import NonFiniteGuard
from asklepios.engine.progress import RunProgress, epoch_items
from asklepios.engine.samples import KeyedSplit, preserve_rng
from asklepios.engine.seeding import derive_seed, worker_init
from asklepios.engine.state import MetricsLog, RunStateView, to_jsonable
from asklepios.engine.step import Step, add_terms
from asklepios.reporting import headline, stage_facts
from asklepios.sampling import EvalShardSampler, TrainBatchSampler

__all__ = ["EngineError", "StageRunner", "freeze_parameters", "move_batch"]


class EngineError(AsklepiosError):
    """The loop cannot go on: a stage setting does not fit the model or data."""


def move_batch(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device`` without blocking."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_batch(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [move_batch(v, device) for v in batch]
    return batch


def freeze_parameters(model: nn.Module, patterns: list[str]) -> list[str]:
    """Set ``requires_grad=False`` on parameters whose names match a pattern; return them."""
    frozen = []
    for pattern in patterns:
        hits = [n for n, p in model.named_parameters() if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            names = [n for n, _ in model.named_parameters()][:8]
            raise EngineError(
                f"freeze: pattern {pattern!r} matches no parameter; names look like {names}"
            )
        frozen += hits
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return frozen


class _MissingLoss(Loss):
    """Stands in for the loss of a stage that has none, so a trainer that needs one says why."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> LossOutput:
        raise EngineError(
            f"stage {self.stage}: the trainer needs a loss, but the config names none and the "
            "task has no default; add one, e.g. 'loss: {type: core.mse}'"
        )


class StageRunner:
    """Run one stage of one (fold of a) run: train, evaluate, checkpoint, test.

    Args:
        built: the stage's components.
        stage: stage name; stage_dir: where its checkpoints go.
        dist: rank information; device: where to train.
        log: the run's metrics log; progress: the display.
        hooks: the host's hook relay (or ``None``); step_end: the ``step_end`` hook resolved to
            a plain callable, or ``None`` when no plugin implements it (the loop then skips it).
        run_view: the state handed to lifecycle hooks.
    """

    def __init__(
        self,
        built: Built,
        stage: str,
        stage_dir: Path,
        dist: DistInfo,
        device: torch.device,
        log: MetricsLog,
        progress: RunProgress,
        hooks: Any,
        step_end: Callable[..., Any] | None,
        run_view: RunStateView,
        keep_last: int = 2,
    ) -> None:
        self.built = built
        self.config = built.config
        train = self.config.train
        self.stage = stage
        self.stage_dir = stage_dir
        self.dist = dist
        self.device = device
        self.log = log
        self.progress = progress
        self.hooks = hooks
        self.step_end = step_end
        self.view = run_view
        self.keep_last = keep_last
        self.accumulate = train.accumulate
        self.grad_clip = train.grad_clip
        self.amp_dtype = self._amp_dtype(train.amp)
        self.scaler = (
            torch.amp.GradScaler(device.type)
            if self.amp_dtype == torch.float16 and device.type == "cuda"
            else None
        )
        self.model = built.model.to(device)
        if built.loss is not None:
            built.loss.to(device)
        for transform in built.batch_transforms:
            transform.to(device)
        for evaluator in built.evaluators:
            evaluator.to(device)
        self.train_model: nn.Module = self.model
        # a model that generates text answers through the fold's answer cache
        self.answers = cached_generation(self.model, stage_dir.parent.parent / "answers", dist.rank)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedules: dict[str, Any] = {}
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.last_val: dict[str, Any] = {}
        self.start_epoch = 0
        self.global_step = 0
        self._fitted_at: int | None = None
        self.monitor_key = train.monitor.metric
        self.monitor_mode = train.monitor.mode
        loader = self.config.data.loader
        self.pin_memory = (
            loader.pin_memory if loader.pin_memory is not None else device.type == "cuda"
        )
        self.guard = NonFiniteGuard(train.nonfinite, dist, device)
        self.nonfinite_batches = 0
        self.sync_batchnorm = not drops_single_batch(self.config, dist.world_size)
        self.data_where = f"data.dataset [{self.config.data.dataset.type}]"
        self.generator = torch.Generator()
        self.batch_sampler = TrainBatchSampler(
            built.sampler,
            loader.batch_size,
            loader.drop_last,
            drop_single=not self.sync_batchnorm,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        self.train_loader = torch.utils.data.DataLoader(
            KeyedSplit(built.train_split, self.config.seed, "train", self.data_where),
            batch_sampler=self.batch_sampler,
            collate_fn=split_collate(built.train_split),
            num_workers=loader.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=loader.persistent_workers and loader.num_workers > 0,
            worker_init_fn=worker_init,
            generator=self.generator,
        )
        self.steps_per_epoch = max(1, math.ceil(len(self.train_loader) / self.accumulate))

    @staticmethod
    def _amp_dtype(amp: Any) -> torch.dtype | None:
        if amp is False or amp is None:
            return None
        if amp == "bf16":
            return torch.bfloat16
        if amp == "fp16":
            return torch.float16
        return torch.float16 if torch.cuda.is_available() else torch.bfloat16

    # -- set-up ----------------------------------------------------------------------------------

    def prepare(self, freeze: list[str]) -> None:
        """Freeze, sync BatchNorm, build optimizers and schedules, and wrap the model for DDP.

        Lifecycle hooks see the stage's model and optimizers from here on (``run_start`` and
        ``record_metadata`` of a fresh run are called after the first stage is prepared).
        """
        if freeze:
            freeze_parameters(self.model, freeze)
        if self.config.train.epochs > 0:  # an evaluation-only stage optimises and syncs nothing
            self._prepare_training()
        self.view.stage, self.view.model, self.view.optimizers = (
            self.stage,
            self.model,
            self.optimizers,
        )

    def _prepare_training(self) -> None:
        """Sync or check BatchNorm, build optimizers and schedules, wrap the model for DDP."""
        layers = batchnorm_layers(self.model)
        if layers and self.sync_batchnorm:
            self.model = convert_sync_batchnorm(self.model, self.device)  # same parameters
        elif layers:
            problem = single_sample_problem(
                layers, self.config.data.loader.batch_size, self.built.sampler, self.dist.enabled
            )
            if problem:
                raise EngineError(f"stage {self.stage}: {problem}")
        self.optimizers, self.schedules = build_optimizers(
            self.built, self.model, self.steps_per_epoch
        )
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)

    def state_dict(self, epoch: int) -> dict[str, Any]:
        """Return everything needed to continue after ``epoch`` exactly."""
        return stage_state(self, epoch)

    def resume(self) -> bool:
        """Continue from the newest good epoch checkpoint of this stage; return whether found."""
        found = load_latest(self.stage_dir, map_location=self.device)
        if found is None:
            return False
        path, state = found
        restore_stage_state(self, state)
        if self.dist.is_main:
            self.log.truncate(int(state["metrics_offset"]))
        self.progress.log(f"resumed {self.stage} from {path} (epoch {self.start_epoch})")
        return True

    # -- training --------------------------------------------------------------------------------

    def _set_epoch(self, epoch: int) -> None:
        """Tell every epoch-dependent part (model modules, epoch schedules) which epoch starts."""
        for part in (
            self.built.sampler,
            self.built.loss,
            self.built.trainer,
            *self.built.batch_transforms,
            *self.built.model.modules(),
            *self.schedules.values(),
        ):
            if part is not None and hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
        self.batch_sampler.set_epoch(epoch)
        self.generator.manual_seed(derive_seed(self.config.seed, epoch, self.dist.rank))

    def _batches(self) -> Iterator[Any]:
        device = self.device
        transforms = self.built.batch_transforms
        in_process = self.config.data.loader.num_workers == 0
        for batch in preserve_rng(self.train_loader, in_process):
            batch = move_batch(batch, device)
            for transform in transforms:
                batch = transform(batch)
            yield batch

    def _grad_sync(self, boundary: bool) -> contextlib.AbstractContextManager[Any]:
        """Return DDP's ``no_sync()`` for a micro-batch that does not end an accumulation.

        Gradients of such micro-batches accumulate locally and are all-reduced once, with the
        boundary micro-batch's backward. DDP decides in ``forward`` whether the next backward
        syncs, so the whole ``train_step`` (forward and backward) runs inside the context.
        """
        if boundary or not isinstance(self.train_model, DistributedDataParallel):
            return contextlib.nullcontext()
        return self.train_model.no_sync()

    def _train_step(
        self, step: Step, batch: Any, epoch: int, index: int, batches: int
    ) -> LossOutput:
        """Run the trainer's step; a BatchNorm layer given one sample becomes a located error."""
        try:
            return self.built.trainer.train_step(step, batch)
        except ValueError as err:
            if "Expected more than 1 value per channel" not in str(err):
                raise
            raise EngineError(
                f"stage {self.stage}, epoch {epoch + 1}, batch {index + 1} of {batches}: a "
                f"BatchNorm layer got a single sample in training ({err}); raise "
                "data.loader.batch_size, or --set data.loader.drop_last=true"
            ) from err

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Run one epoch of trainer steps; return the rank-averaged mean of each loss term."""
        self.model.train()
        step = Step(self, self.built.loss or _MissingLoss(self.stage))
        step.epoch = epoch
        step.global_step = self.global_step
        total_batches = len(self.train_loader)
        sums: dict[str, torch.Tensor] = {"loss": torch.zeros((), device=self.device)}
        count = kept = 0  # batches done, batches whose loss counts
        self.nonfinite_batches = 0
        log_every = self.config.train.log_every
        accumulate = self.accumulate
        step_end = self.step_end
        progress = self.progress
        progress.start_epoch(self.stage, epoch, self.config.train.epochs, total_batches, log_every)
        for index, batch in enumerate(self._batches()):
            step.start_batch((index + 1) % accumulate == 0 or index + 1 == total_batches)
            with self._grad_sync(step.boundary):
                result = self._train_step(step, batch, epoch, index, total_batches)
            if self.scaler is not None and step.updated:
                self.scaler.update()
            if step.stepped:
                self.global_step += 1
                step.global_step = self.global_step
            count = index + 1
            if step.keep(result, index, total_batches):
                kept += 1
                add_terms(sums, result)
            if step_end is not None and step.stepped:
                self.view.global_step = self.global_step
                step_end(run=self.view, step=self.global_step, losses=result.detached_terms())
            progress.step(sums["loss"], count, kept)
        means = {k: float(v) / kept if kept else math.nan for k, v in sums.items()}
        return all_reduce_mean(means, self.dist, self.device)

    # -- evaluation ------------------------------------------------------------------------------

    @torch.no_grad()
    def _fit_evaluators(self) -> None:
        """Fit every evaluator that declares ``fit_split`` on that split, once per model state.

        The split is read like val and test (evaluation transforms, eval mode, sharded across
        ranks); each such evaluator receives every batch through ``update``, then ``fit()`` and
        ``reset()``. Skipped when no optimiser step happened since the last fit, so a frozen
        model's features are computed once for all its evaluations.
        """
        fitting = [e for e in self.built.evaluators if getattr(e, "fit_split", None)]
        if not fitting or self._fitted_at == self.global_step:
            return
        loader = self.config.data.loader
        for split in sorted({str(e.fit_split) for e in fitting}):
            group = [e for e in fitting if e.fit_split == split]
            if split not in self.built.eval_splits:
                raise EngineError(
                    f"evaluators {[type(e).__name__ for e in group]} fit on split {split!r}, "
                    f"which data.dataset [{self.config.data.dataset.type}] does not provide"
                )
            data_loader = self._eval_loader(split)
            self.model.eval()
            for evaluator in group:
                evaluator.reset()
            self.progress.start_eval(f"fit on {split}", len(data_loader))
            for batch in preserve_rng(data_loader, in_process=loader.num_workers == 0):
                batch = move_batch(batch, self.device)
                ctx = (
                    torch.autocast(self.device.type, dtype=self.amp_dtype)
                    if self.amp_dtype is not None
                    else contextlib.nullcontext()
                )
                with ctx:
                    outputs = self.model(batch)
                for evaluator in group:
                    evaluator.update(outputs, batch)
                self.progress.eval_step()
            self.progress.end_eval()
            for evaluator in group:
                evaluator.fit()
                evaluator.reset()
        self._fitted_at = self.global_step

    def _eval_loader(self, split: str) -> torch.utils.data.DataLoader[Any]:
        """A loader over this rank's shard of ``split``, each item keyed for its augmentation."""
        dataset = self.built.eval_splits[split]
        loader = self.config.data.loader
        return torch.utils.data.DataLoader(
            KeyedSplit(dataset, self.config.seed, split, self.data_where),
            batch_size=loader.eval_batch_size or loader.batch_size,
            sampler=EvalShardSampler(
                len(cast(Sized, dataset)), self.dist.rank, self.dist.world_size
            ),
            collate_fn=split_collate(dataset),
            num_workers=loader.num_workers,
            pin_memory=self.pin_memory,
            worker_init_fn=worker_init,
        )

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, Any]:
        """Evaluate ``split`` with every evaluator (synced across ranks) and the mean loss."""
        self._fit_evaluators()
        loader = self.config.data.loader
        data_loader = self._eval_loader(split)
        self.model.eval()
        for evaluator in self.built.evaluators:
            evaluator.reset()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = torch.zeros((), dtype=torch.float64, device=self.device)
        self.progress.start_eval(split, len(data_loader))
        for batch in preserve_rng(data_loader, in_process=loader.num_workers == 0):
            batch = move_batch(batch, self.device)
            ctx = (
                torch.autocast(self.device.type, dtype=self.amp_dtype)
                if self.amp_dtype is not None
                else contextlib.nullcontext()
            )
            with ctx:
                outputs = self.answers(batch) if self.answers else self.model(batch)
                if self.built.loss is not None:
                    size = _batch_size(batch)
                    loss_sum += self.built.loss(outputs, batch).total.double() * size
                    seen += size
            for evaluator in self.built.evaluators:
                evaluator.update(outputs, batch)
            self.progress.eval_step()
        self.progress.end_eval()
        metrics: dict[str, Any] = {}
        if self.built.loss is not None:
            if self.dist.enabled:
                torch.distributed.all_reduce(loss_sum)
                torch.distributed.all_reduce(seen)
            metrics["loss"] = float(loss_sum / seen.clamp_min(1))
        for evaluator in self.built.evaluators:
            for key, value in evaluator.compute().items():
                metrics[f"{evaluator.name}/{key}"] = to_jsonable(value)
            if hasattr(evaluator, "artifacts"):  # non-scalar results (confusion matrices)
                for key, value in evaluator.artifacts().items():
                    metrics[f"{evaluator.name}/{key}"] = to_jsonable(value)
        return metrics

    def _monitor(self, metrics: Mapping[str, Any]) -> tuple[str, str]:
        key = self.monitor_key
        if key is None:
            scalar = [k for k, v in metrics.items() if k != "loss" and isinstance(v, int | float)]
            key = scalar[0] if scalar else "loss"
        if key not in metrics:
            raise EngineError(
                f"train.monitor.metric: {key!r} is not among the validation metrics "
                f"{sorted(k for k, v in metrics.items() if isinstance(v, int | float))}; "
                f"set it with --set train.monitor.metric=<one of them>"
            )
        mode = self.monitor_mode
        if mode is None:
            mode = "min" if key == "loss" else "max"
            name, _, sub = key.partition("/")
            for evaluator in self.built.evaluators:
                if evaluator.name == name:
                    mode = "max" if evaluator.is_higher_better(sub) else "min"
        self.monitor_key, self.monitor_mode = key, mode
        return key, mode

    def _is_better(self, value: float) -> bool:
        if self.best_value is None or math.isnan(self.best_value):
            return not math.isnan(value)
        return value > self.best_value if self.monitor_mode == "max" else value < self.best_value

    # -- the stage -------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train the remaining epochs, evaluating every ``eval_every``; return the summary."""
        train = self.config.train
        epochs = train.epochs
        view = self.view
        has_val = "val" in self.built.eval_splits
        for epoch in range(self.start_epoch, epochs):
            view.epoch = epoch
            self._set_epoch(epoch)
            if self.hooks is not None:
                self.hooks.epoch_start(run=view, epoch=epoch)
            losses = self.train_epoch(epoch)
            lr = (
                self.optimizers["main"].param_groups[0]["lr"] if "main" in self.optimizers else None
            )
            record = {
                "stage": self.stage,
                "epoch": epoch,
                "split": "train",
                "step": self.global_step,
                "lr": lr,
                **losses,
            }
            if self.nonfinite_batches:
                record["nonfinite_batches"] = self.nonfinite_batches
            self.log.write(record)
            if self.hooks is not None:
                self.hooks.epoch_end(run=view, epoch=epoch, metrics=losses)
            val: dict[str, Any] | None = None
            best = False
            if has_val and ((epoch + 1) % train.eval_every == 0 or epoch + 1 == epochs):
                metrics = self.evaluate("val")
                self.last_val = metrics
                self.log.write(
                    {
                        "stage": self.stage,
                        "epoch": epoch,
                        "split": "val",
                        "step": self.global_step,
                        **metrics,
                    }
                )
                sampler = self.built.sampler
                if hasattr(sampler, "on_evaluation"):
                    sampler.on_evaluation(metrics)
                if self.hooks is not None:
                    self.hooks.evaluation_end(run=view, split="val", metrics=metrics)
                key, _ = self._monitor(metrics)
                value = float(metrics[key]) if metrics[key] is not None else float("nan")
                if self._is_better(value):
                    self.best_value, self.best_epoch = value, epoch
                    best = True
                    if self.dist.is_main:
                        save_checkpoint(
                            {
                                "model": self.model.state_dict(),
                                "backbone": self.built.backbone.state_dict(),
                                "epoch": epoch,
                                "metrics": {
                                    k: v for k, v in metrics.items() if isinstance(v, int | float)
                                },
                            },
                            self.stage_dir / "best.pt",
                        )
                val = metrics
            if self.dist.is_main:
                save_checkpoint(self.state_dict(epoch), self.stage_dir / f"epoch-{epoch:04d}.pt")
                prune_epoch_checkpoints(self.stage_dir, self.keep_last)
                save_checkpoint(
                    {
                        "model": self.model.state_dict(),
                        "backbone": self.built.backbone.state_dict(),
                        "epoch": epoch,
                    },
                    self.stage_dir / "last.pt",
                )
            barrier(self.dist)
            patterns = stage_facts(self.built.evaluators, None)["headline"]
            shown = headline(val or {}, patterns, limit=6)
            self.progress.end_epoch(epoch_items(losses, val, self.monitor_key, shown, best))
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Test the selected checkpoint (best when validation ran, else last) and summarise."""
        barrier(self.dist)
        selected = "last"
        if self.best_epoch is not None and (self.stage_dir / "best.pt").exists():
            state = load_checkpoint(self.stage_dir / "best.pt", map_location=self.device)
            self.model.load_state_dict(state["model"])
            selected = "best"
        summary: dict[str, Any] = {
            "stage": self.stage,
            "epochs": self.config.train.epochs,
            "selected_checkpoint": selected,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor_key,
            "monitor_mode": self.monitor_mode,
            "best_value": self.best_value,
            "val": self.last_val,
        }
        if "test" in self.built.eval_splits:
            test = self.evaluate("test")
            self.log.write(
                {
                    "stage": self.stage,
                    "epoch": self.best_epoch,
                    "split": "test",
                    "checkpoint": selected,
                    **test,
                }
            )
            if self.hooks is not None:
                self.hooks.evaluation_end(run=self.view, split="test", metrics=test)
            summary["test"] = test
        return summary


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return int(value.shape[0])
    return 1
