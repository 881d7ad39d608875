"""Fixtures for the fpga tests: hls4ml's C++ headers and a cached g++ compiler."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from calo.fpga.harness import hls4ml_include_dirs


@pytest.fixture(scope="session")
def gxx() -> str:
    """Path of g++, or skip with the reason."""
    exe = shutil.which("g++")
    if exe is None:
        pytest.skip("g++ is not installed: the bit-exact comparisons with ap_fixed need it")
    return exe


@pytest.fixture(scope="session")
def hls_includes() -> list[Path]:
    """The wheel's templates/vivado and templates/vivado/ap_types include folders.

    hls4ml is part of the ``test`` extra, so a missing wheel fails the comparisons (with what
    to install) instead of skipping them: the bit-exact proof against ``nnet_garnet.h`` is the
    point of these tests. Only a missing g++ skips them.
    """
    try:
        return hls4ml_include_dirs()
    except Exception as err:  # hls4ml missing or without its headers
        pytest.fail(f"hls4ml's headers are needed (pip install -e '.[test]'): {err}")


@pytest.fixture(scope="session")
def compile_cpp(gxx, hls_includes, tmp_path_factory):
    """Compile a C++ source (cached per session by content) and return the binary path."""
    root = tmp_path_factory.mktemp("cpp")
    cache: dict[str, Path] = {}

    def build(source: str, opt: str = "-O1", extra_includes: tuple[Path, ...] = ()) -> Path:
        key = hashlib.sha1((source + opt + str(extra_includes)).encode()).hexdigest()[:16]
        if key in cache:
            return cache[key]
        src = root / f"{key}.cpp"
        exe = root / key
        src.write_text(source)
        cmd = [gxx, opt, "-std=c++11", "-w"]
        for d in (*hls_includes, *extra_includes):
            cmd.append(f"-I{d}")
        cmd += [str(src), "-o", str(exe)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"g++ failed:\n{res.stderr[-4000:]}")
        cache[key] = exe
        return exe

    return build
