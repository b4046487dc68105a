"""Calibration profiles: what layer calibration found for one model, as a JSON file.

A profile records the model's identity (hashes of its config and of a sample
of its weights, plus its name for reading),
the calibration corpus, the estimator settings, one intrinsic-dimension curve
per prompt, and the chosen layers per preset. Profiles live in
`<cache>/profiles/`, one file per model identity (so the same weights loaded
under another name or dtype find the same file), and are written atomically
(a temporary file in the same folder, then `os.replace`). A file that cannot be
read, belongs to another model, or comes from an incompatible library version
is never used: `ProfileError` says why.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vaembed.cache import atomic_file, cache_dir
from vaembed.version import __version__

__all__ = [
    "PROFILE_FORMAT",
    "CalibrationProfile",
    "ModelIdentity",
    "PromptCalibration",
    "ProfileError",
    "config_hash",
    "default_profile_path",
    "weights_hash",
]

PROFILE_FORMAT = 2
"""Version of the JSON layout; files of another format are recomputed."""

# Config entries that describe how a model was loaded, not what it computes.
_VOLATILE_CONFIG_KEYS = frozenset(
    {"_name_or_path", "_attn_implementation", "_attn_implementation_internal", "dtype", "torch_dtype",
     "transformers_version", "_commit_hash", "use_cache", "output_attentions", "output_hidden_states"}
)  # fmt: skip


class ProfileError(ValueError):
    """A profile file is unreadable, malformed, or does not match the model or library."""


def config_hash(config: Any) -> str:
    """SHA-256 of a model config's canonical JSON, without load-time entries (dtype, paths, attention)."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    kept = {key: value for key, value in values.items() if key not in _VOLATILE_CONFIG_KEYS}
    text = json.dumps(kept, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ModelIdentity:
    """Which model a profile belongs to.

    Two identities match when their family, config hash, weights hash and depth
    agree; the name is for reading only.

    Attributes:
        name: The model's name (preset, path or hub id).
        family: The config's `model_type`.
        config_hash: `config_hash` of its config.
        weights_hash: `weights_hash` of its weights.
        num_layers: Its number of decoder layers.
    """

    name: str
    family: str
    config_hash: str
    weights_hash: str
    num_layers: int

    def matches(self, other: ModelIdentity) -> bool:
        """Whether both identities describe the same model (names aside)."""
        mine = (self.family, self.config_hash, self.weights_hash, self.num_layers)
        return mine == (other.family, other.config_hash, other.weights_hash, other.num_layers)


def weights_hash(model: torch.nn.Module, sample: int = 4096) -> str:
    """SHA-256 of a sample of the weights, rounded to bfloat16 (so float32 and bfloat16 loads agree).

    The sample is the first `sample` values of the input embeddings and of every
    decoder layer's first parameter, which tells fine-tunes of one architecture apart.
    """
    digest = hashlib.sha256()
    tensors = [model.get_input_embeddings().weight]
    tensors += [next(layer.parameters()) for layer in getattr(model, "layers", [])]
    with torch.no_grad():
        for tensor in tensors:
            values = tensor.detach().reshape(-1)[:sample].to("cpu", torch.bfloat16).view(torch.int16)
            digest.update(values.numpy().tobytes())
    return digest.hexdigest()


def default_profile_path(identity: ModelIdentity) -> Path:
    """`<cache>/profiles/<family>-<hash16>.json`, the hash covering config, weights, depth and the default probe.

    The default probe is in the key so that a release that changes it calibrates
    afresh instead of reusing profiles measured the earlier way.
    """
    from vaembed.calibration.probe import get_probe  # the probe module needs the engine; keep this one light

    probe = json.dumps(get_probe("default").describe(), sort_keys=True)
    key = f"{identity.config_hash}:{identity.weights_hash}:{identity.num_layers}:{probe}"
    family = re.sub(r"[^A-Za-z0-9._-]+", "_", identity.family).strip("._") or "model"
    return cache_dir() / "profiles" / f"{family}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


@dataclass(frozen=True)
class PromptCalibration:
    """The calibration of one curve: a prompt's residual stream, or (readout probes) one preset's readout.

    Attributes:
        curve: Intrinsic dimension of the probe's representation at each layer.
        plain_curve: The same without the finite-sample correction.
        curve_std: Standard deviation of each layer's ID over the subsamples.
        layers: The chosen layers (most frequent selection over the subsamples).
        frequency: Fraction of subsamples that chose exactly `layers`.
        halves: The layers the same vote chooses on each of two disjoint halves of the texts (even and
            odd positions), which is what calibrating on that half alone chooses.
    """

    curve: tuple[float, ...]
    plain_curve: tuple[float, ...]
    curve_std: tuple[float, ...]
    layers: tuple[int, ...]
    frequency: float
    halves: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())

    @property
    def halves_gap(self) -> int:
        """The largest distance, in layers, between the two halves' choices (position by position)."""
        first, second = self.halves
        if not first or not second:
            return 0
        return max(abs(a - b) for a, b in zip(sorted(first), sorted(second), strict=False))

    @property
    def halves_agree(self) -> bool:
        """Whether the disjoint halves chose the same window within one layer."""
        return self.halves_gap <= 1


