"""Fuzz test of the reader: seeded random truncations and byte flips of a calo-simulate ROOT
file each read, or raise a calo error naming the file; never a raw exception."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from calo.errors import CaloError
from calo.io import HitDataset, read_data


def _damaged(data: bytes, rng: np.random.Generator, i: int) -> tuple[bytes, str]:
    """Case ``i``: a truncation (even ``i``) or 1-8 flipped bytes (odd ``i``)."""
    if i % 2 == 0:
        keep = int(rng.integers(0, len(data)))
        return data[:keep], f"truncated to {keep} bytes"
    out = bytearray(data)
    where = rng.integers(0, len(data), size=int(rng.integers(1, 9)))
    for pos in where:
        out[pos] ^= int(rng.integers(1, 256))
    return bytes(out), f"bytes {where.tolist()} flipped"


def _fuzz(source: Path, folder: Path, n: int, seed: int) -> Counter:
    data = source.read_bytes()
    rng = np.random.default_rng(seed)
    outcomes: Counter = Counter()
    for i in range(n):
        damaged, what = _damaged(data, rng, i)
        path = folder / f"case{i}.root"
        path.write_bytes(damaged)
        try:
            # the training path (HitDataset) every other case, read_data otherwise
            if i % 4 < 2:
                events, _ = read_data(path)
            else:
                events = HitDataset(path, normalization="fit").data
        except CaloError as err:
            assert str(path) in str(err), (what, str(err))
            assert "\n" not in str(err), (what, str(err))
            outcomes[type(err).__name__] += 1
        except Exception as err:  # pragma: no cover - what the test is there to catch
            pytest.fail(f"case {i} ({what}): raw {type(err).__name__}: {err}")
        else:
            assert all(d.num_nodes > 0 for d in events)
            outcomes["read"] += 1
        path.unlink()
    return outcomes


@pytest.fixture(scope="module")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 calo-simulate two-shower events (about 30 kB)."""
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    path = tmp_path_factory.mktemp("fuzz") / "small.root"
    write_root(path, config=SimConfig(), n_events=20, seed=3, progress=False, write_config=False)
    return path


def test_reader_fuzz_quick(small_sim: Path, tmp_path: Path) -> None:
    """40 cases, in the default run (about 5 s of CPU)."""
    outcomes = _fuzz(small_sim, tmp_path, n=40, seed=7)
    assert sum(outcomes.values()) == 40 and outcomes["DataError"] >= 20, outcomes


@pytest.mark.slow
def test_reader_fuzz_small_simulated_file(small_sim: Path, tmp_path: Path) -> None:
    """200 cases (about 15 s of CPU, 30 s on a loaded 2-core machine)."""
    outcomes = _fuzz(small_sim, tmp_path, n=200, seed=2024)
    assert sum(outcomes.values()) == 200
    # every truncation is an error; flips of compressed data mostly are, a few read
    assert outcomes["DataError"] >= 100 and outcomes["read"] >= 1, outcomes


@pytest.mark.slow
def test_reader_fuzz_sample_file(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "data" / "sample_two_showers.root"
    outcomes = _fuzz(sample, tmp_path, n=200, seed=17)
    assert sum(outcomes.values()) == 200 and outcomes["DataError"] >= 100, outcomes
