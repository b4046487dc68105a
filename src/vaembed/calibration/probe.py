"""Calibration probes: what layer calibration measures the intrinsic dimension of, and how it chooses.

A probe fixes the four things that decide where `layers="auto"` lands:

- `representation`: the per-text vectors at each layer: `"residual-last"` (the
  residual stream leaving the layer at the last token, METHODS step 2),
  `"residual-mean"` (the same, mean-pooled over the text), or `"readout"` (each
  calibrated preset's own vectors: mean-pooled value vectors for `va`, the last
  token's weighted values for `wva`, its attention output for `aligned-wva`,
  and the last token's value vectors, the ones rerouted, for `kv`);
- `prompts`: `"text"` (the plain texts), `"preset"` (each preset's own prompt),
  or a prompt name of `vaembed.PROMPTS` for every preset;
- `max_tokens`: each text is cut to this many tokens (prompt included);
- `rule`: how a curve becomes a window (`vaembed.calibration.selection.RULES`).

`PROBES` names the ones that matter: `"default"`, which is `"mean-residual"`
(the residual stream mean-pooled over each plain text, 96 tokens, the
interior-minimum rule), the variant of the calibration study
(`benchmarks/calibration_study.py`, 216 variants on smollm2-135m, gemma3-270m
and qwen2.5-coder-0.5b) whose windows come closest to the best window of the
supervised sweep across the models, though its two disjoint halves of the
corpus can disagree by several layers (`benchmarks/README.md`); `"methods"`
(METHODS.md as first written: the last token's residual, otherwise the same,
the default before the study); and `"kv-paper"` (the KV-Embedding paper's
procedure: the compression prompt, last-token residual, interior minimum).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from vaembed.calibration.selection import RULES
from vaembed.engine.forward_pass import PassPlan
from vaembed.engine.runner import Runner
from vaembed.recipes.presets import PRESET_RECIPES
from vaembed.recipes.prompts import PROMPTS, Prompt
from vaembed.recipes.readouts import READOUTS, AttentionOutput, HiddenStates, Readout, ValueVectors, WeightedValues
from vaembed.recipes.recipe import ResolvedRecipe

__all__ = [
    "PROBES",
    "REPRESENTATIONS",
    "CalibrationProbe",
    "Representation",
    "collect_layer_states",
    "get_probe",
    "preset_readout",
]

Representation = Literal["residual-last", "residual-mean", "readout"]
REPRESENTATIONS: tuple[str, ...] = get_args(Representation)
RESIDUAL = "residual"
"""The name `collect_layer_states` gives the last-token residual states."""

_READOUT_OF_PRESET: dict[str, Readout] = {
    "va": ValueVectors("mean"),
    "wva": WeightedValues("last"),
    "aligned-wva": AttentionOutput("last"),
    "kv": ValueVectors("last"),
}


@dataclass(frozen=True)
class CalibrationProbe:
    """How layer calibration measures and chooses (see the module docstring).

    Attributes:
        name: A label for profiles and reports.
        representation: `"residual-last"`, `"residual-mean"` or `"readout"`.
        prompts: `"text"`, `"preset"`, or a prompt name of `vaembed.PROMPTS`.
        max_tokens: Tokens each text is cut to (prompt included); None for the runner's `max_length`.
        rule: A key of `vaembed.calibration.selection.RULES`.
    """

    name: str = "custom"
    representation: Representation = "residual-last"
    prompts: str = "text"
    max_tokens: int | None = 96
    rule: str = "interior-min"

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {', '.join(REPRESENTATIONS)}, not {self.representation!r}")
        if self.prompts not in ("text", "preset") and self.prompts not in PROMPTS:
            raise ValueError(f"prompts must be 'text', 'preset' or one of {', '.join(PROMPTS)}, not {self.prompts!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        mt = self.max_tokens
        if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 2):
            raise ValueError(f"max_tokens must be an int >= 2 or None, not {mt!r}")

    def prompt_name(self, preset: str) -> str:
        """The name of the prompt `preset`'s texts are wrapped in."""
        if self.prompts == "text":
            return "none"
        if self.prompts == "preset":
            return next(name for name, p in PROMPTS.items() if p == PRESET_RECIPES[preset].prompt)
        return self.prompts

    def curve_name(self, preset: str) -> str:
        """The name of the curve `preset` is calibrated on: the prompt's, or (readout probes) the preset's."""
        return preset if self.representation == "readout" else self.prompt_name(preset)

    def describe(self) -> dict[str, object]:
        """A JSON-able description (stored in profiles)."""
        return {"name": self.name, "representation": self.representation, "prompts": self.prompts,
                "max_tokens": self.max_tokens, "rule": self.rule}  # fmt: skip


