"""Embedded rows to Parquet files and into Chroma (the storage half of `vaembed.connectors.ray`).

`write_embeddings` writes a Ray Dataset's ids, vectors and other columns as
Parquet, the vectors as `fixed_size_list<float32>[dimension]`, which pandas,
DuckDB, Spark and pyarrow read without Ray. `read_embeddings` reads them back
file by file with pyarrow alone, and `load_into_chroma` upserts them into a
Chroma collection: ids, vectors, texts and metadata.

`load_into_chroma` is safe to re-run: it upserts by id, so a load killed half
way and run again ends with exactly the files' records, none lost and none
doubled. It uses the collection's public API only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vaembed.connectors.extras import missing_extra

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
except ImportError as error:
    raise missing_extra("ray", "Ray Data batch embedding", error) from error

__all__ = ["CHROMA_BATCH", "load_into_chroma", "metadata_columns_of", "read_embeddings", "write_embeddings"]

CHROMA_BATCH = 1000
"""Records per `upsert` call by default (below any Chroma server's maximum batch size)."""


def _vectors(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """A column of equal-length float lists (plain or a Ray tensor column) as a `(rows, dimension)` array.

    Raises:
        ValueError: The column does not hold one vector of one length per row.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = getattr(array.type, "shape", None)  # a Ray tensor column knows its shape
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    if not (
        pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type)
    ):
        raise ValueError(f"column {name!r} must hold one vector per row, not {array.type}")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    width = int(lengths[0]) if len(lengths) else int(shape[-1]) if shape else 0
    if array.null_count or (lengths != width).any():
        raise ValueError(f"column {name!r} must hold one vector of one length per row, without nulls")
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(array), width)


def _as_stored_batch(table: pa.Table, id_column: str, embedding_column: str, keep: tuple[str, ...] | None) -> pa.Table:
    names = table.column_names
    wanted = [id_column, embedding_column, *(keep if keep is not None else names)]
    missing = [name for name in dict.fromkeys(wanted) if name not in names]
    if missing:
        raise KeyError(f"no column {missing[0]!r} in the dataset; its columns are {sorted(names)}")
    vectors = _vectors(table.column(embedding_column), embedding_column)
    columns = {id_column: table.column(id_column)}
    columns[embedding_column] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    for name in wanted:
        if name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def write_embeddings(
    dataset: Any,
    path: str | os.PathLike[str],
    *,
    id_column: str = "id",
    embedding_column: str = "embedding",
    keep_columns: Sequence[str] | None = None,
) -> None:
    """Write ids, vectors and the other columns of a Ray Dataset as Parquet files under `path`.

    Args:
        dataset: A Ray Dataset with id and embedding columns (e.g. `embed_dataset`'s output).
        path: The folder the files go to.
        id_column: The column of record ids.
        embedding_column: The column of vectors.
        keep_columns: The other columns to store (texts, metadata); None stores all of them.

    A missing column fails the write with a `KeyError` naming the columns present.
    """
    keep = tuple(keep_columns) if keep_columns is not None else None
    table = dataset.map_batches(_as_stored_batch, fn_args=(id_column, embedding_column, keep), batch_format="pyarrow")
    table.write_parquet(os.fspath(path))


def _files(path: str | os.PathLike[str]) -> list[Path]:
    files = sorted(Path(path).glob("*.parquet")) if Path(path).is_dir() else [Path(path)]
    if not files:
        raise FileNotFoundError(f"no .parquet files in {os.fspath(path)!r}")
    return files


def read_embeddings(
    path: str | os.PathLike[str], *, id_column: str = "id", embedding_column: str = "embedding"
) -> Iterator[tuple[list[str], np.ndarray, dict[str, list[Any]]]]:
    """Read what `write_embeddings` wrote, file by file, with pyarrow (no Ray instance needed).

    Yields:
        `(ids, vectors (rows, dimension) float32, other columns by name)` per file.
    """
    for file in _files(path):
        table = pq.read_table(file)
        vectors = _vectors(table.column(embedding_column), embedding_column)
        others = {name: table.column(name).to_pylist() for name in table.column_names}
        ids = [str(value) for value in others.pop(id_column)]
        others.pop(embedding_column)
        yield ids, vectors, others


def _is_metadata_type(kind: pa.DataType) -> bool:
    """Whether Chroma stores values of this Arrow type as metadata: str, int, float, bool, or lists of them."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind = kind.value_type
    scalar = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_floating)
    return any(test(kind) for test in (*scalar, pa.types.is_boolean))


def metadata_columns_of(
    schema: pa.Schema, skip: Sequence[str], metadata_columns: Sequence[str] | None = None
) -> list[str]:
    """The columns `load_into_chroma` stores as metadata.

    Args:
        schema: A file's schema.
        skip: The id, text and embedding columns.
        metadata_columns: Names to store; None means every other column whose
            type Chroma stores (str, int, float, bool, or a list of one of them).

    Raises:
        KeyError: A named column is missing (the columns present are named).
        ValueError: A named column's type is not one Chroma stores.
    """
    if metadata_columns is None:
        return [field.name for field in schema if field.name not in skip and _is_metadata_type(field.type)]
    for name in metadata_columns:
        if name not in schema.names:
            raise KeyError(f"no metadata column {name!r} in the files; their columns are {sorted(schema.names)}")
        if not _is_metadata_type(schema.field(name).type):
            raise ValueError(f"metadata column {name!r} holds {schema.field(name).type}, which Chroma cannot store")
    return list(metadata_columns)


def _metadatas(table: pa.Table, names: list[str]) -> list[dict[str, Any] | None] | None:
    """One metadata dict per row, without its nulls and empty lists (which Chroma refuses); None for a row with none."""
    if not names:
        return None
    columns = {name: table.column(name).to_pylist() for name in names}
    rows = [
        {name: values[row] for name, values in columns.items() if values[row] is not None and values[row] != []}
        for row in range(len(table))
    ]
    return [row or None for row in rows] if any(rows) else None


def load_into_chroma(
    path: str | os.PathLike[str],
    collection: Any,
    *,
    id_column: str = "id",
    text_column: str = "text",
    embedding_column: str = "embedding",
    metadata_columns: Sequence[str] | None = None,
    batch_size: int = CHROMA_BATCH,
) -> int:
    """Upsert the vectors, texts and metadata of `write_embeddings`' files into a Chroma collection.

    Give the collection the same embedding space for queries, e.g.
    `embedding_function=VAEmbeddingFunction(model=..., recipe=...)` from
    `vaembed.connectors.chroma`. Every file's columns are checked before the
    first record is written. Records are upserted by id, `batch_size` at a
    time, so a load that was killed can simply run again.

    Args:
        path: A Parquet file or a folder of them.
        collection: A Chroma collection.
        id_column: The column of record ids (stored as strings).
        text_column: The column stored as each record's document, when present.
        embedding_column: The column of vectors.
        metadata_columns: The columns stored as each record's metadata (nulls and
            empty lists are left out). None (the default) stores every column other than the
            id, text and embedding ones whose type Chroma stores (str, int, float,
            bool, or a list of one of them); `()` stores none.
        batch_size: Records per `upsert` call (at most the Chroma client's `get_max_batch_size()`).

    Returns:
        The number of records written.

    Raises:
        KeyError: A needed or named column is missing from a file.
        ValueError: A bad batch size, or a named metadata column Chroma cannot store.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    files = _files(path)
    plans = []
    for file in files:
        schema = pq.read_schema(file)
        for name in (id_column, embedding_column):
            if name not in schema.names:
                raise KeyError(f"no column {name!r} in {file.name}; its columns are {sorted(schema.names)}")
        plans.append((file, metadata_columns_of(schema, (id_column, text_column, embedding_column), metadata_columns)))
    written = 0
    for file, names in plans:
        table = pq.read_table(file)
        for start in range(0, len(table), batch_size):
            part = table.slice(start, batch_size)
            texts = part.column(text_column).to_pylist() if text_column in part.column_names else None
            collection.upsert(
                ids=[str(value) for value in part.column(id_column).to_pylist()],
                embeddings=_vectors(part.column(embedding_column), embedding_column),
                documents=texts,
                metadatas=_metadatas(part, names),
            )
            written += len(part)
    return written