@dataclass(frozen=True)
class CalibrationProfile:
    """What layer calibration found for one model.

    Attributes:
        model: The model's identity.
        corpus: Description of the calibration texts (`name`, `licence`, `texts`, `sha256`).
        estimator: Settings of the estimator and the selection rule.
        prompts: One `PromptCalibration` per prompt name.
        presets: Chosen layers per calibrated preset.
        seconds: Wall time of the calibration.
        library_version: The vaembed version that wrote it.
        format: The JSON layout version.
    """

    model: ModelIdentity
    corpus: dict[str, Any]
    estimator: dict[str, Any]
    prompts: dict[str, PromptCalibration]
    presets: dict[str, tuple[int, ...]]
    seconds: float
    library_version: str = __version__
    format: int = PROFILE_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def layers_for(self, prompt_name: str) -> tuple[int, ...] | None:
        """The layers chosen for a prompt, or None if this profile did not calibrate it."""
        found = self.prompts.get(prompt_name)
        return found.layers if found else None

    def with_prompts(self, prompts: dict[str, PromptCalibration], seconds: float) -> CalibrationProfile:
        """A copy with more prompts calibrated (time added)."""
        return replace(self, prompts={**self.prompts, **prompts}, seconds=self.seconds + seconds)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON, atomically; return the path."""
        with atomic_file(path) as stream:
            json.dump(self.to_dict(), stream, indent=1)
            stream.write("\n")
        return Path(path)

    @classmethod
    def from_dict(cls, data: Any) -> CalibrationProfile:
        """Rebuild a profile from `to_dict` output, checking every field.

        Raises:
            ProfileError: A field is missing or has the wrong type or value.
        """
        try:
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            if data.get("format") != PROFILE_FORMAT:
                raise ProfileError(f"profile format {data.get('format')!r}, this library reads {PROFILE_FORMAT}")
            entry = data["model"]
            model = ModelIdentity(str(entry["name"]), str(entry["family"]), str(entry["config_hash"]),
                                  str(entry["weights_hash"]), _count(entry["num_layers"]))  # fmt: skip
            prompts = {str(name): _prompt_calibration(entry, model.num_layers)
                       for name, entry in data["prompts"].items()}  # fmt: skip
            presets = {str(name): _layers(value, model.num_layers) for name, value in data["presets"].items()}
            seconds = float(data["seconds"])
            if not isinstance(data["corpus"], dict) or not isinstance(data["estimator"], dict):
                raise TypeError("corpus and estimator must be objects")
            return cls(model, data["corpus"], data["estimator"], prompts, presets, seconds,
                       str(data["library_version"]), PROFILE_FORMAT, dict(data.get("extra") or {}))  # fmt: skip
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ProfileError(f"malformed profile: {type(error).__name__}: {error}") from error

    @classmethod
    def load(cls, path: str | os.PathLike[str], expect: ModelIdentity | None = None) -> CalibrationProfile:
        """Read a profile and check it matches `expect` and this library.

        Raises:
            ProfileError: The file cannot be read or parsed, is malformed, was
                written by an incompatible version, or is for another model.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ProfileError(f"cannot read calibration profile {os.fspath(path)}: {error}") from error
        try:
            profile = cls.from_dict(data)
            profile.check(expect)
        except ProfileError as error:
            raise ProfileError(f"calibration profile {os.fspath(path)}: {error}") from error
        return profile

    def check(self, expect: ModelIdentity | None) -> None:
        """Raise `ProfileError` if this profile is for another model or an incompatible version."""
        if _minor(self.library_version) != _minor(__version__):
            raise ProfileError(f"written by vaembed {self.library_version}, incompatible with {__version__}")
        if expect is None:
            return
        if not self.model.matches(expect):
            mine, theirs = self.model, expect
            raise ProfileError(
                f"made for another model ({mine.name}: {mine.family}, config {mine.config_hash[:12]}, weights "
                f"{mine.weights_hash[:12]}, {mine.num_layers} layers) than {theirs.name} ({theirs.family}, config "
                f"{theirs.config_hash[:12]}, weights {theirs.weights_hash[:12]}, {theirs.num_layers} layers)"
            )


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"num_layers must be a positive int, got {value!r}")
    return value


def _layers(value: Any, num_layers: int) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"a layer set must be a non-empty list, got {value!r}")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_layers for i in value):
        raise ValueError(f"layer set {value!r} has entries outside [0, {num_layers})")
    return tuple(value)


def _floats(value: Any, num_layers: int, name: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != num_layers:
        raise ValueError(f"{name} must be a list of {num_layers} numbers")
    out = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} has non-finite values")
    return out


def _prompt_calibration(entry: Any, num_layers: int) -> PromptCalibration:
    return PromptCalibration(
        curve=_floats(entry["curve"], num_layers, "curve"),
        plain_curve=_floats(entry["plain_curve"], num_layers, "plain_curve"),
        curve_std=_floats(entry["curve_std"], num_layers, "curve_std"),
        layers=_layers(entry["layers"], num_layers),
        frequency=float(entry["frequency"]),
        halves=tuple(_layers(half, num_layers) for half in entry["halves"]),  # type: ignore[arg-type]
    )
