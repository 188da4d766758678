"""pytest plugin of the conformance kit (entry point ``pytest11``); inert unless a suite opts in.

A suite opts in by assigning ``asklepios_conformance`` in a ``conftest.py``::

    asklepios_conformance = "asklepios_myplugin.hooks"

The kit then collects one test item per (component, rule) under that conftest, named
``conftest.py::<component-id>::<rule>`` (``plugin::hooks`` and ``plugin::import-light`` for the
plugin as a whole). Nothing heavy is imported unless a suite opts in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

MARKER = "asklepios_conformance"
ATTRIBUTE = "asklepios_conformance"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker the kit puts on its items, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers", f"{MARKER}: a check of the asklepios conformance kit (asklepios_sdk.testing)"
    )


def _conftest_module(config: pytest.Config, path: Path) -> Any:
    for plugin in config.pluginmanager.get_plugins():
        module_file = getattr(plugin, "__file__", None)
        if module_file and Path(module_file).resolve() == path.resolve():
            return plugin
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect the kit's checks from a ``conftest.py`` that sets ``asklepios_conformance``."""
    if file_path.name != "conftest.py":
        return None
    module = _conftest_module(parent.config, file_path)
    if module is None or getattr(module, ATTRIBUTE, None) is None:
        return None
    return ConformanceFile.from_parent(parent, path=file_path, setting=getattr(module, ATTRIBUTE))


class ConformanceFile(pytest.File):
    """The checks a conftest's ``asklepios_conformance`` asks for."""

    def __init__(self, *, setting: object, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.setting = setting

    def collect(self) -> list[pytest.Item]:
        from asklepios_sdk.testing._runner import SLOW_RULES, Suite

        suite = Suite(self.setting)
        has_slow = any(m.split(":")[0].strip() == "slow" for m in self.config.getini("markers"))
        items: list[pytest.Item] = []
        for check in suite.checks():
            item = ConformanceItem.from_parent(self, name=check.name, suite=suite, check=check)
            if has_slow and check.rule in SLOW_RULES:
                item.add_marker("slow")
            items.append(item)
        return items


class ConformanceItem(pytest.Item):
    """One rule on one component."""

    def __init__(self, *, suite: Any, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.check = check
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from asklepios_sdk.testing._runner import CheckSkipped

        try:
            self.suite.run(self.check)
        except CheckSkipped as skip:
            pytest.skip(str(skip))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from asklepios_sdk.testing._runner import ConformanceError

        if isinstance(excinfo.value, ConformanceError):
            cause = excinfo.value.__cause__
            if cause is None:
                return str(excinfo.value)
            detail = pytest.ExceptionInfo.from_exception(cause).getrepr(style="short")
            return f"{excinfo.value}\n\ncaused by:\n{detail}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"asklepios conformance: {self.check.name}"
