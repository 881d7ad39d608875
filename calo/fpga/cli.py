"""Command-line tool ``calo-export``: a trained FPGA GarNet checkpoint to firmware inputs.

``calo-export CHECKPOINT --out DIR [--events N] [--data FILE.root] [--seed S] [--name NAME]``
reads a checkpoint of :func:`calo.fpga.train.save_checkpoint` and writes into ``DIR``:

``model.json``
    The fixed-point configuration (:class:`~calo.fpga.garnet.GarNetFixedConfig` and its
    resolved types), per sublayer the quantized weight arrays as hls4ml's converter makes them
    (``w_d``, ``b_d``, ``w_in``, ``b_in``, ``b_out``: type, shape, raw integers and values),
    the float32 Dense head (it is not quantized) and the feature scales.
``model.npz``
    The same arrays: ``L<l>_<name>_raw`` (int64) and ``L<l>_<name>`` (float64 values),
    the float GarNet weights ``L<l>_float_<name>`` and the head ``head_<i>_weight``/``_bias``.
``<name>.h``
    The C++ header for hls4ml's ``nnet_garnet.h`` (:func:`calo.fpga.export.write_hls_header`):
    weight arrays, ``struct config`` and a function ``<name>(x, nvtx, res)`` that calls
    ``nnet::garnet_stack`` (or ``nnet::garnet`` for one sublayer).
``test_vectors.txt`` / ``test_vectors.npz``
    Inputs for a test bench (:func:`calo.fpga.export.write_test_vectors`) and, in the npz,
    ``expected_raw``: the stack outputs of the numba reference (raw ``output_t`` integers),
    equal bit for bit to the firmware's; ``expected_outputs.txt`` holds them as hexadecimal
    doubles, one event per line (the format of the g++ harness's output).

The test events are simulated toy events (:func:`calo.fpga.events.toy_events`) unless
``--data`` names calo-simulate e/pi events. Errors print one line and exit with code 2.

Examples
--------
>>> export_main(["/nonexistent.ckpt", "--out", "x"])
2
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from calo.cli_util import ArgumentParser, run_cli
from calo.errors import ConfigError

__all__ = ["export_main", "export_model"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="calo-export",
        description="Export a trained FPGA GarNet checkpoint: quantized weights (JSON, npz), "
        "the C++ header for hls4ml's nnet_garnet.h, and test vectors.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint of calo.fpga.train.save_checkpoint")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--events", type=int, default=100, help="test-vector events (default 100)")
    p.add_argument("--data", type=Path, help="calo-simulate e/pi ROOT file for the test vectors")
    p.add_argument("--seed", type=int, default=0, help="seed of the toy test events")
    p.add_argument("--name", default="calo_garnet", help="C++ function and header name")
    return p


def _array_entry(raw: np.ndarray, t: Any) -> dict[str, Any]:
    return {
        "type": str(t),
        "shape": list(raw.shape),
        "raw": raw.astype(np.int64).ravel().tolist(),
        "values": t.to_float(raw).ravel().tolist(),
    }


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    events: int = 100,
    data: str | Path | None = None,
    seed: int = 0,
    name: str = "calo_garnet",
) -> dict[str, Any]:
    """Write the export of ``checkpoint`` into ``out`` (see the module docstring).

    Returns a summary: the files written, the number of test events and the overflows the
    reference counted on them.

    Raises
    ------
    CheckpointError
        For a missing, unreadable or foreign checkpoint.
    ConfigError
        For a bad number of events or an invalid C++ name.

    Examples
    --------
    The stack is the one of :mod:`calo.fpga.qat`'s example, so the two share the compiled
    numba kernel of the reference.

    >>> import json, tempfile, torch
    >>> from pathlib import Path
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetModel, QGarNetStack
    >>> from calo.fpga.train import save_checkpoint
    >>> _ = torch.manual_seed(0)
    >>> stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> folder = Path(tempfile.mkdtemp())
    >>> ckpt = save_checkpoint(QGarNetModel(stack), folder / "m.ckpt")
    >>> summary = export_model(ckpt, folder / "export", events=4)
    >>> summary["files"], summary["events"], summary["overflows"]
    (['model.json', 'model.npz', 'calo_garnet.h', 'test_vectors.txt', 'test_vectors.npz', 'expected_outputs.txt'], 4, {})
    >>> doc = json.loads((folder / "export" / "model.json").read_text())
    >>> doc["config"]["n_vertices"], doc["types"]["output_t"], len(doc["sublayers"])
    (16, 'ap_fixed<16,6>', 3)
    """
    from calo.fpga.events import toy_events
    from calo.fpga.export import write_hls_header, write_test_vectors
    from calo.fpga.reference import FixedGarNet
    from calo.fpga.train import load_checkpoint

    if events < 1:
        raise ConfigError(f"--events must be at least 1, got {events}")
    if not name.isidentifier():
        raise ConfigError(f"--name must be a C++ identifier, got {name!r}")
    model, meta = load_checkpoint(checkpoint)
    stack = model.stack
    cfg = stack.config
    qsubs = stack.quantized_sublayers()
    reference = FixedGarNet(qsubs, cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # ---- weights and types: JSON and npz
    npz: dict[str, np.ndarray] = {}
    subl = []
    for li, (q, fw) in enumerate(zip(qsubs, stack.garnet_weights(), strict=True)):
        arrays = {}
        for key in ("w_d", "b_d", "w_in", "b_in", "b_out"):
            raw = getattr(q, key)
            arrays[key] = _array_entry(raw, q.types[key])
            npz[f"L{li}_{key}_raw"] = raw
            npz[f"L{li}_{key}"] = q.values(key)
        for key in ("flr_kernel", "flr_bias", "s_kernel", "s_bias", "fout_kernel", "fout_bias"):
            npz[f"L{li}_float_{key}"] = getattr(fw, key)
        subl.append(
            {
                "n_in": q.n_in,
                "n_aggregators": q.n_aggregators,
                "n_propagate": q.n_propagate,
                "n_out": q.n_out,
                "arrays": arrays,
            }
        )
    head = []
    linears = [m for m in model.head if hasattr(m, "weight")]
    linears += [model.regression, model.classification]
    names = [f"dense_{i}" for i in range(len(model.head_dims))] + ["regression", "classification"]
    for i, (lin, nm) in enumerate(zip(linears, names, strict=True)):
        w = lin.weight.detach().cpu().numpy().astype(np.float32)
        b = lin.bias.detach().cpu().numpy().astype(np.float32)
        npz[f"head_{i}_weight"], npz[f"head_{i}_bias"] = w, b
        act = (
            "relu"
            if i < len(model.head_dims)
            else ("sigmoid" if nm == "classification" else "linear")
        )
        head.append({"name": nm, "activation": act, "weight": w.tolist(), "bias": b.tolist()})
    doc = {
        "format": "calo-fpga-export",
        "version": 1,
        "checkpoint": str(checkpoint),
        "config": asdict(cfg),
        "types": {k: str(v) for k, v in stack.types.items()},
        "ternary": stack.ternary,
        "sublayers": subl,
        "head": {
            "dtype": "float32",
            "note": "the Dense head is not quantized; inputs are the stack's output_t values",
            "layers": head,
        },
        "energy_scale": model.energy_scale,
        "features": asdict(meta["features"]),
        "metadata": meta["metadata"],
    }
    (out / "model.json").write_text(json.dumps(doc, indent=1))
    np.savez(out / "model.npz", **npz)

    # ---- header
    header = write_hls_header(reference, None, out / f"{name}.h", name=name)

    # ---- test vectors
    V = cfg.n_vertices
    if data is not None:
        from calo.fpga.data import load_e_pi

        sample = load_e_pi(data, v_max=V, max_events=events, features=meta["features"])
        X, n = sample.X.double().numpy(), sample.n.numpy()
    else:
        X, n = toy_events(np.random.default_rng(seed), events, V, min(16, V), V)
    X_raw = reference.quantize_inputs(X)
    expected, report = reference.run_raw(X_raw, n)
    vec = write_test_vectors(out / "test_vectors.txt", reference, X_raw, n, expected)
    t_out = stack.types["output_t"]
    vals = t_out.to_float(expected)
    with (out / "expected_outputs.txt").open("w") as fh:
        for row in vals.reshape(vals.shape[0], -1):
            fh.write(" ".join(float(v).hex() for v in row) + "\n")
    files = ["model.json", "model.npz", header.name, vec.name, "test_vectors.npz"]
    files.append("expected_outputs.txt")
    return {
        "out": str(out),
        "files": files,
        "events": len(n),
        "overflows": report.as_dict(),
    }


@run_cli
def export_main(argv: list[str] | None = None) -> int:
    """Entry point of ``calo-export``; returns the exit code.

    Examples
    --------
    >>> export_main(["model.ckpt"])  # --out is required
    2
    """
    args = _parser().parse(argv)
    res = export_model(args.checkpoint, args.out, args.events, args.data, args.seed, args.name)
    over = res["overflows"]
    print(
        f"wrote {', '.join(res['files'])} to {res['out']} ({res['events']} test events; "
        + (f"overflows on them: {over})" if over else "no overflow on them)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(export_main())
