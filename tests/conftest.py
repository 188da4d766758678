"""Shared fixtures of the core tests: fake plugin distributions and in-memory plugin hosts.

* ``fake_site``: writes installable-looking distributions (``*.dist-info`` with ``METADATA``
  ``Requires-Dist`` and ``entry_points.txt``) plus their hook modules into a temporary site
  directory on ``sys.path``, so discovery, isolation, strict mode and lazy loading are tested
  through real entry points without installing anything.
* ``make_host``: a :class:`~asklepios.plugins.PluginHost` over in-memory plugin modules (no
  discovery), as simonw/llm's tests register plugin objects instead of installing packages.

The process-wide host is forgotten after every test so no test sees another's plugins.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asklepios.plugins import PluginHost, reset_host

_COUNTER = itertools.count()


@pytest.fixture(autouse=True)
def _fresh_process_host() -> Iterator[None]:
    reset_host()
    yield
    reset_host()


class FakeSite:
    """A temporary site directory that fake plugin distributions are written into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.packages: list[str] = []

    def add(
        self,
        plugin_id: str,
        hooks: str = "",
        *,
        dist: str | None = None,
        version: str = "0.1.0",
        requires: tuple[str, ...] = ("asklepios>=0.2,<0.3", "asklepios-sdk>=0.2,<0.3"),
        package: str | None = None,
        entry_value: str | None = None,
        extra_modules: dict[str, str] | None = None,
    ) -> str:
        """Write one distribution declaring ``plugin_id``; return its hook module's name.

        Args:
            plugin_id: the entry-point name.
            hooks: source of the hook module (dedented).
            dist: distribution name (default ``asklepios-<id>``).
            version: distribution version.
            requires: ``Requires-Dist`` lines.
            package: import package name (default: unique per call, so modules never collide).
            entry_value: entry-point value (default ``<package>.hooks``).
            extra_modules: more modules of the package, name -> source.
        """
        package = package or f"fakeplug_{plugin_id}_{next(_COUNTER)}"
        dist = dist or f"asklepios-{plugin_id}".replace("_", "-")
        pkg_dir = self.root / package
        pkg_dir.mkdir()
        (pkg_dir / "__init__.py").write_text('"""A fake plugin package."""\n')
        (pkg_dir / "hooks.py").write_text(textwrap.dedent(hooks))
        for name, source in (extra_modules or {}).items():
            (pkg_dir / f"{name}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
        lines += [f"Requires-Dist: {req}" for req in requires]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        value = entry_value or f"{package}.hooks"
        (info / "entry_points.txt").write_text(f"[asklepios.plugins]\n{plugin_id} = {value}\n")
        (info / "RECORD").write_text("")
        self.packages.append(package)
        importlib.invalidate_caches()
        return f"{package}.hooks"

    def host(self, **kwargs: Any) -> PluginHost:
        """Return a host discovering only this site (no built-ins, not strict unless asked)."""
        kwargs.setdefault("builtins", False)
        kwargs.setdefault("strict", False)
        return PluginHost(search_path=[str(self.root)], **kwargs)


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    """Yield a :class:`FakeSite` on ``sys.path``; its modules are unloaded afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    site = FakeSite(root)
    yield site
    for name in list(sys.modules):
        if name.split(".")[0] in site.packages:
            del sys.modules[name]
    importlib.invalidate_caches()


def _plugin_module(name: str, **functions: Callable[..., Any]) -> types.ModuleType:
    module = types.ModuleType(name)
    for attr, func in functions.items():
        setattr(module, attr, func)
    return module


@pytest.fixture
def plugin_module() -> Callable[..., types.ModuleType]:
    """Return ``make(name, **hookimpls)`` building a module object that acts as a plugin."""
    return _plugin_module


@pytest.fixture
def make_host() -> Callable[..., PluginHost]:
    """Return ``make(plugins={id: module}, strict=False)`` building an in-memory host."""

    def make(plugins: dict[str, Any], strict: bool = False, **kwargs: Any) -> PluginHost:
        host = PluginHost(strict=strict, discover=False, builtins=False, **kwargs)
        for plugin_id, obj in plugins.items():
            host.add_plugin(obj, plugin_id, version="1.2.3", distribution=f"asklepios-{plugin_id}")
        return host

    return make
