"""Plan and run the conformance checks of one plugin; used by the pytest plugin and by tests."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from asklepios_sdk.errors import AsklepiosError
from asklepios_sdk.testing._collect import Collected, Entry, collect
from asklepios_sdk.testing._config import RULES, Conformance
from asklepios_sdk.testing._imports import HeavyImports, heavy_imports

__all__ = ["SLOW_RULES", "Check", "ConformanceError", "Outcome", "Report", "Suite", "check_plugin"]

PLUGIN_RULES = ("hooks", "import-light", "registration-light")
SLOW_RULES = ("evaluator-ddp",)
"""Rules that start processes; marked ``slow`` when the suite declares that marker."""
_INDEPENDENT = ("registration", "params-naming", "build", "params-schema")


class ConformanceError(AsklepiosError):
    """A component (or the plugin) broke a rule of the kit; the message names both."""

    def __init__(self, subject: str, rule: str, why: str) -> None:
        super().__init__(f"{subject} breaks rule '{rule}' ({RULES[rule]}): {why}")
        self.subject = subject
        self.rule = rule
        self.why = why


class CheckSkipped(Exception):
    """A check does not apply; the message is the reason."""


@dataclass(frozen=True)
class Check:
    """One rule applied to one component (``component`` is None for plugin-level rules)."""

    rule: str
    component: str | None = None
    kind: str | None = None

    @property
    def name(self) -> str:
        """Return the test-id part of this check: ``<component>::<rule>`` or ``plugin::<rule>``."""
        return f"{self.component or 'plugin'}::{self.rule}"


@dataclass(frozen=True)
class Outcome:
    """What one check gave."""

    check: Check
    status: Literal["passed", "failed", "skipped"]
    message: str
    seconds: float


@dataclass
class Report:
    """Outcomes of every check of one plugin."""

    plugin_id: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def failed(self, component: str | None, rule: str) -> Outcome | None:
        """Return the failed outcome of ``rule`` on ``component``, or None if it did not fail."""
        for outcome in self.failures:
            if outcome.check.component == component and outcome.check.rule == rule:
                return outcome
        return None

    def seconds_by_component(self) -> dict[str, float]:
        """Return the seconds the kit spent per component (plugin-level checks as 'plugin')."""
        totals: dict[str, float] = {}
        for outcome in self.outcomes:
            key = outcome.check.component or "plugin"
            totals[key] = totals.get(key, 0.0) + outcome.seconds
        return totals

    def raise_for_failures(self) -> None:
        """Raise AsklepiosError listing every failure's message, if there is any."""
        if self.failures:
            lines = "\n".join(f"- {o.message}" for o in self.failures)
            raise AsklepiosError(f"{len(self.failures)} conformance failure(s):\n{lines}")


