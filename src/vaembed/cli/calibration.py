"""`vaembed calibrate` and `vaembed sweep`: choose a model's layers, print them, plot them.

`vaembed calibrate MODEL` runs layer calibration by intrinsic dimension, prints
the ID curve and the chosen layers per preset, saves the profile (which
`layers="auto"` then uses) and writes a PNG of the curve.

`vaembed sweep MODEL --dev FILE` scores every layer and every window of layers
of a few readouts on a labelled dev set, prints the tables and writes a PNG of
score per layer for each readout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from vaembed.calibration.probe import PROBES
from vaembed.calibration.profile import CalibrationProfile, PromptCalibration, default_profile_path
from vaembed.calibration.run import model_identity
from vaembed.cli.support import CommandError, load_embedder, positive_int, read_texts
from vaembed.models.registry import DEFAULT_MODEL
from vaembed.recipes.presets import PRESET_RECIPES, get_recipe

__all__ = ["add_calibration_commands", "read_calibration_texts", "run_calibrate", "run_sweep", "DEFAULT_SWEEP_RECIPES"]

DEFAULT_SWEEP_RECIPES = ("hs-mean", "va", "wva", "aligned-wva")
#: Loads the model without triggering calibration (its layers are fixed).
_LOAD_RECIPE = "hs-mean"


def _safe_stem(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name if Path(model).exists() else model).strip("._") or "model"


def add_calibration_commands(commands: Any) -> None:
    """Add the `calibrate` and `sweep` subcommands to an argparse subparsers object."""
    calibrate = commands.add_parser("calibrate", help="choose layers by intrinsic dimension; plot the ID curve")
    calibrate.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"model (default {DEFAULT_MODEL})")
    calibrate.add_argument(
        "--texts", help='your texts: one per line, or a .jsonl of strings / {"text": ...} (default: bundled corpus)'
    )
    calibrate.add_argument("--n", type=positive_int, help="use only the first N texts")
    calibrate.add_argument(
        "--probe", choices=tuple(PROBES), default="default",
        help="what is measured and how a window is chosen: default (= mean-residual, the calibration study's "
        "best), methods (the last token's residual) or kv-paper (the KV-Embedding paper's procedure)",
    )  # fmt: skip
    calibrate.add_argument(
        "--prompts", choices=("text", "per-preset"), help="override the probe's prompts: plain texts or each preset's"
    )
    calibrate.add_argument("--max-tokens", type=positive_int, help="override the probe's token budget per text")
    calibrate.add_argument("--profile", help="write the profile here (default: the cache, used by layers='auto')")
    calibrate.add_argument("--no-save", action="store_true", help="do not write the profile")
    calibrate.add_argument("--plot", help="PNG of the ID curve (default <model>-id-curve.png)")

    sweep = commands.add_parser("sweep", help="score every layer and window on a labelled dev set; plot them")
    sweep.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"model (default {DEFAULT_MODEL})")
    sweep.add_argument("--dev", required=True, help="dev set: .jsonl/.json pairs with scores, queries or triples")
    sweep.add_argument(
        "--recipes", default=",".join(DEFAULT_SWEEP_RECIPES),
        help=f"comma-separated recipes to sweep (default {','.join(DEFAULT_SWEEP_RECIPES)})",
    )  # fmt: skip
    sweep.add_argument("--width", type=positive_int, help="window width (default the ID rule's max(2, round(0.1 L)))")
    sweep.add_argument("--plot", help="PNG of score per layer (default <model>-sweep.png)")
    sweep.add_argument("--json", help="also write the results as JSON here")


def read_calibration_texts(source: str) -> list[str]:
    """Texts from a `.jsonl` file (a JSON string or an object with "text" per line), else one per line.

    Raises:
        CommandError: The file is missing, or a JSON line is invalid (its number is named).
    """
    if not source.lower().endswith(".jsonl"):
        return [text for text in read_texts(source) if text.strip()]
    texts = []
    for number, line in enumerate(read_texts(source), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise CommandError(f"{source} line {number}: invalid JSON ({error.msg})") from None
        text = row.get("text") if isinstance(row, dict) else row
        if not isinstance(text, str):
            raise CommandError(f'{source} line {number}: expected a JSON string or an object with a "text" string')
        texts.append(text)
    return texts


def _curve_table(calibration: PromptCalibration) -> str:
    lines = [f"{'layer':>5}  {'ID':>7}  {'+-':>5}  {'plain':>7}  chosen"]
    for layer, (value, spread, plain) in enumerate(
        zip(calibration.curve, calibration.curve_std, calibration.plain_curve, strict=True)
    ):
        mark = "*" if layer in calibration.layers else ""
        lines.append(f"{layer:>5}  {value:7.2f}  {spread:5.2f}  {plain:7.2f}  {mark}")
    return "\n".join(lines)


def run_calibrate(args: argparse.Namespace) -> int:
    """Calibrate, print the curves and chosen layers, save the profile, write the plots."""
    from vaembed.calibration.plots import plot_id_curve

    texts = read_calibration_texts(args.texts) if args.texts is not None else None
    if args.profile is not None and args.no_save:
        raise CommandError("--profile and --no-save contradict each other")
    embedder = load_embedder(args.model, _LOAD_RECIPE)
    target = None if args.no_save else Path(args.profile or default_profile_path(model_identity(embedder.runner)))
    overrides = {"prompts": args.prompts} if args.prompts else {}
    overrides.update({"max_tokens": args.max_tokens} if args.max_tokens else {})
    profile: CalibrationProfile = embedder.calibrate(
        texts, args.n, save=target is not None, path=target, probe=args.probe, **overrides
    )
    corpus = profile.corpus
    print(f"model: {args.model} ({profile.model.num_layers} layers, config {profile.model.config_hash[:12]})")
    print(f"corpus: {corpus['texts']} texts ({corpus['name']}{', ' + corpus['licence'] if corpus['licence'] else ''})")
    print(f"time: {profile.seconds:.1f} s")
    stem = args.plot[:-4] if args.plot and args.plot.lower().endswith(".png") else args.plot
    stem = stem or f"{_safe_stem(args.model)}-id-curve"
    for name, calibration in profile.prompts.items():
        print()
        first, second = calibration.halves
        print(
            f"curve {name}: layers {list(calibration.layers)} ({calibration.frequency:.0%} of subsamples); "
            f"disjoint halves chose {list(first)} and {list(second)}"
        )
        if not calibration.halves_agree:
            print(
                f"warning: the two halves of the texts disagree by {calibration.halves_gap} layers: "
                "the choice is unstable on this corpus (use more texts, or check it with `vaembed sweep`)",
                file=sys.stderr,
            )
        print(_curve_table(calibration))
        path = f"{stem}.png" if len(profile.prompts) == 1 else f"{stem}-{name}.png"
        plot_id_curve(
            calibration.curve, calibration.layers, path, title=f"{args.model}: TwoNN ID per layer ({name})",
            curve_std=calibration.curve_std, plain_curve=calibration.plain_curve,
        )  # fmt: skip
        print(f"plot: {path}")
    print()
    for preset, layers in profile.presets.items():
        print(f"{preset}: layers {list(layers)}")
    if target is not None:
        print(f"profile: {target}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    """Sweep layers of each recipe on the dev set, print the tables, write the plot."""
    from vaembed.calibration.devset import load_dev_set
    from vaembed.calibration.plots import plot_sweep
    from vaembed.calibration.sweep import sweep_layers

    names = [name.strip() for name in args.recipes.split(",") if name.strip()]
    if not names:
        raise CommandError("--recipes is empty")
    for name in names:
        get_recipe(name)
    if not Path(args.dev).is_file():
        raise CommandError(f"dev set {args.dev!r} does not exist or is not a file")
    dev = load_dev_set(args.dev)
    embedder = load_embedder(args.model, _LOAD_RECIPE)
    results = []
    for name in names:
        result = sweep_layers(embedder, dev, PRESET_RECIPES[name], width=args.width)
        results.append(result)
        print(f"{name} ({result.readout}, {result.swept} layers), {result.metric} on {len(dev)} items:")
        print(result.table())
        print(f"best window: --layers {','.join(map(str, result.best_layers))} ({result.best_score:.4f})")
        print()
    path = args.plot or f"{_safe_stem(args.model)}-sweep.png"
    plot_sweep(results, path, title=f"{args.model}: {dev.metric} per layer on {dev.name}")
    print(f"plot: {path}")
    if args.json:
        Path(args.json).write_text(json.dumps([result.to_dict() for result in results], indent=1) + "\n")
        print(f"results: {args.json}")
    return 0
