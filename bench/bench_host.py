"""Benchmark the host: CLI start-up, hook dispatch and config validation. Prints; asserts nothing.

1. Wall and CPU time of ``asklepios plugins list`` in a fresh process next to ``python -c pass``
   (the interpreter's own start-up; CPU time is the figure that survives a busy machine), with
   the installed plugins and with 500 extra fake distributions on the path (50 of them asklepios
   plugins); also whether torch or a plugin module was imported.
2. One ``host.hook.step_end(...)`` call through pluggy (one implementation) and through the
   resolved ``host.caller("step_end")`` next to calling the implementation directly.
3. ``load_config`` of a 20-component config (components of in-memory plugins, already activated)
   next to the baseline of reading the YAML and validating the envelope only.

Targets: plugins list <= 300 ms with no torch import; validation overhead <= 50 ms; one hook
call <= 2 us.
Run: ``python bench/bench_host.py`` (``make bench``).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import types
from pathlib import Path

import yaml
from asklepios.config import ExperimentConfig, load_config
from asklepios.plugins import PluginHost
from asklepios_sdk import Params, hookimpl

REPEATS = 7
CHECK = """
import json, sys
from asklepios.cli import main
from asklepios.plugins import get_host
code = main(["plugins", "list"])
modules = {i.module.split(":")[0].split(".")[0] for i in get_host().plugins() if not i.builtin}
hits = [m for m in sys.modules if m.split(".")[0] in modules or m == "torch"
        or m.startswith("asklepios.builtins")]
print(json.dumps({"code": code, "imported": sorted(hits), "plugins": len(modules)}))
"""


def _wall(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Return the median wall time and median CPU time (user + sys) of running ``cmd``."""
    times, cpu = [], []
    for _ in range(REPEATS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), statistics.median(cpu)


def _fake_site(root: Path, count: int = 500, plugins: int = 50) -> None:
    for i in range(count):
        dist = f"benchfake{i:03d}"
        info = root / f"{dist}-1.0.dist-info"
        info.mkdir()
        requires = "Requires-Dist: asklepios>=0.2,<0.3\n" if i < plugins else ""
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n{requires}"
        )
        if i < plugins:
            eps = f"[asklepios.plugins]\nbench{i:03d} = {dist}.hooks\n"
        else:
            eps = f"[console_scripts]\n{dist} = {dist}.cli:main\n"
        (info / "entry_points.txt").write_text(eps)
        (info / "RECORD").write_text("")


