"""The package-level files ``new-plugin`` writes around the per-kind examples.

Texts here are :class:`string.Template` sources (``${plugin}``, ``${package}``, ``${dist}``, ...)
that :func:`asklepios_sdk.scaffold.plugin_files` fills in. Generated code must pass ``ruff check``
and ``ruff format --check`` as written, so the few lines whose length depends on the plugin id
(the ``register(...)`` calls) are laid out here the way ruff formats them.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from string import Template

from asklepios_sdk.registration import first_doc_line
from asklepios_sdk.scaffold._kinds import KINDS

__all__ = [
    "citation_cff",
    "class_doc",
    "config",
    "conftest",
    "dependencies",
    "hooks",
    "init",
    "params",
    "pyproject",
    "readme",
    "readme_test",
]

LINE_LENGTH = 100
"""The generated ``[tool.ruff] line-length``."""

_PYPROJECT = """[build-system]
requires = ["setuptools>=77"]
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

_INIT = '''"""An asklepios plugin; README.md lists its components.

Importing this package is free of torch and side effects: the hook functions of the ``hooks``
module register the components when asklepios activates the plugin.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    # The [project] name in pyproject.toml: rename both together.
    __version__ = version("${dist}")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
'''

_HOOKS_HEAD = '''"""Registration hooks of the ${plugin} plugin (its entry point).

Only hook functions live here. Each imports its params models inside the function body and makes
one ``register(name, "package.module:Class", ClassParams)`` call per component: the class is a
lazy reference, imported only when a config builds the component, so listing and validating
never import torch.
"""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl
'''

_HOOK = '''

@hookimpl
def ${hook}(register: Register) -> None:
    """Register the ${plugin} ${plural}."""
    ${import_line}

${calls}'''

_PARAMS_HEAD = '''"""The ${plugin} params models: pydantic and the SDK only.

The registration hooks import this module, so importing it must stay cheap; the family modules
import their ``<Class>Params`` from here.
"""

from __future__ import annotations

from asklepios_sdk import Params
from pydantic import Field
'''

_CONFTEST = '''"""Switch on the asklepios conformance kit for every component of this plugin."""

asklepios_conformance = "${package}.hooks"
'''

