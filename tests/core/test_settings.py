"""Settings sections: a tracker declares ``tracking.<id>`` and validation checks it."""

from __future__ import annotations

from typing import Any

import pytest
from asklepios.errors import PluginError
from asklepios.settings import check_settings_sections, declared_settings, settings_plugins
from asklepios_sdk import Params, hookimpl
from asklepios_sdk.registration import check_settings, read_settings


class TrackerParams(Params):
    """Settings of the test tracker."""

    folder: str = "tb"
    every: int = 10


class NeedsParams(Params):
    """Settings with a required field (invalid for a settings section)."""

    uri: str


def _tracker(section: str = "tracking", params: Any = TrackerParams) -> Any:
    @hookimpl
    def register_settings(register: Any) -> None:
        register(section, params)

    return register_settings


@pytest.fixture
def host(make_host, plugin_module):
    return make_host(
        {
            "tb": plugin_module("tb_hooks", register_settings=_tracker()),
            "quiet": plugin_module("quiet_hooks"),
        }
    )


def test_entry_is_checked_and_defaults_are_written_back(host):
    raw = {"tracking": {"tb": {"every": 5}}}
    assert check_settings_sections(raw, host) == []
    assert raw["tracking"]["tb"] == {"folder": "tb", "every": 5}
    empty = {"tracking": {"tb": None}}
    assert check_settings_sections(empty, host) == []
    assert empty["tracking"]["tb"] == {"folder": "tb", "every": 10}


def test_unknown_key_names_the_path_plugin_and_the_spelling(host):
    problems = check_settings_sections({"tracking": {"tb": {"evry": 5}}}, host)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.path == ("tracking", "tb", "evry")
    assert problem.message == "unknown parameter"
    assert problem.plugin == "tb 1.2.3"
    assert "every" in (problem.suggestion or "")


def test_wrong_type_and_not_a_mapping(host):
    (bad,) = check_settings_sections({"tracking": {"tb": {"every": "often"}}}, host)
    assert bad.path == ("tracking", "tb", "every") and "often" in bad.message
    (flat,) = check_settings_sections({"tracking": {"tb": 3}}, host)
    assert "mapping" in flat.message


def test_uninstalled_plugin_gets_a_suggestion(host):
    (problem,) = check_settings_sections({"tracking": {"tbb": {}}}, host)
    assert problem.path == ("tracking", "tbb")
    assert "no plugin 'tbb' is installed" in problem.message
    assert "tb" in (problem.suggestion or "")


def test_plugin_without_settings_lists_those_that_have_some(host):
    (problem,) = check_settings_sections({"tracking": {"quiet": {}}}, host)
    assert "declares no tracking settings" in problem.message
    assert problem.suggestion == "plugins with tracking settings: tb"
    assert settings_plugins(host, "tracking") == ["tb"]


def test_disabled_plugin_entry_is_left_alone(make_host, plugin_module):
    host = make_host(
        {"tb": plugin_module("tb_hooks", register_settings=_tracker())}, disabled=["tb"]
    )
    raw = {"tracking": {"tb": {"whatever": 1}}}
    assert check_settings_sections(raw, host) == []
    assert raw["tracking"]["tb"] == {"whatever": 1}


@pytest.mark.parametrize(
    ("section", "params", "needle"),
    [
        ("logging", TrackerParams, "sections: tracking"),
        ("tracking", NeedsParams, "required field(s) ['uri']"),
        ("tracking", dict, "not a subclass of asklepios_sdk.Params"),
    ],
)
def test_invalid_registration_is_a_plugin_error(make_host, plugin_module, section, params, needle):
    host = make_host({"tb": plugin_module("tb_hooks", register_settings=_tracker(section, params))})
    with pytest.raises(PluginError, match="register_settings") as info:
        declared_settings(host, "tb")
    assert needle in str(info.value)
    assert needle in "; ".join(check_settings("tb", section, params))


def test_read_settings_gives_defaults_without_an_entry():
    class Config:
        def __init__(self) -> None:
            self.tracking = {"tb": {"every": 3}}

    assert read_settings(Config(), "tracking", "tb", TrackerParams).every == 3
    assert read_settings(Config(), "tracking", "other", TrackerParams) == TrackerParams()
    assert read_settings(object(), "tracking", "tb", TrackerParams) == TrackerParams()


TINY = {
    "name": "tiny",
    "data": {"dataset": {"type": "core.digits", "image_size": 8}},
    "model": {"backbone": {"type": "core.mlp", "hidden": [8]}},
}


def test_validate_config_checks_the_tracking_section(plugin_module):
    from asklepios.config import validate_config
    from asklepios.errors import ConfigError
    from asklepios.plugins import PluginHost

    host = PluginHost(discover=False, strict=False)
    host.add_plugin(plugin_module("tb_hooks", register_settings=_tracker()), "tb")
    config = validate_config({**TINY, "tracking": {"tb": {"every": 2}}}, host=host)
    assert config.tracking == {"tb": {"folder": "tb", "every": 2}}
    assert validate_config(TINY, host=host).tracking == {}
    with pytest.raises(ConfigError) as info:
        validate_config({**TINY, "tracking": {"tb": {"evry": 2}, "mlfow": {}}}, host=host)
    paths = {issue.path for issue in info.value.issues}
    assert paths == {"tracking.tb.evry", "tracking.mlfow"}


def test_the_schema_describes_each_trackers_entry(host):
    from asklepios.config import config_schema

    schema = config_schema(host)
    tracking = schema["properties"]["tracking"]
    assert tracking["properties"] == {"tb": {"$ref": "#/$defs/settings.tracking.tb"}}
    assert tracking["additionalProperties"] is False
    entry = schema["$defs"]["settings.tracking.tb"]
    assert entry["properties"]["every"]["default"] == 10 and entry["additionalProperties"] is False
