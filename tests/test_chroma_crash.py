"""A process killed while VAEmbeddings adds documents to a persistent Chroma collection loses and doubles nothing.

Documents go in with deterministic ids (langchain-chroma upserts), so re-running the
whole load after a SIGKILL ends with exactly the expected records and vectors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from vaembed import Embedder

COUNT, BATCH = 60, 10
TEXTS = [f"Document {i}: foxes, rivers and the number {i * 7}." for i in range(COUNT)]

# argv: model folder, Chroma folder, and "stall" to stop (announced by the marker file) in the 4th batch.
CHILD = r"""
import os, sys, time
from langchain_chroma import Chroma
from langchain_vaembed import VAEmbeddings
model, folder = sys.argv[1], sys.argv[2]
stall = len(sys.argv) > 3
texts = [f"Document {i}: foxes, rivers and the number {i * 7}." for i in range(60)]
embeddings = VAEmbeddings(model=model, recipe="va")
calls = []
original = VAEmbeddings.embed_documents
def counted(self, batch):
    calls.append(len(batch))
    if stall and len(calls) == 4:  # three batches are in the collection
        open(os.environ["STALL_MARKER"], "w").close()
        time.sleep(600)
    return original(self, batch)
VAEmbeddings.embed_documents = counted
store = Chroma("docs", embedding_function=embeddings, persist_directory=folder)
for start in range(0, 60, 10):
    store.add_texts(texts[start:start + 10], ids=[f"doc-{i}" for i in range(start, start + 10)])
print("done")
"""


def _run(model: str, folder: str, marker: str, stall: bool) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "STALL_MARKER": marker}
    command = [sys.executable, "-c", CHILD, model, folder, *(["stall"] if stall else [])]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_load_reruns_to_exactly_the_expected_records(tmp_path, tiny_model_folder):
    import chromadb

    folder, marker = str(tmp_path / "chroma"), tmp_path / "marker"
    child = _run(str(tiny_model_folder), folder, str(marker), stall=True)
    deadline = time.time() + 240
    while not marker.exists():
        assert child.poll() is None, child.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    # Read in another process: a Chroma client caches a folder's index, so this process opens it only at the end.
    count = "import chromadb, sys; print(chromadb.PersistentClient(path=sys.argv[1]).get_collection('docs').count())"
    partial = subprocess.run([sys.executable, "-c", count, folder], capture_output=True, text=True, check=True)
    assert int(partial.stdout.split()[-1]) == 3 * BATCH  # what was upserted before the kill survived it

    rerun = _run(str(tiny_model_folder), folder, str(marker), stall=False)
    _, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err[-3000:]
    collection = chromadb.PersistentClient(path=folder).get_collection("docs")
    assert collection.count() == COUNT
    got = collection.get(ids=[f"doc-{i}" for i in range(COUNT)], include=["embeddings", "documents"])
    order = [int(i.split("-")[1]) for i in got["ids"]]
    assert sorted(order) == list(range(COUNT))
    expected = Embedder.from_pretrained(tiny_model_folder, "va").encode(TEXTS)
    vectors = np.asarray(got["embeddings"])[np.argsort(order)]
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert [got["documents"][order.index(i)] for i in range(COUNT)] == TEXTS
