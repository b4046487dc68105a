"""Loading keeps a device map's placement, passes hub options to the tokenizer, and picks devices in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaembed.models import loading
from vaembed.models.loading import ModelSource, load_model_and_tokenizer, pick_device


def test_a_device_map_is_respected_and_gives_the_same_vectors(tiny_model_folder, monkeypatch):
    from vaembed import Embedder

    moved = []
    original = torch.nn.Module.to

    def spy(self, *args, **kwargs):
        moved.append(args)
        return original(self, *args, **kwargs)

    source = ModelSource(str(tiny_model_folder), str(tiny_model_folder), True)
    monkeypatch.setattr(torch.nn.Module, "to", spy)
    mapped, tokenizer = load_model_and_tokenizer(
        source, device=torch.device("cpu"), dtype=torch.float32, model_kwargs={"device_map": {"": "cpu"}}
    )
    assert moved == []  # the model was not moved after loading
    load_model_and_tokenizer(source, device=torch.device("cpu"), dtype=torch.float32)
    assert moved  # without a device map it is
    monkeypatch.undo()
    plain = Embedder.from_pretrained(tiny_model_folder, "va", share=False)
    assert np.allclose(Embedder(mapped, tokenizer, "va").encode("a text"), plain.encode("a text"), atol=1e-6)


def test_hub_options_reach_the_tokenizer(tiny_model_folder, monkeypatch):
    import transformers

    seen = {}
    original = transformers.AutoTokenizer.from_pretrained

    def spy(location, **kwargs):
        seen.update(kwargs)
        return original(location, **{k: v for k, v in kwargs.items() if k != "revision"})

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)
    source = ModelSource(str(tiny_model_folder), str(tiny_model_folder), True)
    load_model_and_tokenizer(source, device=torch.device("cpu"), dtype=torch.float32, model_kwargs={"cache_dir": "/x"})
    assert seen["cache_dir"] == "/x" and seen["trust_remote_code"] is False


def test_device_order_is_cuda_then_mps_then_xpu_then_cpu(monkeypatch):
    class Backend:
        def __init__(self, available: bool) -> None:
            self.available = available

        def is_available(self) -> bool:
            return self.available

    for cuda, mps, xpu, expected in [(1, 1, 1, "cuda"), (0, 1, 1, "mps"), (0, 0, 1, "xpu"), (0, 0, 0, "cpu")]:
        monkeypatch.setattr(loading.torch, "cuda", Backend(bool(cuda)))
        monkeypatch.setattr(loading.torch.backends, "mps", Backend(bool(mps)), raising=False)
        monkeypatch.setattr(loading.torch, "xpu", Backend(bool(xpu)), raising=False)
        assert pick_device(None).type == expected
    assert pick_device("cpu").type == "cpu"


def test_an_unsupported_architecture_is_refused_before_any_weight_loads(tmp_path, monkeypatch):
    import transformers

    from vaembed import Embedder

    config = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50)
    transformers.GPT2Model(config).save_pretrained(tmp_path)
    loads = []
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: loads.append(a))
    with pytest.raises(ValueError, match="Unsupported architecture 'gpt2': vaembed supports llama"):
        Embedder.from_pretrained(tmp_path)
    assert loads == []


def test_trust_remote_code_reaches_the_loader_from_every_adapter(tiny_model_folder, monkeypatch):
    from langchain_vaembed import VAEmbeddings
    from llama_index.embeddings.vaembed import VAEmbedding

    from vaembed.connectors import chroma
    from vaembed.models import shared

    seen = []
    original = shared.load_model_and_tokenizer

    def spy(source, **options):
        seen.append(options["trust_remote_code"])
        return original(source, **options)

    monkeypatch.setattr(shared, "load_model_and_tokenizer", spy)
    model = str(tiny_model_folder)
    VAEmbeddings(model=model, recipe="va", trust_remote_code=True)
    VAEmbedding(model_name=model, recipe="va", trust_remote_code=True)
    function = chroma.VAEmbeddingFunction(model=model, recipe="va", trust_remote_code=True)
    VAEmbeddings(model=model, recipe="va")
    assert seen == [True, True, True, False]  # each adapter passed it on; the default is off
    assert function.get_config()["trust_remote_code"] is True
    assert chroma.VAEmbeddingFunction.build_from_config(function.get_config()).trust_remote_code is True