PROBES: dict[str, CalibrationProbe] = {
    "methods": CalibrationProbe("methods", "residual-last", "text", 96, "interior-min"),
    "kv-paper": CalibrationProbe("kv-paper", "residual-last", "compress", 96, "interior-min"),
    "mean-residual": CalibrationProbe("mean-residual", "residual-mean", "text", 96, "interior-min"),
}
PROBES["default"] = PROBES["mean-residual"]


def get_probe(probe: str | CalibrationProbe) -> CalibrationProbe:
    """A probe by name, or the probe itself.

    Raises:
        ValueError: An unknown name (the known ones are listed).
    """
    if isinstance(probe, CalibrationProbe):
        return probe
    if probe not in PROBES:
        raise ValueError(f"Unknown calibration probe {probe!r}; probes are {', '.join(PROBES)}")
    return PROBES[probe]


def preset_readout(preset: str, representation: Representation) -> Readout | str:
    """What a preset is calibrated on: `RESIDUAL`, the mean-pooled residual, or its own readout."""
    if representation == "residual-last":
        return RESIDUAL
    if representation == "residual-mean":
        return HiddenStates("mean")
    return _READOUT_OF_PRESET.get(preset, READOUTS["value_mean"])


def collect_layer_states(
    runner: Runner,
    texts: Sequence[str],
    prompt: Prompt,
    readouts: dict[str, Readout | str],
    *,
    max_tokens: int | None = 96,
    batch_size: int = 8,
) -> dict[str, list[np.ndarray]]:
    """Per-text vectors at every layer for each named readout, from one pass over `texts` wrapped in `prompt`.

    Args:
        runner: Supplies the model, tokenizer and forward passes.
        texts: The calibration texts (as documents).
        prompt: Their template.
        readouts: Name -> a `Readout` (read at every layer) or `RESIDUAL` (the last token's residual leaving
            each layer, before any final norm).
        max_tokens: Tokens each text is cut to, prompt included; None for the runner's `max_length`.
        batch_size: Sequences per forward pass.

    Returns:
        Name -> one float32 (len(texts), dim) array per layer.

    Raises:
        FloatingPointError: The model produced NaN or Inf (the layer is named).
    """
    tokenizer = runner.tokenizer_for(runner.max_length if max_tokens is None else max_tokens)
    sequences, _ = tokenizer.encode(list(texts), prompt, "document", "truncate")
    count, every = runner.num_layers, tuple(range(runner.num_layers))
    plans, names = [], list(readouts)
    for name in names:
        readout = readouts[name]
        if isinstance(readout, str):  # the residual stream: a cheap readout, and every layer's residuals
            plans.append(PassPlan(ResolvedRecipe(prompt, READOUTS["hidden_last"], (0,)), count, every))
        else:
            plans.append(PassPlan(ResolvedRecipe(prompt, readout, every), count, keep_layers=True))
    read = runner.read(sequences, plans, batch_size=batch_size)
    out = {}
    for name, readings in zip(names, read, strict=True):
        parts = readings.residuals if isinstance(readouts[name], str) else readings.per_layer
        out[name] = [parts[layer].numpy() for layer in every]
    return out
