"""Benchmark the host: CLI commands, hook dispatch and config validation. Prints; asserts nothing.

1. The edit-validate loop (issue 14): whole-process wall time of ``asklepios plugins list``,
   ``validate examples/configs/quickstart.yaml``, ``components``, ``components loss``,
   ``plugins show longtail``, ``schema`` and ``validate --deep`` next to ``python -c pass`` and
   ``python -c "import torch"``, run round-robin (one of each per round) so that a busy machine
   slows all of them alike; medians over the rounds, CPU time beside them, and whether each
   fast command imported torch. Bytecode is cached (in a temporary ``PYTHONPYCACHEPREFIX``, even
   where ``PYTHONDONTWRITEBYTECODE`` is set), as on a user's machine, where torch's own modules
   are byte-compiled at install time.
2. ``asklepios plugins list`` with 500 extra fake distributions on the path (50 of them
   asklepios plugins).
3. One ``host.hook.step_end(...)`` call through pluggy (one implementation) and through the
   resolved ``host.caller("step_end")`` next to calling the implementation directly.
4. ``load_config`` of a 20-component config (components of in-memory plugins, already activated)
   next to the baseline of reading the YAML and validating the envelope only.

Targets: plugins list <= 0.3 s; validate (quickstart) <= 1.0 s importing no torch; components
and plugins show <= 1.0 s; schema <= 1.5 s; validation overhead <= 50 ms; one hook call <= 2 us.
Run: ``python bench/bench_host.py`` (``make bench``); ``--rounds N`` (default 7).
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "examples" / "configs" / "quickstart.yaml")
REPEATS = 7
SCRIPT = str(Path(sys.executable).parent / "asklepios")

# (label, command, target seconds or None, whether it must not import torch)
COMMANDS: list[tuple[str, list[str], float | None, bool]] = [
    ("python -c pass", [sys.executable, "-c", "pass"], None, True),
    ('python -c "import torch"', [sys.executable, "-c", "import torch"], None, False),
    ("asklepios plugins list", [SCRIPT, "plugins", "list"], 0.3, True),
    ("asklepios validate quickstart", [SCRIPT, "validate", QUICKSTART], 1.0, True),
    ("asklepios components", [SCRIPT, "components"], 1.0, True),
    ("asklepios components loss", [SCRIPT, "components", "loss"], 1.0, True),
    ("asklepios plugins show longtail", [SCRIPT, "plugins", "show", "longtail"], 1.0, True),
    ("asklepios schema", [SCRIPT, "schema"], 1.5, True),
    (
        "asklepios validate --deep quickstart",
        [SCRIPT, "validate", "--deep", QUICKSTART],
        None,
        False,
    ),
]

IMPORTS = """
import sys
from asklepios.cli import main
code = main(sys.argv[1:])
heavy = ("torch", "timm", "open_clip", "diffusers")
print("HEAVY=" + ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
"""


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Return the wall time and CPU time (user + sys) of running ``cmd`` once."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _wall(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Return the median wall time and median CPU time of ``REPEATS`` runs of ``cmd``."""
    runs = [_timed(cmd, env) for _ in range(REPEATS)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _heavy_imports(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS, *args], env=env, capture_output=True, text=True, check=True
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("HEAVY=")][-1]
    return line.partition("=")[2] or "none"


def bench_commands(pycache: str) -> None:
    env = {**os.environ, "PYTHONPYCACHEPREFIX": pycache}
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    walls: dict[str, list[float]] = {label: [] for label, *_ in COMMANDS}
    cpus: dict[str, list[float]] = {label: [] for label, *_ in COMMANDS}
    for _label, cmd, *_ in COMMANDS:  # warm the file cache once
        _timed(cmd, env)
    for _ in range(REPEATS):
        for label, cmd, *_ in COMMANDS:
            wall, cpu = _timed(cmd, env)
            walls[label].append(wall)
            cpus[label].append(cpu)
    torch_wall = statistics.median(walls['python -c "import torch"'])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"1. CLI commands, whole process (median of {REPEATS} round-robin rounds; "
        f"{os.cpu_count()} CPUs, load average {load})"
    )
    print(f"   {'command':<38} {'wall s':>7} {'cpu s':>6} {'/ torch':>8} {'target':>7}  torch?")
    for label, cmd, target, light in COMMANDS:
        wall = statistics.median(walls[label])
        cpu = statistics.median(cpus[label])
        verdict = "" if target is None else ("ok" if wall <= target else "OVER")
        shown_target = f"<={target:.1f}" if target is not None else "-"
        heavy = _heavy_imports(cmd[1:], env) if cmd[0] == SCRIPT and light else "-"
        print(
            f"   {label:<38} {wall:7.3f} {cpu:6.3f} {wall / torch_wall:7.2f}x "
            f"{shown_target:>7} {verdict:>4}  {heavy}"
        )


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
    base_env = {**os.environ}
    base_env.pop("PYTHONPATH", None)
    print("2. `asklepios plugins list` with 500 extra distributions (median of", REPEATS, "runs)")
    with tempfile.TemporaryDirectory() as tmp:
        _fake_site(Path(tmp))
        env = {**base_env, "PYTHONPATH": tmp}
        baseline, baseline_cpu = _wall([sys.executable, "-c", "pass"], env)
        listing, listing_cpu = _wall([SCRIPT, "plugins", "list"], env)
        print(
            f"   wall: python -c pass {baseline * 1e3:6.1f} ms, plugins list "
            f"{listing * 1e3:6.1f} ms ({listing / baseline:4.1f}x) | cpu: "
            f"{baseline_cpu * 1e3:6.1f} ms vs {listing_cpu * 1e3:6.1f} ms | imported: "
            f"{_heavy_imports(['plugins', 'list'], env)}"
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
    print("3. hook dispatch, one implementation (best of 5 x", number, "calls)")
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
    plugin = types.ModuleType("bench_core")  # pluggy hashes plugin objects
    for name, hook in namespace.items():
        setattr(plugin, name, hook)
    host = PluginHost(discover=False, builtins=False, strict=False)
    host.add_plugin(plugin, "core")
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
    print(f"4. validate a {count}-component config (best of 5 x {number})")
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
    if "--rounds" in sys.argv:
        REPEATS = int(sys.argv[sys.argv.index("--rounds") + 1])
    with tempfile.TemporaryDirectory() as pycache:
        bench_commands(pycache)
    bench_plugins_list()
    bench_hook_dispatch()
    bench_validate()
