"""A process killed while `load_into_chroma` upserts into a persistent collection loses and doubles nothing.

`load_into_chroma` upserts by id, so re-running the whole load after a SIGKILL
ends with exactly the files' records: count, ids, vectors, texts and metadata.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DIMENSION = 16

# argv: Parquet folder, Chroma folder, batch size, the upsert call that writes the marker file,
# and "stall" to stop there (before that call) instead of going on.
CHILD = r"""
import os, sys, time
import chromadb
from vaembed.connectors.ray import load_into_chroma
path, folder, batch, announce = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stall = len(sys.argv) > 5
collection = chromadb.PersistentClient(path=folder).get_or_create_collection("docs", embedding_function=None)
kind, original, calls = type(collection), type(collection).upsert, []
def counted(self, **records):
    calls.append(len(records["ids"]))
    if len(calls) == announce:
        open(os.environ["LOAD_MARKER"], "w").close()
        if stall:
            time.sleep(600)
    return original(self, **records)
kind.upsert = counted
print("written", load_into_chroma(path, collection, batch_size=batch))
"""

COUNT = "import chromadb, sys; print(chromadb.PersistentClient(path=sys.argv[1]).get_collection('docs').count())"


def _write_files(folder, sizes):
    """Parquet files as `write_embeddings` writes them: id, embedding (fixed_size_list<float32>), text, metadata."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    records, start = [], 0
    for number, size in enumerate(sizes):
        ids = [f"doc-{i}" for i in range(start, start + size)]
        vectors = rng.standard_normal((size, DIMENSION)).astype(np.float32)
        texts = [f"Document {i} about rivers." for i in range(start, start + size)]
        pages = [None if i % 7 == 0 else i for i in range(start, start + size)]
        sources = [f"part-{number}" for _ in ids]
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMENSION)
        table = pa.table({"id": ids, "embedding": embedding, "text": texts, "page": pages, "source": sources})
        pq.write_table(table, folder / f"part-{number:03d}.parquet")
        records += list(zip(ids, vectors, texts, pages, sources, strict=True))
        start += size
    return records


def _run(files, chroma, marker, batch, announce, stall):
    env = {**os.environ, "LOAD_MARKER": str(marker), "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-c", CHILD, str(files), str(chroma), str(batch), str(announce)]
    command += ["stall"] if stall else []
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_at_marker(child, marker, delay=0.0):
    deadline = time.time() + 240
    while not marker.exists():
        assert child.poll() is None, child.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    return child.returncode


def _count_elsewhere(chroma):
    """Read in another process: a Chroma client caches a folder's index, so this process opens it only at the end."""
    result = subprocess.run([sys.executable, "-c", COUNT, str(chroma)], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


def _assert_exactly(chroma, records):
    import chromadb

    collection = chromadb.PersistentClient(path=str(chroma)).get_collection("docs")
    assert collection.count() == len(records)
    got = collection.get(ids=[r[0] for r in records], include=["embeddings", "documents", "metadatas"])
    assert sorted(got["ids"]) == sorted(r[0] for r in records)
    where = {identifier: index for index, identifier in enumerate(got["ids"])}
    order = [where[r[0]] for r in records]
    np.testing.assert_allclose(np.asarray(got["embeddings"])[order], np.stack([r[1] for r in records]), atol=1e-6)
    assert [got["documents"][i] for i in order] == [r[2] for r in records]
    expected = [{"source": r[4], **({"page": r[3]} if r[3] is not None else {})} for r in records]
    assert [got["metadatas"][i] for i in order] == expected


def test_a_load_killed_between_batches_reruns_to_exactly_the_records(tmp_path):
    records = _write_files(tmp_path / "vectors", [35, 25])  # batches of 10: 10, 10, 10, 5 | 10, 10, 5
    chroma, marker = tmp_path / "chroma", tmp_path / "marker"
    child = _run(tmp_path / "vectors", chroma, marker, batch=10, announce=4, stall=True)
    assert _kill_at_marker(child, marker) == -signal.SIGKILL
    assert _count_elsewhere(chroma) == 30  # the three upserts before the kill survived it

    rerun = _run(tmp_path / "vectors", chroma, marker, batch=10, announce=0, stall=False)
    out, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err[-3000:]
    assert out.split()[-1] == str(len(records))
    _assert_exactly(chroma, records)


def test_a_load_killed_while_it_upserts_reruns_to_exactly_the_records(tmp_path):
    records = _write_files(tmp_path / "vectors", [1500])
    chroma, marker = tmp_path / "chroma", tmp_path / "marker"
    child = _run(tmp_path / "vectors", chroma, marker, batch=3, announce=5, stall=False)  # killed while it writes
    assert _kill_at_marker(child, marker, delay=0.2) == -signal.SIGKILL, "the load finished before the kill"
    partial = _count_elsewhere(chroma)
    assert 12 <= partial < len(records)

    rerun = _run(tmp_path / "vectors", chroma, marker, batch=3, announce=0, stall=False)
    _, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err[-3000:]
    _assert_exactly(chroma, records)
