"""Commands on config files: validate (fast or deep) and the JSON Schema for editors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from asklepios.cli._app import _config_warnings, _console, app


@app.command("validate")
def validate(
    config: Annotated[Path, typer.Argument(help="Config file (.yaml or .json).")],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a key, e.g. train.epochs=5 or stages.classifier.train.epochs=1.",
        ),
    ] = None,
    show: Annotated[
        bool,
        typer.Option("--print", help="Print the resolved config (full ids, every default)."),
    ] = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also build each stage's model on the meta device (imports torch): freeze "
            "patterns, monitored metric, init_from, device. `run` always does this.",
        ),
    ] = False,
) -> None:
    """Validate a config: ids, params, files and folders; --deep also builds each model."""
    from asklepios.config import dump_config, load_config, stage_configs

    with _config_warnings():
        if deep:
            from asklepios.deep_checks import load_checked_config

            resolved = load_checked_config(config, overrides or ())
        else:
            resolved = load_config(config, overrides or ())
    if show:
        sys.stdout.write(dump_config(resolved))
        return
    stages = stage_configs(resolved)
    names = ", ".join(stage.name if stage else "main" for stage, _ in stages)
    level = (
        "deep checks"
        if deep
        else "fast checks; --deep also checks each stage's built data, model and monitored metric"
    )
    sys.stdout.write(f"{config}: valid ({len(stages)} stage(s): {names}; {level})\n")


@app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to FILE (default: stdout).")
    ] = None,
) -> None:
    """Write the JSON Schema of configs with every installed component, for editors."""
    from asklepios_sdk.io import write_atomic

    from asklepios.config import config_schema

    text = json.dumps(config_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
        _console(stderr=True).print(f"wrote {output}")
