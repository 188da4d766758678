"""The training display: live view on a terminal, lines elsewhere, nothing when quiet, Ctrl-C.

The terminal cases drive the CLI through a pseudo-terminal (:mod:`pty`), as a user's shell would:
the child is a session leader with the pty as controlling terminal, so writing ``\\x03`` to the
master makes the line discipline send SIGINT, exactly as Ctrl-C does.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from asklepios.cli import main
from asklepios.engine.progress import RunInterrupted, RunProgress, epoch_items, wrap_items
from asklepios.plugins import PluginHost, set_host
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import REPO, make_config, only_run_dir, write_config

HIDE, SHOW = "\x1b[?25l", "\x1b[?25h"
# The CLI with the built-in plugin only (no installed plugin can add warnings to the output).
CLI = (
    "import sys\n"
    "from asklepios.plugins import PluginHost, set_host\n"
    "set_host(PluginHost(discover=False))\n"
    "from asklepios.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


# -- the pieces ------------------------------------------------------------------------------------


def test_epoch_line_always_has_the_total_loss_and_the_monitored_metric() -> None:
    val = {"loss": 0.5, "cls/accuracy": 0.8, "cls/balanced_accuracy": 0.7, "cls/ece": 0.1}
    items = epoch_items({"loss": 1.25}, val, "cls/balanced_accuracy", ["cls/accuracy"], True)
    assert items == ["loss=1.25", "val_loss=0.5", "val_balanced_accuracy=0.7*", "val_accuracy=0.8"]
    # one term equal to the total is not repeated; several terms are all shown
    assert epoch_items({"ce": 2.0, "loss": 2.0}, None, None) == ["loss=2"]
    two = epoch_items({"ce": 1.0, "center": 0.5, "loss": 1.5}, None, None)
    assert two == ["loss=1.5", "ce=1", "center=0.5"]
    # the monitored metric is shown even when it is not a headline key; nan stays readable
    items = epoch_items({"loss": float("nan")}, {"a/x": 0.25}, "a/x", [], False)
    assert items == ["loss=nan", "val_x=0.25"]


def test_wrapping_breaks_between_items_never_inside_one() -> None:
    items = [f"metric_{i}={i / 7:.4g}" for i in range(25)]
    text = wrap_items("stage epoch 3/10", items, 60)
    lines = text.split("\n")
    assert len(lines) > 3 and all(len(line) <= 60 for line in lines)
    assert lines[0].startswith("stage epoch 3/10  metric_0=")
    assert all(line.startswith("    ") for line in lines[1:])  # hanging indent
    assert text.split() == ["stage", "epoch", "3/10", *items]  # every item whole, in order
    assert "\n" not in wrap_items("head", items, None)  # not a terminal: one line
    assert wrap_items("h", ["x" * 80], 40) == "h\n    " + "x" * 80  # a long item stays whole


def _console(terminal: bool, width: int = 80) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=width, color_system=None), out


def _fake_epoch(progress: RunProgress, steps: int = 5) -> None:
    progress.stage_started("head", 1, 2, 3, steps, "body (best)", ["model.layer*"], (10, 1000))
    progress.start_epoch("head", 0, 3, steps, loss_every=2)
    for i in range(steps):
        progress.step(2.0 * (i + 1), i + 1)
    progress.start_eval("val", 2)
    progress.eval_step()
    progress.eval_step()
    progress.end_eval()
    progress.end_epoch(["loss=2", "val_balanced_accuracy=0.5*"])


def test_live_view_shows_header_bars_running_loss_and_restores_the_cursor() -> None:
    console, out = _console(terminal=True)
    with RunProgress(True, False, console) as progress:
        assert progress.mode == "live"
        progress.run_started(Path("runs/x-1"), resuming=False)
        _fake_epoch(progress)
    text = out.getvalue()
    assert "run directory runs/x-1" in text
    assert "stage 2/2: head" in text
    assert "3 epochs of 5 steps · from body (best) · frozen model.layer* · 10 of 1k" in text
    assert "head epoch 1/3" in text and "loss 2.0000" in text and "eta" in text
    assert "head validation" in text
    assert "head epoch 1/3  loss=2  val_balanced_accuracy=0.5*" in text
    assert text.rfind(SHOW) > text.rfind(HIDE) >= 0


def test_not_a_terminal_prints_lines_and_quiet_prints_nothing() -> None:
    console, out = _console(terminal=False, width=40)
    with RunProgress(True, False, console) as progress:
        assert progress.mode == "lines"
        _fake_epoch(progress)
    lines = out.getvalue().splitlines()
    assert lines == [
        "stage 2/2: head -- 3 epochs of 5 steps; from body (best); frozen model.layer*; "
        "10 of 1k parameters trained",
        "head epoch 1/3  loss=2  val_balanced_accuracy=0.5*",
    ]
    for quiet, rank0 in ((True, True), (False, False)):
        console, out = _console(terminal=True)
        with RunProgress(rank0, quiet, console) as progress:
            _fake_epoch(progress)
        assert out.getvalue() == ""


def test_ctrl_c_inside_the_view_says_where_and_how_to_resume() -> None:
    console, _ = _console(terminal=True)
    with pytest.raises(RunInterrupted) as caught, RunProgress(True, True, console) as progress:
        progress.run_started(Path("runs/x-1"), resuming=False)
        progress.stage_started("body", 0, 2, 4, 9)
        progress.start_epoch("body", 2, 4, 9)
        for i in range(5):
            progress.step(1.0, i + 1)
        raise KeyboardInterrupt
    assert caught.value.message == (
        "interrupted at body epoch 3 step 5; resume with: asklepios run --resume runs/x-1"
    )
    assert isinstance(caught.value.__cause__, KeyboardInterrupt)
    where = r"body epoch 1 step 0 \(validation batch 1/4\)"
    with pytest.raises(RunInterrupted, match=where), RunProgress(False, False) as progress:
        progress.stage_started("body", 0, 1, 1, 3)
        progress.start_epoch("body", 0, 1, 3)
        progress.start_eval("val", 4)
        progress.eval_step()
        raise KeyboardInterrupt
    start = r"^interrupted at the start, before the first stage$"
    with pytest.raises(RunInterrupted, match=start), RunProgress(False, False):
        raise KeyboardInterrupt


# -- the command line ------------------------------------------------------------------------------


def test_cli_not_a_terminal_one_line_per_epoch_and_quiet_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_host(PluginHost(discover=False))
    path = write_config(tmp_path, make_config(tmp_path))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    run_dir = only_run_dir(tmp_path)
    assert out.startswith(f"run directory {run_dir}\n")
    epochs = [line for line in out.splitlines() if line.startswith("main epoch ")]
    assert len(epochs) == 2 and all("loss=" in e and "val_balanced_accuracy=" in e for e in epochs)
    assert "\x1b[" not in out
    assert main(["run", str(path), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def _spawn(args: list[str], cwd: Path) -> tuple[int, int]:
    """Start ``python -c CLI args`` on a new 100x30 pseudo-terminal; return (pid, master fd)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        env = {**os.environ, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"}
        env.pop("COLUMNS", None)
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-c", CLI, *args], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    return pid, fd


def _read(
    pid: int, fd: int, until: Callable[[str], bool] | None = None, timeout: float = 120
) -> tuple[str, int | None]:
    """Read the terminal until ``until(text)`` holds, or to the end; return text, exit code."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until is not None and until(data.decode(errors="replace")):
            return data.decode(errors="replace"), None
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                break
            data += chunk
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"timed out; the terminal showed:\n{data.decode(errors='replace')}")
    _, status = os.waitpid(pid, 0)
    return data.decode(errors="replace"), os.waitstatus_to_exitcode(status)


@pytest.mark.slow
def test_terminal_run_shows_one_live_view(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["stages"] = [
        {"name": "body"},
        {"name": "head", "init_from": {"stage": "body"}, "freeze": ["body.*"]},
    ]
    pid, fd = _spawn(["run", str(write_config(tmp_path, config))], REPO)
    text, code = _read(pid, fd)
    assert code == 0, text
    run_dir = only_run_dir(tmp_path)
    assert f"run directory {run_dir}" in text
    assert "stage 1/2: body" in text and "stage 2/2: head" in text
    assert "from body (best) · frozen body.*" in text
    assert re.search(r"body.* epoch 1/2 .*━.* eta .*loss \d\.\d{4}", text)  # bar, ETA, loss
    assert re.search(r"head.* validation .*━", text)
    assert re.search(r"head epoch 2/2  loss=\S+ .*val_balanced_accuracy=", text)
    assert "head vs body (test): balanced_accuracy" in text
    assert text.rfind(SHOW) > text.rfind(HIDE) >= 0  # the cursor comes back


@pytest.mark.slow
def test_ctrl_c_restores_the_terminal_and_says_how_to_resume(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["train"]["epochs"] = 500
    pid, fd = _spawn(["run", str(write_config(tmp_path, config))], REPO)
    before, _ = _read(pid, fd, until=lambda text: "main epoch 3/500" in text)
    os.write(fd, b"\x03")  # Ctrl-C
    after, code = _read(pid, fd)
    text = before + after
    assert code == 130, text
    run_dir = only_run_dir(tmp_path)
    found = re.search(
        r"interrupted at main epoch (\d+) step (\d+); resume with: asklepios run --resume (\S+)",
        text,
    )
    assert found, text
    assert int(found[1]) >= 3 and 0 <= int(found[2]) <= 22 and found[3] == str(run_dir)
    assert text.rfind(SHOW) > text.rfind(HIDE) >= 0
    assert "Traceback" not in text


SLOW_CLEANUP = """
import sys, time
from asklepios import cli

@cli.app.command("sleepy")
def sleepy() -> None:
    try:
        print("working", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("cleaning up", flush=True)
        time.sleep(60)
        raise

sys.exit(cli.main(["sleepy"]))
"""


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLEANUP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "working\n"
    child.send_signal(signal.SIGINT)
    assert child.stdout.readline() == "cleaning up\n"
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=20) == 130
    assert time.monotonic() - started < 10  # not the 60 s clean-up
    _, err = child.communicate()
    assert "aborted" in err
