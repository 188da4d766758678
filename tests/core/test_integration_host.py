"""The host over the real installation: installed plugins, the core's built-ins, the quickstart."""

from __future__ import annotations

from pathlib import Path

import pytest
from asklepios.config import load_config, stage_configs
from asklepios.plugins import PluginHost, PluginStatus

ROOT = Path(__file__).resolve().parents[2]


def test_installed_plugins_are_indexed_without_import():
    host = PluginHost(strict=True)
    infos = host.plugins()
    assert infos[0].id == "core" and infos[0].builtin
    for info in infos[1:]:
        assert info.status == PluginStatus.NOT_LOADED, info.problem()
        assert info.distribution.startswith("asklepios-")
        assert info.core_range, f"{info.distribution} declares no range on asklepios"
        assert info.module.endswith(".hooks") and info.location


@pytest.mark.slow
def test_quickstart_validates_against_the_real_builtins():
    host = PluginHost(strict=True)
    config = load_config(ROOT / "examples" / "configs" / "quickstart.yaml", host=host)
    assert host.info("core").activated
    names = [s.name for s, _ in stage_configs(config)]
    assert names == ["representation", "classifier", "robustness"]
    assert config.model.backbone.type == "core.timm"
    loaded = {i.id for i in host.plugins() if not i.builtin and i.loaded}
    assert loaded == {"longtail", "diffusion_tta"}, "a config imports only the plugins it names"
