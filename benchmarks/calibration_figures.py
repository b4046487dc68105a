r"""Figures of a calibration study: each model's ID curves above its supervised sweep curves.

    python -m benchmarks.calibration_figures benchmarks/results/calibration-study.json \\
        --out benchmarks/results/figures

One PNG per model (`calibration-<model>.png`). Top: the intrinsic-dimension
curves (each divided by its largest value, so curves of different scale share
an axis) of the shipped probes (`default`, `kv-paper`, `mean-residual`) and of
another variant if one is given, on all bundled texts; bottom: the mean score over the five tasks of `va`, `wva` and
`aligned-wva` at every window of the sweep (drawn at the window's centre), the
fallback window's scores dashed, and the windows the shipped probes and the
variant choose for `va` shaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.calibration_report import READOUT_PRESETS, SHIPPED
from vaembed.cache import atomic_file

__all__ = ["curve_key", "plot_model"]

_VA_PROMPT = "none"
_COLOURS = {"methods": "tab:gray", "kv-paper": "tab:purple", "mean-residual": "tab:green", "variant": "tab:red"}


def curve_key(label: str) -> str:
    """The study's stored curve (`record["models"][m]["curves"]`) a variant label reads, as `va` uses it."""
    representation, prompt, tokens, _texts, _rule = label.split("/")
    name = "readout:va" if representation == "readout" else representation
    return f"{name}/{_VA_PROMPT if prompt == 'preset' else prompt}/{tokens.removesuffix('t')}"


def _window_centre(window: str) -> float:
    layers = [int(part) for part in window.split("-")]
    return (layers[0] + layers[-1]) / 2.0


def _runs(layers: list[int]) -> list[tuple[int, int]]:
    """Sorted layers grouped into runs of consecutive layers `(first, last)` (a window may be split)."""
    runs: list[tuple[int, int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], layer)
        else:
            runs.append((layer, layer))
    return runs


def plot_model(name: str, model: dict[str, Any], variant: str, path: Path) -> Path:
    """Draw one model's ID curves and sweep curves (see the module docstring) and write a PNG at `path`.

    Raises:
        ImportError: matplotlib is not installed.
        KeyError: `variant` was not studied on this model.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    probes = {"methods": SHIPPED["methods"], "kv-paper": SHIPPED["kv-paper"], "mean-residual": SHIPPED["mean-residual"]}
    if variant != SHIPPED["mean-residual"]:
        probes["variant"] = variant
    figure = Figure(figsize=(8.0, 7.0), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    for role, label in probes.items():
        curve = np.asarray(model["curves"][curve_key(label)], dtype=np.float64)
        top.plot(np.arange(curve.size), curve / curve.max(), marker="o", markersize=3, color=_COLOURS[role],
                 label=f"{role}: {label}")  # fmt: skip
        for first, last in _runs(model["variants"][label]["va"]["layers"]):
            for axes in (top, bottom):
                axes.axvspan(first - 0.5, last + 0.5, color=_COLOURS[role], alpha=0.15)
    top.set_ylabel("intrinsic dimension / its largest value")
    top.set_title(f"{name}: ID curves (shaded: the window each probe chooses for va)")
    top.legend(loc="best", fontsize="x-small")
    for index, preset in enumerate(READOUT_PRESETS):
        windows = sorted(model["sweep"][preset].items(), key=lambda item: _window_centre(item[0]))
        colour = f"C{index}"
        bottom.plot([_window_centre(w) for w, _ in windows], [s for _, s in windows], color=colour, label=preset)
        bottom.axhline(model["fallback_score"][preset], color=colour, linestyle="--", linewidth=1)
    bottom.plot([], [], color="0.4", linestyle="--", linewidth=1, label="fallback window")
    bottom.set_xlabel("layer (window centre)")
    bottom.set_ylabel("mean score over the five tasks")
    bottom.set_title(f"supervised sweep, windows of {model['width']} layers")
    bottom.legend(loc="best", fontsize="x-small")
    with atomic_file(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=110)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    """Write one figure per model of a study's JSON; return the paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--variant", help="another variant to draw beside the shipped probes")
    args = parser.parse_args(argv)
    record = json.loads(args.study.read_text(encoding="utf-8"))
    variant = args.variant or SHIPPED["mean-residual"]
    paths = [plot_model(name, model, variant, args.out / f"calibration-{Path(name).name}.png")
             for name, model in record["models"].items()]  # fmt: skip
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
