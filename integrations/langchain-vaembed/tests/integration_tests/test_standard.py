"""LangChain's standard integration tests, on the real default model and the default recipe."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_vaembed import VAEmbeddings

pytestmark = pytest.mark.real_model


class TestVAEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[VAEmbeddings]:
        return VAEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {}
