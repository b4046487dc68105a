"""The probe passes of the calibration study: every representation at every layer, per prompt and text length.

One pass per (prompt, max_tokens) over the bundled calibration corpus reads, at
every layer, each representation a probe may use: the last token's residual,
the mean-pooled residual, and the calibrated presets' own readouts. The states
are kept in `$VAEMBED_CACHE/calibration-study/` (numpy `.npz`, no pickles), so
the study's analysis reruns without the model. `variant_windows` then applies a
probe variant (representation x prompt x texts x rule) to those states.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaembed.cache import cache_dir
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.probe import RESIDUAL, collect_layer_states, preset_readout
from vaembed.calibration.run import calibrate_states
from vaembed.recipes.prompts import PROMPTS
from vaembed.recipes.readouts import HiddenStates

__all__ = ["PROBE_PROMPTS", "PROBE_TOKENS", "READ", "Variant", "probe_states", "variant_windows"]

PROBE_PROMPTS = ("none", "compress", "prompteol")
PROBE_TOKENS = (96, 256, 512)
STUDY_PRESETS = ("va", "wva", "aligned-wva", "kv")
READ: dict[str, Any] = {
    "residual-last": RESIDUAL,
    "residual-mean": HiddenStates("mean"),
    **{f"readout:{preset}": preset_readout(preset, "readout") for preset in STUDY_PRESETS},
}
"""What each probe pass reads at every layer (a preset's readout is its own vectors)."""


def _path(model: str, prompt: str, tokens: int, count: int) -> Path:
    key = hashlib.sha256(json.dumps([model, prompt, tokens, count, bundled_corpus().describe()["sha256"]]).encode())
    return cache_dir() / "calibration-study" / f"{Path(model).name}-{prompt}-{tokens}-{key.hexdigest()[:12]}.npz"


def probe_states(embedder: Any, prompt: str, tokens: int) -> dict[str, list[np.ndarray]]:
    """Every representation of `READ` at every layer over the bundled corpus (cached)."""
    texts = list(bundled_corpus().texts)
    path = _path(embedder.name, prompt, tokens, len(texts))
    if path.is_file():
        with np.load(path) as stored:
            return {name: [stored[f"{name}|{layer}"] for layer in range(embedder.num_layers)] for name in READ}
    states = collect_layer_states(embedder.runner, texts, PROMPTS[prompt], READ, max_tokens=tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp.npz")
    np.savez(
        staging, **{f"{name}|{layer}": part for name, layers in states.items() for layer, part in enumerate(layers)}
    )
    staging.replace(path)
    return states


@dataclass(frozen=True)
class Variant:
    """One probe variant of the study.

    Attributes:
        representation: `"residual-last"`, `"residual-mean"` or `"readout"`.
        prompt: A prompt name, or `"preset"` (each preset's own prompt).
        tokens: Tokens each corpus text is cut to.
        texts: How many corpus texts (the first N).
        rule: A selection rule.
    """

    representation: str
    prompt: str
    tokens: int
    texts: int
    rule: str

    @property
    def label(self) -> str:
        """A short name for tables."""
        return f"{self.representation}/{self.prompt}/{self.tokens}t/{self.texts}/{self.rule}"


PRESET_PROMPTS = {"va": "none", "wva": "none", "aligned-wva": "prompteol", "kv": "compress"}


def variant_windows(
    states: dict[tuple[str, int], dict[str, list[np.ndarray]]], variant: Variant, resamples: int = 20
) -> dict[str, dict[str, Any]]:
    """Per preset: the variant's ID curve, chosen window, its frequency over subsamples and the disjoint halves."""
    out = {}
    for preset in STUDY_PRESETS:
        prompt = PRESET_PROMPTS[preset] if variant.prompt == "preset" else variant.prompt
        name = f"readout:{preset}" if variant.representation == "readout" else variant.representation
        layers = [layer[: variant.texts] for layer in states[(prompt, variant.tokens)][name]]
        found = calibrate_states(layers, variant.rule, resamples=resamples)
        out[preset] = {
            "curve": list(found.curve),
            "layers": list(found.layers),
            "frequency": found.frequency,
            "halves": [list(h) for h in found.halves],
            "halves_gap": found.halves_gap,
        }
    return out
