"""The condensation task: truth per hit, the module's loss step, the run and its evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from trainhelp import TINY_GRAVNET

from calo.config import apply_overrides, to_dict
from calo.errors import ConfigError, DataError
from calo.train.condensation import condensation_loss, energy_correction_loss, sharing_loss
from calo.train.condensation_task import (
    CondensationModule,
    format_condensation,
    hit_particles,
    hit_targets,
    sharing_truth,
)
from calo.train.config import TrainConfig
from calo.train.data import CONDENSATION_OVERRIDES

SMALL = [*CONDENSATION_OVERRIDES, "gun.max_particles=5"]


@pytest.fixture(scope="module")
def multi_events(tmp_path_factory: pytest.TempPathFactory) -> list[Data]:
    """16 simulated events of 1 to 5 particles, read with the hit_truth index."""
    from calo.io import HitDataset
    from calo.io.schema import Schema
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    path = tmp_path_factory.mktemp("multi") / "m.root"
    cfg = apply_overrides(SimConfig(), SMALL)
    write_root(path, cfg, n_events=16, seed=3, progress=False, write_config=False)
    schema = Schema.calo(truth_index="hit_truth")
    return HitDataset([str(path)], schema=schema, normalization="fit").data


def test_hit_particles_from_index_or_fractions(multi_events: list[Data]) -> None:
    d = multi_events[0]
    from_index = hit_particles(d)
    stripped = Data(y=d.y, noise=d.noise)
    np.testing.assert_array_equal(hit_particles(stripped).numpy(), from_index.numpy())
    assert bool(((from_index == -1) == d.noise).all())
    y = torch.tensor([[0.0, 0.0], [0.3, 0.7], [0.6, 0.4]])
    assert hit_particles(Data(y=y)).tolist() == [-1, 1, 0]


def test_hit_targets_true_deposited_and_position() -> None:
    d = Data(
        y=torch.zeros(3, 2),
        particle_energy=torch.tensor([[10.0, 0.0]]),
        particle_deposited=torch.tensor([[9.0, 4.0]]),
        particle_xy=torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]),
    )
    particle = torch.tensor([0, 1, -1])
    e, xy = hit_targets(d, particle)
    assert e.tolist() == [10.0, 4.0, 0.0]  # no true energy for particle 1: its deposit
    assert xy.tolist() == [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]
    assert hit_targets(d, particle, "deposited")[0].tolist() == [9.0, 4.0, 0.0]


def _module(*extra: str) -> CondensationModule:
    cfg = apply_overrides(TrainConfig(), ["task=condensation", *TINY_GRAVNET, *extra])
    torch.manual_seed(0)
    return CondensationModule(to_dict(cfg))


def test_loss_step_matches_the_loss_functions_and_learns(multi_events: list[Data]) -> None:
    module = _module()
    batch = next(iter(DataLoader(multi_events, batch_size=8)))
    terms = module.terms(batch)
    assert set(terms) == {"attractive", "repulsive", "beta", "noise", "payload", "total"}
    # the same numbers from the loss functions called directly
    module.eval()
    out = module.model(batch)
    particle = batch.hit_particle.long()
    assert int(particle.min()) == -1 and int(particle.max()) <= 4
    true_e = torch.where(
        particle >= 0, batch.particle_energy[batch.batch, particle.clamp(min=0)], 0.0
    )
    payload = energy_correction_loss(out.correction, batch.energy, particle, true_e, batch.batch)
    ref = condensation_loss(
        out.beta, out.coords, particle, batch.batch, q_min=0.1, payload=payload, num_events=8
    )
    got = module.terms(batch)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k])
    # 30 Adam steps on the batch lower the total loss by more than a third
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    first = float(module.loss(batch, train=True)[0])
    for _ in range(30):
        opt.zero_grad()
        loss, n = module.loss(batch, train=True)
        loss.backward()
        opt.step()
    assert n == 8
    assert float(loss) < 0.67 * first, (first, float(loss))


def test_position_payload_adds_to_the_payload(multi_events: list[Data]) -> None:
    base = _module("model.condensation.position=true")
    pos = _module("model.condensation.position=true", "condensation.position_weight=1")
    batch = next(iter(DataLoader(multi_events, batch_size=4)))
    base.eval()
    pos.eval()
    assert float(pos.terms(batch)["payload"]) > float(base.terms(batch)["payload"])


def test_sharing_term_matches_the_loss_functions(multi_events: list[Data]) -> None:
    module = _module("condensation.sharing_weight=0.5", "condensation.clustering.share_sigma=0.4")
    module.eval()
    batch = next(iter(DataLoader(multi_events, batch_size=8)))
    # the truth_index branch names the particles: sharing refuses it (ids need not be columns)
    with pytest.raises(DataError, match="truth_index"):
        module.terms(batch)
    del batch.hit_particle  # the particles from the fraction columns, as without truth_index
    terms = module.terms(batch)
    assert set(terms) == {"attractive", "repulsive", "beta", "noise", "payload", "sharing", "total"}
    out = module.model(batch)
    particle = hit_particles(batch)
    true_e, _ = hit_targets(batch, particle)
    y = sharing_truth(batch)
    assert y.shape[1] == 5 and float((y > 0).sum(dim=1).max()) >= 2  # some hits are shared
    payload = energy_correction_loss(
        out.correction, batch.energy, particle, true_e, batch.batch, fractions=y
    )
    ref = condensation_loss(
        out.beta, out.coords, particle, batch.batch, q_min=0.1, payload=payload, num_events=8
    )
    share = sharing_loss(out.beta, out.coords, particle, y, batch.energy, batch.batch, sigma=0.4)
    torch.testing.assert_close(terms["sharing"], share)
    torch.testing.assert_close(terms["payload"], ref["payload"])
    torch.testing.assert_close(terms["total"], ref["total"] + 0.5 * share)
    assert float(share) > 0
    assert "val_sharing" in module.history


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["condensation.sharing_weight=1"], "share_sigma > 0"),
        (["condensation.sharing_weight=-1"], "sharing_weight"),
        (["condensation.clustering.share_sigma=-1"], "share_sigma"),
        (["condensation.position_weight=1"], "model.condensation.position=true"),
        (["condensation.q_min=0"], "q_min"),
        (["condensation.clue_space=xz"], "clue_space"),
        (["model.condensation.coord_dims=0"], "coord_dims"),
        (["condensation.tune_events=-1"], "tune_events"),
    ],
)
def test_config_errors(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(TrainConfig(), ["task=condensation", *overrides])


def test_table() -> None:
    row = {"n_particles": 4, "n_clusters": 5, "efficiency": 0.75, "fake_rate": 0.4,
           "merge_rate": 0.25, "split_rate": 0.0, "response": {"mean": 0.98, "rms": 0.12}}  # fmt: skip
    lines = format_condensation({"model": row, "clue": row}).splitlines()
    assert len(lines) == 3 and lines[1].split()[:4] == ["model", "4", "5", "0.750"]


def _random_efficiency(result: dict, seed: int = 0) -> float:
    """Efficiency of random labels with the model's number of clusters in every event."""
    from calo.reco.matching import match_clusters, matching_summary

    rng = np.random.default_rng(seed)
    lab, batch = result["labels"]["model"], result["batch"]
    rand = np.full(lab.shape, -1)
    for ev in np.unique(batch):
        sel = batch == ev
        n = int(lab[sel].max()) + 1
        if n > 0:
            rand[sel] = rng.integers(0, n, int(sel.sum()))
    m = match_clusters(rand, result["particle"], result["energy"], batch)
    return float(matching_summary(m)["efficiency"])