_TEST_README = '''"""The README's component table is the one the registrations give."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_table_lists_every_component() -> None:
    rows = component_table_rows("${package}.hooks")
    table = "\\n".join([*COMPONENT_TABLE_HEADER, *rows])
    text = README.read_text(encoding="utf-8")
    assert table in text, "the README's component table is stale; paste this one:\\n" + table
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

${table}

`tests/test_readme.py` checks this table against the registrations (one-line docs are the first
lines of the class docstrings) and prints the table to paste when it is stale.

${references}## Install and test

```bash
pip install -e '.[test]'            # next to asklepios and asklepios-sdk
python -m pytest                    # your tests and the SDK conformance kit
asklepios plugins list              # shows ${plugin}
asklepios components '${plugin}.*'
```

`tests/conftest.py` switches on the conformance kit, which checks every registered component:
registration (lazy target, `<Class>Params` naming, a light params module), build with default
params, params schema, pickling, forward/backward and the kind's own rules, including that a loss
or sampler restored from `state_dict()` continues like the one that saved it.

## Use

`configs/example.yaml` mixes these components with the core's:

```yaml
${config}```

```bash
asklepios run configs/example.yaml --set train.epochs=1
```

## Layout

- `src/${package}/hooks.py`: one `register(name, "${package}.<module>:<Class>", <Class>Params)`
  call per component; it imports the params only, never torch.
- `src/${package}/params.py`: the `<Class>Params` models (pydantic and the SDK only).
- `src/${package}/<family>.py`: the component classes, built as `Class(params, ctx)`. A loss
  keeps running state in buffers (`register_buffer`) or `get_extra_state`/`set_extra_state`, a
  sampler in `state_dict`/`load_state_dict` (calling `super()`), so checkpoints carry it.
- The distribution name `${dist}` is a convention (`asklepios-<id>`), not a rule: asklepios
  finds the plugin through its `asklepios.plugins` entry point. `__init__.py` reads
  `__version__` from this name; rename both together (`asklepios new-plugin --dist-name`
  writes another name in both places).

## Citation

If you use this plugin, cite it (`src/${package}/CITATION.cff`) and the papers of the methods
you use (see above):

```bibtex
@software{${plugin}_plugin,
  title = {${dist}},
  author = {${author}},
  version = {0.1.0},
}
```
"""


def call_lines(indent: str, function: str, args: Sequence[str]) -> str:
    """Return ``function(*args)`` laid out as ``ruff format`` does, each line ending in ``\\n``.

    One line when it fits; else the arguments together on one indented line; else one argument
    per line with a trailing comma.
    """
    joined = ", ".join(args)
    one_line = f"{indent}{function}({joined})"
    if len(one_line) <= LINE_LENGTH:
        return one_line + "\n"
    inner = indent + " " * 4
    if len(inner + joined) <= LINE_LENGTH:
        return f"{indent}{function}(\n{inner}{joined}\n{indent})\n"
    body = "".join(f"{inner}{arg},\n" for arg in args)
    return f"{indent}{function}(\n{body}{indent})\n"


def hooks(kinds: Sequence[str], package: str) -> str:
    """Return ``hooks.py``: one hook per kind, one lazy ``register(...)`` call per component."""
    parts = [_HOOKS_HEAD]
    for kind in kinds:
        template = KINDS[kind]
        if template.params:
            import_line = f"from {package} import params as p"
            params_arg = f"p.{template.params}"
        else:
            import_line = "from asklepios_sdk import EmptyParams"
            params_arg = "EmptyParams"
        target = f'"{package}.{template.module}:{template.cls}"'
        calls = call_lines(" " * 4, "register", [f'"{template.name}"', target, params_arg])
        parts.append(
            _HOOK.replace("${hook}", template.hook)
            .replace("${plural}", template.plural)
            .replace("${import_line}", import_line)
            .replace("${calls}", calls)
        )
    return "".join(parts)


def params(kinds: Sequence[str]) -> str | None:
    """Return ``params.py`` with the params model of each kind, or None when none takes any."""
    models = [KINDS[kind].params_code for kind in kinds if KINDS[kind].params_code]
    return _PARAMS_HEAD + "".join(models) if models else None


def _installed(distribution: str, fallback: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # a source tree that is not installed
        return fallback


def compatible_range(installed: str) -> str:
    """Return ``>=X.Y,<next`` for a version: the next minor while ``0.x``, else the next major."""
    parts = [int(p) if p.isdigit() else 0 for p in [*installed.split("."), "0"][:2]]
    major, minor = parts
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={major}.{minor},<{upper}"


def dependencies(kinds: Sequence[str]) -> list[str]:
    """Return the requirements of a plugin with these kinds (core and SDK ranges first).

    The ranges are those of the installed core and SDK, whose contract the generated code
    follows (``asklepios>=0.2,<0.3`` next to asklepios 0.2.x); the core is released with the SDK,
    so the SDK's version stands in for a core that is not installed.
    """
    sdk = _installed("asklepios-sdk", "0.1")
    deps = [
        f"asklepios{compatible_range(_installed('asklepios', sdk))}",
        f"asklepios-sdk{compatible_range(sdk)}",
        "numpy>=1.24",
        "pydantic>=2.5,<3",
        "torch>=2.1",
    ]
    for kind in kinds:
        deps += [d for d in KINDS[kind].dependencies if d not in deps]
    return deps


def pyproject(kinds: Sequence[str]) -> str:
    """Return ``pyproject.toml`` with the entry point, the core range and the ``[test]`` extra."""
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


def class_doc(source: str, cls: str) -> str:
    """Return the first docstring line of class ``cls`` in ``source``, as the registry reads it."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            doc = first_doc_line(ast.get_docstring(node))
            if doc:
                return doc
    raise ValueError(f"template class {cls} has no docstring")  # a bug in the templates


def readme(kinds: Sequence[str], values: Mapping[str, str], docs: Mapping[str, str]) -> str:
    """Return the README, filled in: components, install and test, config, layout, citation.

    ``values`` are the template values (``plugin``, ``package``, ``dist``, ...); ``docs`` maps
    each kind to its component's one-line doc. The table is exactly what
    :func:`asklepios_sdk.testing.component_table_rows` gives for the generated hook module, under
    :data:`~asklepios_sdk.testing.COMPONENT_TABLE_HEADER`, with ``|`` escaped the same way.
    """
    from asklepios_sdk.testing._readme import COMPONENT_TABLE_HEADER, _cell

    plugin = values["plugin"]
    rows = [f"| `{plugin}.{KINDS[k].name}` | {k} | {_cell(docs[k])} |" for k in kinds]
    references = [
        f"- `{plugin}.{KINDS[k].name}`: {KINDS[k].reference}"
        for k in kinds
        if KINDS[k].reference != "-"
    ]
    reference_text = "References:\n\n" + "\n".join(references) + "\n\n" if references else ""
    return Template(_README).substitute(
        values,
        table="\n".join([*COMPONENT_TABLE_HEADER, *rows]),
        references=reference_text,
        config=Template(config(kinds)).substitute(values),
    )


def init() -> str:
    """Return the package ``__init__.py``: only ``__version__``, read for ``${dist}``."""
    return _INIT


def conftest() -> str:
    """Return ``tests/conftest.py``: the one line that switches the conformance kit on."""
    return _CONFTEST


def readme_test() -> str:
    """Return ``tests/test_readme.py``, which keeps the README's component table current."""
    return _TEST_README


def citation_cff() -> str:
    """Return the plugin's ``CITATION.cff``."""
    return _CITATION
