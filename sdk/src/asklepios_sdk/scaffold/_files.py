"""The package-level files ``new-plugin`` writes around the per-kind examples."""

from __future__ import annotations

from collections.abc import Sequence

from asklepios_sdk.scaffold._kinds import KINDS

__all__ = ["citation_cff", "config", "conftest", "hooks", "init", "pyproject", "readme"]

_PYPROJECT = """[build-system]
requires = ["setuptools>=77", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "${dist}"
version = "0.1.0"
description = "${description}"
readme = "README.md"
requires-python = ">=3.10"
license = "Apache-2.0"
dependencies = [
${dependencies}
]

[project.optional-dependencies]
test = ["pytest>=8"]

# The entry name is the plugin id: components are named ${plugin}.<name>.
[project.entry-points."asklepios.plugins"]
${plugin} = "${package}.hooks"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
${package} = ["CITATION.cff", "py.typed"]

[tool.ruff]
line-length = 100
target-version = "py310"

[tool.ruff.lint]
select = ["E", "F", "W", "I", "B", "UP", "SIM", "RUF"]

[tool.ruff.lint.isort]
known-first-party = ["${package}"]

[tool.pytest.ini_options]
addopts = "-ra --strict-markers"
testpaths = ["tests"]
markers = [
    "slow: takes more than a few seconds",
]
"""

_INIT = '''"""${dist}: an asklepios plugin (components: see README.md).

Importing this package is free of torch and side effects; components are registered by the hook
functions in ``${package}.hooks`` when asklepios activates the plugin.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("${dist}")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
'''

_HOOKS_HEAD = '''"""Registration hooks of the ${plugin} plugin (entry point ``${plugin}``).

Only hook functions live here; each imports its family module inside the function body, so that
listing plugins never imports torch.
"""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl
'''

_HOOK = '''

@hookimpl
def ${hook}(register: Register) -> None:
    """Register the ${plugin} ${kind}s."""
    ${import_line}

    register("${name}", ${cls}${params_arg})
'''

_CONFTEST = '''"""Switch on the asklepios conformance kit for every component of this plugin."""

asklepios_conformance = "${package}.hooks"
'''

_CITATION = """cff-version: 1.2.0
message: If you use this plugin, please cite it as below (and the papers of the methods you use).
title: ${dist}
authors:
  - name: ${author}
version: 0.1.0
license: Apache-2.0
"""

_README = """# ${dist}

An [asklepios](https://pypi.org/project/asklepios/) plugin with id `${plugin}`: ${description}.
Each example component below is a small published method with a test; replace them with your
own methods, and keep this README's table, notes on deviations from the papers, and citation
current.

## Components

| id | kind | what | reference |
|---|---|---|---|
${rows}

## Install

```bash
pip install -e .            # next to asklepios and asklepios-sdk
asklepios plugins list      # shows ${plugin}
asklepios components '${plugin}.*'
```

## Use

`configs/example.yaml` mixes these components with the core's:

```yaml
${config}```

```bash
asklepios run configs/example.yaml --set train.epochs=1
```

## Test

```bash
pytest tests
```

`tests/conftest.py` switches on the SDK conformance kit, which checks every registered component
(build with default params, params schema, forward/backward, pickling, kind-specific rules).

## Citation

If you use this plugin, cite it (`src/${package}/CITATION.cff`) and the papers of the methods
you use (see the table above):

```bibtex
@software{${plugin}_plugin,
  title = {${dist}},
  author = {${author}},
  version = {0.1.0},
}
```
"""


def _import_line(module: str, cls: str, params: str | None) -> str:
    names = sorted([cls, params] if params else [cls])
    line = f"from ${{package}}.{module} import {', '.join(names)}"
    if len(line.replace("${package}", "asklepios_" + "x" * 20)) <= 96:
        return line
    inner = "".join(f"        {n},\n" for n in names)
    return f"from ${{package}}.{module} import (\n{inner}    )"


def hooks(kinds: Sequence[str]) -> str:
    """Return the source of ``hooks.py`` registering the example of each kind."""
    parts = [_HOOKS_HEAD]
    for kind in kinds:
        template = KINDS[kind]
        params = template.params
        parts.append(
            _HOOK.replace("${hook}", template.hook)
            .replace("${kind}", kind)
            .replace("${import_line}", _import_line(template.module, template.cls, params))
            .replace("${cls}", template.cls)
            .replace("${name}", template.name)
            .replace("${params_arg}", f", {params}" if params else "")
        )
    return "".join(parts)


def dependencies(kinds: Sequence[str]) -> list[str]:
    """Return the requirements of a plugin with these kinds (core range first)."""
    deps = [
        "asklepios>=0.1,<0.2",
        "asklepios-sdk>=0.1,<0.2",
        "numpy>=1.24",
        "pydantic>=2.5,<3",
        "torch>=2.1",
    ]
    for kind in kinds:
        deps += [d for d in KINDS[kind].dependencies if d not in deps]
    return deps


def pyproject(kinds: Sequence[str]) -> str:
    """Return ``pyproject.toml`` with the entry point and the core range."""
    deps = ",\n".join(f'    "{d}"' for d in dependencies(kinds))
    return _PYPROJECT.replace("${dependencies}", deps)


def config(kinds: Sequence[str]) -> str:
    """Return a config that uses each example and core components for the other parts."""

    def pick(kind: str, fallback: str) -> str:
        return f"{{type: ${{plugin}}.{KINDS[kind].name}}}" if kind in kinds else fallback

    backbone = pick("backbone", "{type: core.mlp}")
    if "backbone" in kinds and "trainer" in kinds:  # R-Drop needs dropout to act on
        backbone = backbone[:-1] + ", dropout: 0.2}"
    lines = [
        "name: ${plugin}-example",
        "seed: 0",
        "output_dir: runs",
        "data:",
        f"  dataset: {pick('dataset', '{type: core.digits}')}",
    ]
    if "sampler" in kinds:
        lines.append(f"  sampler: {pick('sampler', '')}")
    if "augmentation" in kinds:
        lines += ["  transforms:", "    train:", f"      - {pick('augmentation', '')}"]
    lines += [
        "  loader: {batch_size: 64}",
        "model:",
        f"  backbone: {backbone}",
    ]
    if "adapter" in kinds:
        lines.append(f"  adapters: [{pick('adapter', '')}]")
    lines.append(f"loss: {pick('loss', '{type: core.cross_entropy}')}")
    lines += ["evaluators:", "  - {type: core.classification}"]
    if "evaluator" in kinds:
        lines.append(f"  - {pick('evaluator', '')}")
    if "trainer" in kinds:
        lines.append(f"trainer: {pick('trainer', '')}")
    lines += ["optimizer: {name: adamw, lr: 0.003}", "train: {epochs: 3, device: auto}"]
    return "\n".join(lines) + "\n"


def readme(kinds: Sequence[str]) -> str:
    """Return the README: components, install, config example, test, citation block."""
    rows = "\n".join(
        f"| `${{plugin}}.{KINDS[k].name}` | {k} | {KINDS[k].doc} | {KINDS[k].reference} |"
        for k in kinds
    )
    return _README.replace("${rows}", rows).replace("${config}", config(kinds))


def init() -> str:
    """Return the package ``__init__.py``: only ``__version__``."""
    return _INIT


def conftest() -> str:
    """Return ``tests/conftest.py``: the one line that switches the conformance kit on."""
    return _CONFTEST


def citation_cff() -> str:
    """Return the plugin's ``CITATION.cff``."""
    return _CITATION