@pytest.mark.slow
def test_train_and_evaluate_condensation_beats_random(tmp_path: Path, capsys) -> None:
    from calo.train.cli import evaluate_main, train_main
    from calo.train.condensation_task import evaluate_condensation
    from calo.train.data import CaloDataModule
    from calo.train.evaluate import load_model

    run = tmp_path / "run"
    args = [
        "--task", "condensation", "--out", str(run), "--no-plots",
        f"data.cache_dir={tmp_path / 'cache'}", "data.n_events=400", "trainer.max_epochs=4",
        "trainer.progress_bar=false", "model.gravnet.n_blocks=2", "model.gravnet.k=16",
        "condensation.tune_events=100",
    ]  # fmt: skip
    assert train_main(args) == 0
    table = capsys.readouterr().out
    assert "model" in table and "clue" in table and "efficiency" in table
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "condensation" and set(metrics["methods"]) == {"model", "clue"}
    model_eff = metrics["methods"]["model"]["efficiency"]
    # CLUE and the thresholds were tuned on training events and the run's config holds them
    tuning = metrics["tuning"]
    assert tuning["events"] == 100 and len(tuning["clue"]["grid"]) == 6 * 8 * 4
    assert metrics["settings"]["clue"]["dc"] == tuning["clue"]["best"]["dc"]
    assert metrics["settings"]["clustering"]["t_d"] == tuning["clustering"]["best"]["t_d"]
    best = max(tuning["clue"]["grid"], key=lambda r: r["objective"])
    assert best["objective"] >= tuning["clue"]["grid"][0]["objective"]
    for key in ("efficiency", "fake_rate", "merge_rate", "split_rate", "response"):
        assert key in metrics["methods"]["clue"]
    # the same validation events, clustered again, against random labels
    model, cfg, norm, _ = load_model(run)
    dm = CaloDataModule(cfg.data, norm, task="condensation")
    dm.setup()
    result = evaluate_condensation(model, dm.val_set.data, cfg.condensation)
    assert result["methods"]["model"]["efficiency"] == pytest.approx(model_eff)
    random_eff = _random_efficiency(result)
    print(f"efficiency model {model_eff:.3f}, random {random_eff:.3f}")
    assert model_eff > random_eff + 0.25  # measured 0.573 against 0.080
    # calo-evaluate on the run's validation events gives the same numbers
    assert evaluate_main([str(run), "--no-plots"]) == 0
    again = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert again["methods"]["model"]["efficiency"] == pytest.approx(model_eff)
    # and on new files (the run's schema, its normalisation), with the cluster displays
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    other = tmp_path / "other.root"
    write_root(other, apply_overrides(SimConfig(), list(CONDENSATION_OVERRIDES)), n_events=20,
               seed=99, progress=False, write_config=False)  # fmt: skip
    assert evaluate_main([str(run), "--data", str(other), "--out", str(tmp_path / "ev")]) == 0
    new = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert new["data"]["files"] == [str(other)] and new["methods"]["clue"]["n_particles"] > 20
    assert new["methods"]["model"]["efficiency"] > 0.0
    assert (tmp_path / "ev" / "plots" / "clusters_event0.png").is_file()


