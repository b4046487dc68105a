"""LangChain's standard unit tests, on a tiny random model."""

from __future__ import annotations

from langchain_tests.unit_tests import EmbeddingsUnitTests
from langchain_vaembed import VAEmbeddings

from vaembed.testing import tiny_model_folder


class TestVAEmbeddingsStandard(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[VAEmbeddings]:
        return VAEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": str(tiny_model_folder()), "batch_size": 4}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        folder = str(tiny_model_folder())
        return {"VAEMBED_MODEL": folder}, {"recipe": "kv"}, {"model": folder, "recipe": "kv"}