def bench_plugins_list() -> None:
    script = str(Path(sys.executable).parent / "asklepios")
    base_env = {**os.environ}
    base_env.pop("PYTHONPATH", None)
    print("1. `asklepios plugins list` in a fresh process (median of", REPEATS, "runs)")
    with tempfile.TemporaryDirectory() as tmp:
        _fake_site(Path(tmp))
        fake_env = {**base_env, "PYTHONPATH": tmp}
        for label, env in (("installed plugins", base_env), ("+500 fake distributions", fake_env)):
            baseline, baseline_cpu = _wall([sys.executable, "-c", "pass"], env)
            listing, listing_cpu = _wall([script, "plugins", "list"], env)
            check = subprocess.run(
                [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True
            )
            facts = json.loads(check.stdout.strip().splitlines()[-1])
            print(
                f"   {label:<24} wall: python -c pass {baseline * 1e3:6.1f} ms, plugins list "
                f"{listing * 1e3:6.1f} ms ({listing / baseline:4.1f}x) | cpu: "
                f"{baseline_cpu * 1e3:6.1f} ms vs {listing_cpu * 1e3:6.1f} ms | "
                f"{facts['plugins']} plugins indexed | imported torch/plugins: "
                f"{facts['imported'] or 'none'}"
            )


def bench_hook_dispatch() -> None:
    @hookimpl
    def step_end(run, step, losses):
        return None

    host = PluginHost(discover=False, builtins=False, strict=False)
    host.add_plugin(types.SimpleNamespace(step_end=step_end), "ema")
    host.load_all()
    losses = {"total": 1.0}
    hook = host.hook.step_end
    number = 200_000
    via = min(timeit.repeat(lambda: hook(run=None, step=1, losses=losses), number=number, repeat=5))
    direct = min(
        timeit.repeat(lambda: step_end(run=None, step=1, losses=losses), number=number, repeat=5)
    )
    resolved = host.caller("step_end")
    fast = min(
        timeit.repeat(lambda: resolved(run=None, step=1, losses=losses), number=number, repeat=5)
    )
    check = min(timeit.repeat(lambda: host.has_impl("step_end"), number=number, repeat=5))
    print("2. hook dispatch, one implementation (best of 5 x", number, "calls)")
    print(
        f"   pluggy relay {via / number * 1e6:6.3f} us ({via / direct:4.1f}x) | host.caller() "
        f"{fast / number * 1e6:6.3f} us ({fast / direct:4.1f}x) | direct call "
        f"{direct / number * 1e6:6.3f} us | has_impl() {check / number * 1e6:6.3f} us"
    )


class _Params(Params):
    size: int = 8
    rate: float = 0.1
    mode: str = "a"


def _factory(params, ctx):
    """Build a benchmark double."""
    return params


def _bench_host() -> PluginHost:
    def hooks_for(kind_hook: str, names: list[str]):
        @hookimpl
        def register(register):
            for name in names:
                register(name, _factory, _Params)

        return {kind_hook: register}

    kinds = {
        "register_datasets": ["data", "wrap1", "wrap2", "wrap3"],
        "register_samplers": ["sampler"],
        "register_augmentations": [f"aug{i}" for i in range(10)],
        "register_backbones": ["net"],
        "register_adapters": ["head1", "head2"],
        "register_losses": ["loss"],
        "register_evaluators": ["metric1", "metric2"],
        "register_trainers": ["supervised"],
    }
    namespace = {}
    for hook, names in kinds.items():
        namespace.update(hooks_for(hook, names))
    host = PluginHost(discover=False, builtins=False, strict=False)
    host.add_plugin(types.SimpleNamespace(**namespace), "core")
    host.activate_all()
    return host


def _config() -> dict:
    comp = {"size": 16, "rate": 0.5, "mode": "b"}
    return {
        "name": "bench",
        "data": {
            "dataset": {"type": "core.data", **comp},
            "wrappers": [{"type": f"wrap{i}", **comp} for i in (1, 2, 3)],
            "sampler": {"type": "core.sampler", **comp},
            "transforms": {
                "train": [{"type": f"core.aug{i}", **comp} for i in range(5)],
                "eval": [{"type": f"core.aug{i}", **comp} for i in range(5, 8)],
            },
            "batch_transforms": [{"type": f"core.aug{i}", **comp} for i in (8, 9)],
        },
        "model": {
            "backbone": {"type": "core.net", **comp},
            "adapters": [{"type": "core.head1", **comp}, {"type": "head2", **comp}],
        },
        "loss": {"type": "core.loss", **comp},
        "evaluators": [{"type": "core.metric1", **comp}, {"type": "core.metric2", **comp}],
        "trainer": {"type": "core.supervised"},
    }


def bench_validate() -> None:
    host = _bench_host()
    data = _config()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        count = sum(1 for _ in _components(data))
        load_config(path, host=host)
        number = 50

        def baseline():
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            ExperimentConfig.model_validate(yaml.load(path.read_text(), Loader=loader))

        full = min(timeit.repeat(lambda: load_config(path, host=host), number=number, repeat=5))
        base = min(timeit.repeat(baseline, number=number, repeat=5))
    print(f"3. validate a {count}-component config (best of 5 x {number})")
    print(
        f"   load_config {full / number * 1e3:6.2f} ms | yaml + envelope only "
        f"{base / number * 1e3:6.2f} ms | overhead {(full - base) / number * 1e3:6.2f} ms"
    )


def _components(data: dict):
    for section in (data["data"], data["model"], data):
        for value in section.values():
            if isinstance(value, dict) and "type" in value:
                yield value
            elif isinstance(value, list):
                yield from (v for v in value if isinstance(v, dict) and "type" in v)
    yield from (
        v for lst in data["data"]["transforms"].values() for v in lst if isinstance(v, dict)
    )


if __name__ == "__main__":
    bench_plugins_list()
    bench_hook_dispatch()
    bench_validate()
