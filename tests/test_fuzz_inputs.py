"""Property-based tests: any input gives finite vectors or an error naming the bad item.

Arbitrary Unicode (lone surrogates, NUL and control characters, combining marks,
zero-width and bidi characters, emoji, long strings) and mixed lists go through
`Embedder.encode`, the LangChain and LlamaIndex adapters and the Chroma function,
under every long-text policy, on a tiny model with a short `max_length` (so long
texts are truncated, chunked or refused). Each call returns one finite vector of
the right dimension per text, or raises a ValueError/TypeError naming the index of
a bad item; never a library-internal error, never NaN.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaembed import Embedder
from vaembed.engine.tokenization import LONG_TEXT_POLICIES

MAX_LENGTH = 24
EXAMPLES = 30

SPECIAL = [
    "\x00", "\x01", "\x1b", "\x7f", "\x85", "\t", "\r\n", "\u0301", "\u0489", "\u200b", "\u200d", "\u2060",
    "\ufeff", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\ud800", "\udfff", "\ufffd",
    "\uffff", "\U0010ffff", "🦊", "👩‍👩‍👧", "🇫🇷", "<s>", "</s>", "<pad>", "{text}",
]  # fmt: skip

pieces = st.one_of(st.characters(blacklist_categories=()), st.sampled_from(SPECIAL))


def _joined(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.lists(pieces, min_size=min_size, max_size=max_size).map("".join)


texts = st.one_of(
    _joined(0, 40),
    st.builds(lambda piece, n: piece * n, _joined(1, 6), st.integers(1, 400)),  # long texts
)
items = st.one_of(texts, texts, texts, st.none(), st.integers(), st.floats(), st.binary(max_size=4), st.just(["x"]))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _bad(item: object, policy: str, embedder: Embedder) -> bool:
    if not isinstance(item, str):
        return True
    try:
        item.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return policy == "error" and len(embedder.tokenizer(item)["input_ids"]) > MAX_LENGTH - 4


def _check(call, batch: list, policy: str, embedder: Embedder, single: bool = False) -> None:
    """`call(batch)` gives finite vectors of the right shape, or an error naming a bad item's index.

    With `single`, `call` embeds one text (`batch[0]`), and its error need name no index.
    """
    try:
        out = np.asarray(call(batch), dtype=np.float64)
    except (ValueError, TypeError) as error:
        named = [0] if single else [int(i) for i in re.findall(r"\[(\d+)\]", str(error))]
        assert any(i < len(batch) and _bad(batch[i], policy, embedder) for i in named), repr(error)
        return
    assert all(isinstance(item, str) for item in batch)
    assert out.shape == (len(batch), embedder.dimension) or (not batch and out.size == 0)
    assert np.isfinite(out).all()
    if len(batch):
        assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


@pytest.fixture(scope="module", params=LONG_TEXT_POLICIES)
def engine(request, tokenizers):
    from vaembed.testing import build_model

    return Embedder(build_model("llama"), tokenizers["plain"], "va", long_text=request.param, max_length=MAX_LENGTH)


@given(batch=st.lists(items, max_size=6))
@FUZZ
def test_embedder_encode(engine, batch):
    _check(lambda b: engine.encode(b, prompt="Query: "), batch, engine.long_text, engine)


@given(batch=st.lists(items, min_size=1, max_size=6))  # Chroma itself refuses empty lists
@FUZZ
def test_chroma_function(engine, batch):
    from vaembed.connectors.chroma import VAEmbeddingFunction

    function = VAEmbeddingFunction(embedder=engine, query_prompt="Q: ")
    _check(function, batch, engine.long_text, engine)
    _check(function.embed_query, batch, engine.long_text, engine)


@given(batch=st.lists(items, max_size=6))
@FUZZ
def test_langchain_embeddings(engine, batch):
    langchain_vaembed = pytest.importorskip("langchain_vaembed")
    embeddings = langchain_vaembed.VAEmbeddings(embedder=engine, document_prompt="D: ")
    _check(embeddings.embed_documents, batch, engine.long_text, engine)
    for text in batch[:2]:
        _check(lambda b: [embeddings.embed_query(b[0])], [text], engine.long_text, engine, True)


@given(batch=st.lists(items, max_size=6))
@FUZZ
def test_llama_index_embedding(engine, batch):
    module = pytest.importorskip("llama_index.embeddings.vaembed")
    embedding = module.VAEmbedding(embedder=engine, embed_batch_size=64, query_instruction="Q: ")
    _check(embedding.get_text_embedding_batch, batch, engine.long_text, engine)
    for text in batch[:2]:
        _check(lambda b: [embedding.get_query_embedding(b[0])], [text], engine.long_text, engine, True)


def test_each_special_piece_alone_embeds_to_a_unit_vector(engine):
    """Every valid special piece (pad, BOS and EOS strings included) embeds on its own like any text."""
    valid = [piece for piece in SPECIAL if not _bad(piece, engine.long_text, engine)]
    out = engine.encode(valid)
    assert len(valid) >= 28
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
