"""Checks of a merged config that need no component: numbers, devices, stages and ``--set``.

* Every number is finite: YAML reads ``.inf``, ``.nan`` and ``1e999`` as floats, and no setting of
  an experiment means infinity.
* ``train.device`` is a device string the engine understands (``auto``, ``cpu``, ``cuda``,
  ``cuda:N``, ``mps``); whether the machine has that device is a deep check
  (:mod:`asklepios.config.deep`).
* A stage's sections merge over the base config (:func:`effective_stage`); a stage that names a
  monitored metric without its ``mode`` gets the evaluator's direction, never the base's mode.
* A ``--set`` of a base section that a stage writes itself does not reach that stage: a warning
  says so and gives the ``--set stages.<name>...`` to type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from asklepios_sdk import AsklepiosWarning

from asklepios._text import suggest
from asklepios.config.loader import Origins, format_path, merge

__all__ = [
    "DEVICE_PATTERN",
    "STAGE_SECTIONS",
    "ConfigWarning",
    "device_problem",
    "effective_stage",
    "non_finite_numbers",
    "shadowed_overrides",
]

STAGE_SECTIONS = (
    "data",
    "model",
    "loss",
    "optimizer",
    "optimizers",
    "schedule",
    "evaluators",
    "trainer",
    "train",
)
"""Sections a stage may override; mappings merge key-wise, lists and scalars replace."""

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""Device strings the engine accepts for ``train.device`` and ``--device``."""

KeyPath = tuple[str | int, ...]


class ConfigWarning(AsklepiosWarning):
    """A config is valid, but part of it will not do what it seems to (a shadowed ``--set``)."""


def non_finite_numbers(node: Any, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, float]]:
    """Yield the key path and value of every infinite or NaN float in ``node``."""
    if isinstance(node, float) and not math.isfinite(node):
        yield prefix, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from non_finite_numbers(value, (*prefix, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from non_finite_numbers(value, (*prefix, i))


def device_problem(value: Any) -> tuple[str, str] | None:
    """Return ``(message, hint)`` when ``value`` is not a device string, else None."""
    if not isinstance(value, str) or DEVICE_PATTERN.match(value):
        return None
    lowered = value.strip().lower()
    guess = None
    if lowered.startswith(("gpu", "cuda", "nvidia")):
        number = re.search(r"(\d+)$", lowered)
        guess = f"cuda:{number.group(1)}" if number else "cuda"
    else:
        close = suggest(lowered, ["auto", "cpu", "cuda", "mps"], n=1)
        guess = close[0] if close else None
    return (
        f"'{value}' is not a device; write 'auto' (CUDA when present, else CPU), 'cpu', 'cuda', "
        "'cuda:N' or 'mps'",
        f"--set train.device={guess or 'auto'}",
    )


def effective_stage(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return the config a stage runs with: its ``overrides`` merged key-wise over ``base``.

    A stage that sets ``train.monitor.metric`` without ``mode`` monitors in the direction the
    evaluator declares (``mode: null``), not in the base config's mode for another metric.
    """
    effective: dict[str, Any] = merge(base, overrides)
    train = overrides.get("train")
    monitor = train.get("monitor") if isinstance(train, Mapping) else None
    if isinstance(monitor, Mapping) and "metric" in monitor and "mode" not in monitor:
        effective_monitor = effective.get("train", {}).get("monitor")
        if isinstance(effective_monitor, dict):
            effective_monitor["mode"] = None
    return effective


def _shadowing(stage: Mapping[str, Any], base: Mapping[str, Any], path: KeyPath) -> KeyPath | None:
    """Return the key path in ``stage`` that replaces ``path`` of ``base``, or None."""
    node: Any = stage
    base_node: Any = base
    for depth, part in enumerate(path):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
        base_node = base_node.get(part) if isinstance(base_node, Mapping) else None
        here = path[: depth + 1]
        if depth == len(path) - 1 or not isinstance(node, Mapping):
            return here  # the stage writes this key, or a list/scalar that replaces it whole
        replaced = isinstance(base_node, Mapping) and base_node.get("type") not in (
            None,
            node.get("type", base_node.get("type")),
        )
        if replaced:
            return here  # a component of another type replaces the whole mapping
    return None


def _trains_nothing(stage: Mapping[str, Any]) -> bool:
    train = stage.get("train")
    epochs = train.get("epochs") if isinstance(train, Mapping) else None
    return epochs == 0 or stage.get("generate") is not None


def shadowed_overrides(
    raw: Mapping[str, Any], applied: Sequence[tuple[str, KeyPath]], origins: Origins
) -> list[str]:
    """Return a warning for each ``--set`` of a base section that a stage overrides itself."""
    stages = raw.get("stages")
    if not isinstance(stages, list):
        return []
    warnings = []
    for text, path in applied:
        if not path or path[0] not in STAGE_SECTIONS:
            continue
        value = text.partition("=")[2]
        for i, stage in enumerate(stages):
            if not isinstance(stage, Mapping):
                continue
            where = _shadowing(stage, raw, path)
            if where is None or (path[0] == "train" and _trains_nothing(stage)):
                continue  # an evaluation-only or generation stage keeps its own train section
            name = stage.get("name", i)
            key = ("stages", i, *where)
            if origins.file_of(key).startswith("--set "):
                continue  # the user set the stage's value too
            line = origins.line_of(key)
            at = f"{origins.file_of(key)}:{line}" if line else origins.file_of(key)
            dotted = ".".join(str(p) for p in path)
            warnings.append(
                f"--set {text} does not reach stage '{name}', which sets "
                f"{format_path(where)} itself ({at}); to change it there too: "
                f"--set stages.{name}.{dotted}={value}"
            )
    return warnings