class Suite:
    """The checks of one plugin: planned from its registrations, run one at a time."""

    def __init__(self, conformance: Conformance | str | object) -> None:
        self.conformance = Conformance.coerce(conformance)
        self._collected: Collected | None = None
        self._build_failed: set[str] = set()
        self._ddp: dict[str, Any] | None = None
        self._heavy: HeavyImports | None = None

    @property
    def collected(self) -> Collected:
        if self._collected is None:
            self._collected = collect(self.conformance.hooks, self.conformance.plugin_id)
        return self._collected

    @property
    def plugin_id(self) -> str:
        return self.collected.plugin_id

    def registrations(self) -> dict[str, Entry]:
        """Return registrations by component id (a later duplicate keeps its own check id)."""
        result: dict[str, Entry] = {}
        for reg in self.collected.entries:
            key = reg.component_id if reg.component_id not in result else f"{reg.kind}:{reg.name}"
            result[key] = reg
        return result

    def checks(self) -> Iterator[Check]:
        """Yield every check: plugin-level rules, then each component's rules in a fixed order."""
        from asklepios_sdk.testing._rules import COMMON_RULES, KIND_RULES

        for rule in PLUGIN_RULES:
            yield Check(rule)
        for key, reg in self.registrations().items():
            for rule in COMMON_RULES + KIND_RULES[reg.kind]:
                yield Check(rule, key, reg.kind)

    def _skip_reason(self, check: Check) -> str | None:
        if check.component is None:
            return self.conformance.skip.get(check.rule)
        override = self.conformance.override_for(check.component)
        return override.skip.get(check.rule) or self.conformance.skip.get(check.rule)

    def run(self, check: Check) -> None:
        """Run ``check``; raise ConformanceError on a breach and CheckSkipped when it is skipped."""
        reason = self._skip_reason(check)
        if reason:
            raise CheckSkipped(f"skipped by the suite: {reason}")
        if check.component is None:
            self._run_plugin_rule(check.rule)
            return
        if check.rule not in _INDEPENDENT and check.component in self._build_failed:
            raise CheckSkipped(f"{check.component} did not build (see rule 'build')")
        self._run_component_rule(check)

    def _run_plugin_rule(self, rule: str) -> None:
        subject = f"plugin {self.plugin_id!r} ({self.conformance.hooks!r})"
        if rule == "hooks":
            problems = self.collected.problems
            if problems:
                raise ConformanceError(subject, rule, "; ".join(problems))
            return
        hooks = self.conformance.hooks
        if not isinstance(hooks, str):
            raise CheckSkipped("an in-memory hook object has no module to import afresh")
        if self._heavy is None:
            try:
                self._heavy = heavy_imports(hooks, self.conformance.heavy_modules, self.plugin_id)
            except RuntimeError as err:
                raise ConformanceError(subject, rule, str(err)) from err
        if rule == "import-light" and self._heavy.at_import:
            raise ConformanceError(
                subject,
                rule,
                f"importing it imports {list(self._heavy.at_import)}; import those inside the "
                "hook function bodies (and keep __init__.py free of them) so listing plugins "
                "stays fast",
            )
        if rule == "registration-light" and self._heavy.at_registration:
            raise ConformanceError(
                subject,
                rule,
                f"running its registration hooks imports {list(self._heavy.at_registration)}; "
                "register lazy targets ('package.module:Class') and import only the params "
                "models, from modules that need pydantic and the SDK alone (and keep the "
                "packages above them light)",
            )

    def _subject(self, reg: Entry) -> Any:
        from asklepios_sdk.testing._subject import Subject

        override = self.conformance.override_for(reg.component_id)
        return Subject(reg, override, override.context(self.conformance.base_context()))

    def _ddp_results(self) -> dict[str, Any]:
        """Run the 2-rank job once for every evaluator that the ddp rule applies to."""
        from asklepios_sdk.testing._ddp import run_ddp_job
        from asklepios_sdk.testing._rules import run_seeded
        from asklepios_sdk.testing._rules_eval import evaluator_ddp_task
        from asklepios_sdk.testing._subject import RuleFailure

        if self._ddp is not None:
            return self._ddp
        results: dict[str, Any] = {}
        tasks: dict[str, Any] = {}
        for key, reg in self.registrations().items():
            check = Check("evaluator-ddp", key, reg.kind)
            if reg.kind != "evaluator" or self._skip_reason(check) or key != reg.component_id:
                continue
            try:
                tasks[key], results[key] = run_seeded(self._subject(reg), evaluator_ddp_task)
            except RuleFailure as err:
                results[key] = err
        if tasks:
            assert isinstance(self.conformance.hooks, str)
            try:
                synced = run_ddp_job(self.conformance.hooks, self.plugin_id, tasks)
            except RuntimeError as err:
                synced = {key: str(err) for key in tasks}
            results = {k: (v, synced[k]) if k in tasks else v for k, v in results.items()}
        self._ddp = results
        return results

    def _run_ddp_rule(self, check: Check, reg: Entry) -> None:
        from asklepios_sdk.testing._rules_eval import compare_ddp
        from asklepios_sdk.testing._subject import RuleFailure

        if not isinstance(self.conformance.hooks, str):
            raise CheckSkipped("the 2-rank job imports the hook module; in-memory hooks cannot")
        assert check.component is not None
        outcome = self._ddp_results().get(check.component)
        if outcome is None:
            raise CheckSkipped(f"{check.component} is registered twice; see rule 'registration'")
        try:
            if isinstance(outcome, RuleFailure):
                raise outcome
            compare_ddp(*outcome)
        except RuleFailure as err:
            raise ConformanceError(f"{reg.component_id} ({reg.kind})", check.rule, str(err)) from (
                err.__cause__
            )

    def _run_component_rule(self, check: Check) -> None:
        from asklepios_sdk.testing._rules import run_rule
        from asklepios_sdk.testing._subject import RuleFailure

        assert check.component is not None
        reg = self.registrations()[check.component]
        if check.rule == "evaluator-ddp":
            self._run_ddp_rule(check, reg)
            return
        subject = self._subject(reg)
        try:
            run_rule(check.rule, subject)
        except RuleFailure as err:
            if check.rule == "build":
                self._build_failed.add(check.component)
            raise ConformanceError(f"{reg.component_id} ({reg.kind})", check.rule, str(err)) from (
                err.__cause__
            )


def check_plugin(conformance: Conformance | str | object) -> Report:
    """Run every check on a plugin and return the report (the kit's API outside pytest).

    Args:
        conformance: a :class:`Conformance`, a dotted hook-module name or a hook object.

    Returns:
        A :class:`Report`; call :meth:`Report.raise_for_failures` to turn failures into an error.
    """
    suite = Suite(conformance)
    report = Report(plugin_id=suite.plugin_id)
    for check in suite.checks():
        status: Literal["passed", "failed", "skipped"]
        start = time.perf_counter()
        try:
            suite.run(check)
        except CheckSkipped as skip:
            status, message = "skipped", str(skip)
        except ConformanceError as err:
            status, message = "failed", str(err)
        except Exception as err:  # a bug in the component the rule did not anticipate
            status = "failed"
            message = f"{check.name}: unexpected {type(err).__name__}: {err}\n" + "".join(
                traceback.format_exception(err)
            )
        else:
            status, message = "passed", ""
        report.outcomes.append(Outcome(check, status, message, time.perf_counter() - start))
    return report
