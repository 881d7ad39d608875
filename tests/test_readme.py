"""The README's examples run as written: its Python blocks, and the commands it names exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    blocks = _blocks("python")
    assert len(blocks) >= 2, "README lost its Python examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    # the quick start: 200 simulated events read back without a skip, and a drawn event
    assert "read 200 events" in out and "skipped 0" in out
    assert (tmp_path / "event_display.png").stat().st_size > 10_000
    # the schema example: one-hot truth from the particle index, noise hit all zeros
    events = namespace["events"]
    assert events[0].y.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    # the FPGA example: the numba reference and hls4ml's compiled project, bit for bit
    assert "bit for bit: True" in out and "hls4ml predict() bit for bit: True" in out


def test_every_calo_command_in_the_readme_is_installed_and_answers_help(capsys) -> None:
    from calo.__main__ import COMMANDS, main

    named = set(re.findall(r"\bcalo-([a-z]+)\b", README.read_text()))
    assert {"train", "simulate", "evaluate", "export"} <= named
    for command in sorted(named):
        assert command in COMMANDS, f"calo-{command} is named in README.md but not a command"
        assert shutil.which(f"calo-{command}"), f"calo-{command} is not installed"
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert f"calo-{command}" in capsys.readouterr().out


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    commands = [b.strip() for b in _blocks("bash") if "pytest" in b]
    assert commands, "README has no test command"
    assert commands[0] in ci


@pytest.mark.parametrize(
    ("command", "config"),
    [("train", "calo.train.config:TrainConfig"), ("simulate", "calo.sim.config:SimConfig")],
)
def test_help_lists_every_configuration_field(command: str, config: str, capsys) -> None:
    import dataclasses
    import importlib

    from calo.__main__ import main

    module, name = config.split(":")
    cfg = getattr(importlib.import_module(module), name)()

    def leaves(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                yield from leaves(value, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}", value

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    keys = list(leaves(cfg))
    assert len(keys) > 20
    for key, value in keys:
        shown = f"[{', '.join(map(str, value))}]" if isinstance(value, list | tuple) else value
        assert f"  {key} = {shown}  (" in out, f"calo-{command} --help does not list {key}"