def test_events_without_clusters_count_their_particles_as_unfound() -> None:
    from calo.reco.matching import match_clusters, matching_summary

    rng = np.random.default_rng(0)
    particle = rng.integers(-1, 3, 60)
    batch = np.repeat(np.arange(3), 20)
    energy = rng.uniform(0.1, 1.0, 60)
    labels = np.where(rng.random(60) < 0.8, particle, -1)
    b = match_clusters(labels, particle, energy, batch)
    # event 1 without any cluster: its 3 particles are unfound, the others unchanged
    labels[batch == 1] = -1
    m = match_clusters(labels, particle, energy, batch)
    assert m.n_true.tolist() == [3, 3, 3] and m.n_pred.tolist() == [b.n_pred[0], 0, b.n_pred[2]]
    assert m.particle_event.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert m.particle_match[3:6].tolist() == [-1, -1, -1]
    assert m.particle_iou[3:6].tolist() == [0.0, 0.0, 0.0]
    kept = b.particle_event != 1
    np.testing.assert_array_equal(m.particle_iou[kept], b.particle_iou[kept])
    s = matching_summary(m)
    assert s["efficiency"] == pytest.approx(int((b.particle_match[kept] >= 0).sum()) / 9)


def test_tune_parameters_finds_the_separating_dc_and_rejects_unknown_sections() -> None:
    from calo.train.condensation_task import tune_parameters

    # two particles 5 cm apart, each two hits 0.3 cm apart: only a small dc separates them
    pos = np.array([[0, 0, 0], [0.3, 0, 0], [5, 0, 0], [5.3, 0, 0]], float)
    out = {"pos": pos, "energy": np.ones(4), "true_e": np.full(4, 2.0),
           "particle": np.array([0, 0, 1, 1]), "batch": np.zeros(4, int)}  # fmt: skip
    cfg = TrainConfig(task="condensation").condensation
    best, rows = tune_parameters(out, cfg, "clue", {"dc": (10.0, 0.5), "rho_c": (0.5,)})
    assert best == {"dc": 0.5, "rho_c": 0.5}
    assert [r["efficiency"] for r in rows] == [0.0, 1.0]
    assert rows[1]["objective"] == 1.0
    with pytest.raises(ValueError, match="section"):
        tune_parameters(out, cfg, "matching")
