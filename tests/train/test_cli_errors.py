"""Every failure of calo-train, calo-evaluate, calo-export and calo-simulate on a bad command
line, checkpoint or run-folder configuration is one line naming what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainhelp import TINY_GRAVNET, one_line_error

from calo.config import apply_overrides, save_yaml
from calo.fpga.cli import export_main
from calo.sim.cli import main as simulate_main
from calo.train.cli import evaluate_main, train_main

TINY = [
    *TINY_GRAVNET,
]


def test_options_anywhere_among_the_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    # parsed: the error is the configuration's (the unknown key), not argparse's
    rc = train_main(["trainer.max_epochs=4", "--no-plots", "trainer.progress_bar=false",
                     "--model", "garnet", "model.nonsense=1"])  # fmt: skip
    err = one_line_error(capsys, rc, "model.nonsense")
    assert "unrecognized" not in err
    one_line_error(capsys, train_main(["--no-such-option"]), "calo-train", "--no-such-option")
    one_line_error(capsys, simulate_main(["--events", "x"]), "calo-simulate", "--events")
    rc = simulate_main(["gun.n_particles=1", "--out", "x.root", "--events", "2", "gun.nope=1"])
    one_line_error(capsys, rc, "gun.nope")
    one_line_error(capsys, export_main(["a.ckpt", "--events", "3"]), "calo-export", "--out")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_requested_without_a_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], small_root: Path
) -> None:
    args = ["--out", str(tmp_path / "r"), *TINY, f"data.files=[{small_root}]"]
    one_line_error(capsys, train_main(["--accelerator", "gpu", *args]),
                    "trainer.accelerator=gpu", "no CUDA GPU", "--accelerator cpu")  # fmt: skip
    one_line_error(capsys, train_main([*args, "trainer.precision=bf17"]), "Lightning refuses",
                    "bf17")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("optimiser:\n  lr: 0.1\n", ["unknown configuration key", "optimiser"]),
        ("optim:\n  lr: fast\n", ["optim.lr", "fast"]),
        ("optim: [1, 2\n", ["not valid YAML", "line 2"]),
        ("optim:\n  lr: \xe9\n", ["not UTF-8"]),
    ],
)
def test_run_folder_configuration_checked_by_every_command(
    run_folder: Path, capsys: pytest.CaptureFixture[str], text: str, words: list[str]
) -> None:
    config = run_folder / "config.yaml"
    config.write_bytes(text.encode("latin-1"))
    for main, argv in (
        (evaluate_main, [str(run_folder), "--no-plots"]),
        (evaluate_main, [str(run_folder / "checkpoints" / "last.ckpt"), "--no-plots"]),
        (train_main, ["--out", str(run_folder), "--resume"]),
        (train_main, ["--config", str(config)]),
    ):
        one_line_error(capsys, main(argv), *words, str(config))


def test_run_folder_configuration_that_differs_is_reported(
    run_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from calo.train.evaluate import load_model
    from calo.train.run import _check_run_config

    _, cfg, _, _ = load_model(run_folder / "checkpoints" / "last.ckpt")
    _check_run_config(run_folder / "config.yaml", cfg)
    assert capsys.readouterr().out == ""
    save_yaml(apply_overrides(cfg, ["optim.lr=0.5"]), run_folder / "config.yaml")
    _check_run_config(run_folder / "config.yaml", cfg)
    assert "differs from the checkpoint's configuration in optim.lr" in capsys.readouterr().out


def _bad_checkpoints(folder: Path, good: Path) -> dict[str, tuple[Path, list[str]]]:
    data = good.read_bytes()

    class Command:
        def __reduce__(self) -> tuple:
            return (print, ("this runs on load",))

    cases: dict[str, tuple[Path, list[str]]] = {}

    def case(name: str, content: bytes | None, *words: str, obj: object = None) -> None:
        path = folder / f"{name}.ckpt"
        if content is None:
            torch.save(obj, path)
        else:
            path.write_bytes(content)
        cases[name] = (path, list(words))

    case("empty", b"", "empty (0 bytes)")
    case("truncated", data[: len(data) // 2], "truncated")
    case("foreign_root", Path("data/sample_two_showers.root").read_bytes()[:4096], "ROOT file")
    case("foreign_text", b"model:\n  name: gravnet\n", "not a PyTorch checkpoint")
    case("code", None, "holds code that calo will not run", obj={"x": Command()})
    case("object", None, "holds code that calo will not run", "PosixPath", obj={"p": Path("x")})
    return cases


def test_checkpoint_failures_are_one_line_naming_the_file(
    run_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = run_folder / "checkpoints" / "last.ckpt"
    for name, (path, words) in _bad_checkpoints(tmp_path, good).items():
        for main, argv in (
            (evaluate_main, [str(path)]),
            (export_main, [str(path), "--out", str(tmp_path / "x")]),
        ):
            err = one_line_error(capsys, main(argv), *words, str(path))
            assert "weights_only" not in err and "Re-running" not in err, name
    assert not (tmp_path / "x").exists()
    capsys.readouterr()
    # a calo checkpoint whose weights are not the configured model's: the keys are named
    ckpt = torch.load(good, weights_only=True)
    state = ckpt["state_dict"]
    state["model.extra.weight"] = torch.zeros(2)
    names = [k for k in state if k.startswith("model.head")]
    for k in names[:2]:
        state[k.replace("model.head", "model.tail")] = state.pop(k)
    first = names[0].removeprefix("model.")
    ckpt["calo"]["config"]["model"]["gravnet"]["out_channels"] = 24
    wrong = tmp_path / "wrong.ckpt"
    torch.save(ckpt, wrong)
    one_line_error(capsys, evaluate_main([str(wrong)]), "weights do not fit the gravnet model",
                    "2 missing (", first, "3 unexpected (", "extra.weight",
                    "of another shape (", "in the file", str(wrong))  # fmt: skip


def test_corrupted_checkpoints_never_escape_as_tracebacks(
    run_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seeded truncations and byte flips of a good checkpoint: each loads or is one line."""
    import numpy as np

    from calo.errors import CaloError
    from calo.train.evaluate import load_model

    good = (run_folder / "checkpoints" / "last.ckpt").read_bytes()
    rng = np.random.default_rng(17)
    outcomes = {"loaded": 0, "error": 0}
    for i in range(40):
        data = bytearray(good)
        if i % 2:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
                data[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"c{i}.ckpt"
        path.write_bytes(bytes(data))
        try:
            load_model(path)
            outcomes["loaded"] += 1
        except CaloError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            outcomes["error"] += 1
    assert outcomes["error"] >= 20  # every truncation at least
