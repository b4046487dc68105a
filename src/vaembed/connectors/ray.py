"""Batch embedding on Ray Data: one engine per actor, results to Parquet and Chroma.

Needs the `ray` extra (`pip install "vaembed[ray]"`). A corpus too large for
one process becomes a Ray Dataset of rows with a text column; `embed_dataset`
adds an embedding column with `map_batches` over `EmbedBatch`, a callable
class whose actors each load the model once and embed batch after batch.
The same code runs on a laptop (`ray.init(num_cpus=2)`) and on a cluster
(`ray.init(address="auto")`, `num_gpus=1` per actor). `write_embeddings`
stores ids and vectors as Parquet (a `fixed_size_list<float32>` column that
any Arrow reader understands) and `load_into_chroma` fills a collection.

Every actor gets exactly the vectors one process would compute: a text's
embedding does not depend on which other texts share its batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vaembed.connectors.extras import missing_extra
from vaembed.connectors.options import ModelOptions
from vaembed.recipes.prompts import Role

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.data
except ImportError as error:
    raise missing_extra("ray", "Ray Data batch embedding", error) from error

__all__ = ["EmbedBatch", "embed_dataset", "write_embeddings", "read_embeddings", "load_into_chroma"]


class EmbedBatch:
    """A Ray Data callable class: loads one engine per actor and embeds a column of texts.

    Args:
        options: Which model and recipe to load (see `vaembed.connectors.options.ModelOptions`).
        role: `"document"` or `"query"`.
        batch_size: Most sequences per forward pass.
        normalize: L2-normalise the vectors.
        text_column: The column holding the texts.
        embedding_column: The column the vectors go to, shape `(rows, dimension)`.
    """

    def __init__(
        self,
        options: ModelOptions,
        *,
        role: Role = "document",
        batch_size: int = 32,
        normalize: bool = True,
        text_column: str = "text",
        embedding_column: str = "embedding",
    ) -> None:
        self.embedder = options.build()
        self.role: Role = role
        self.batch_size = batch_size
        self.normalize = normalize
        self.text_column = text_column
        self.embedding_column = embedding_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return the batch with its embedding column added.

        Raises:
            KeyError: The text column is missing (the columns present are named).
            TypeError: A row's text is not a string.
        """
        if self.text_column not in batch:
            raise KeyError(f"no column {self.text_column!r} in the dataset; its columns are {sorted(batch)}")
        texts = batch[self.text_column].tolist()
        vectors = self.embedder.encode(texts, role=self.role, batch_size=self.batch_size, normalize=self.normalize)
        return {**batch, self.embedding_column: np.asarray(vectors, dtype=np.float32)}


def embed_dataset(
    dataset: ray.data.Dataset,
    *,
    model: str | None = None,
    recipe: str | None = None,
    layers: Any = None,
    role: Role = "document",
    text_column: str = "text",
    embedding_column: str = "embedding",
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float = 0,
    num_cpus: float | None = None,
    rows_per_batch: int = 256,
    batch_size: int = 32,
    normalize: bool = True,
    preserve_order: bool = True,
    **options: Any,
) -> ray.data.Dataset:
    """Add an embedding column to a Ray Dataset of texts (lazily, like every Ray Data step).

    Args:
        dataset: Rows with a text column (and any others, kept as they are).
        model: A preset, `.gguf` file, model folder or hub id, reachable from every
            worker (default `$VAEMBED_MODEL`, else the default preset).
        recipe: A preset recipe (default `"va"`).
        layers: The recipe's layer set (default its own).
        role: `"document"` or `"query"`.
        text_column: The column holding the texts.
        embedding_column: The column added.
        concurrency: Actors (engines) to run, or a `(min, max)` autoscaling range.
        num_gpus: GPUs per actor; above 0 the engine runs on CUDA unless `device` says otherwise.
        num_cpus: CPUs per actor (Ray's default 1 when None).
        rows_per_batch: Rows handed to an actor per call.
        batch_size: Most sequences per forward pass inside a call.
        normalize: L2-normalise the vectors.
        preserve_order: Keep the input's row order in the output. Ray Data
            reads this from a dataset's `DataContext`, which a transformation
            shares with the dataset it came from; so the returned dataset gets
            its own copy of that context with `execution_options.preserve_order`
            set, which the datasets derived from it (e.g. `write_embeddings`)
            inherit. `dataset`'s context, the global `DataContext` and any
            other dataset are left as they were. With False, the output
            follows `dataset`'s context (Ray's default: whatever order
            batches finish in).
        **options: More `ModelOptions` (`postprocess`, `max_length`, `long_text`, `device`, `dtype`,
            `model_kwargs`).

    Raises:
        ValueError: A bad option (unknown names are named).
    """
    unknown = sorted(set(options) - {"postprocess", "max_length", "long_text", "device", "dtype", "model_kwargs"})
    if unknown:
        raise ValueError(f"unknown options {unknown}; see vaembed.connectors.options.ModelOptions")
    if num_gpus and not options.get("device"):
        options["device"] = "cuda"
    model_options = ModelOptions(model=model, recipe=recipe, layers=layers, **options)
    out = dataset.map_batches(
        EmbedBatch,
        fn_constructor_kwargs={
            "options": model_options,
            "role": role,
            "batch_size": batch_size,
            "normalize": normalize,
            "text_column": text_column,
            "embedding_column": embedding_column,
        },
        batch_size=rows_per_batch,
        batch_format="numpy",
        concurrency=concurrency,
        num_gpus=num_gpus,
        num_cpus=num_cpus,
    )
    if preserve_order:
        out = _with_own_context(out)
        out.context.execution_options.preserve_order = True
    return out


def _with_own_context(dataset: ray.data.Dataset) -> ray.data.Dataset:
    """The same lazy dataset with a copy of its `DataContext`, so changing it touches no other dataset.

    `Dataset.copy(_deep_copy=True)` is what Ray Data itself uses to give a
    dataset its own context (e.g. in `materialize`); it copies the logical
    plan object (not its operators) and the execution cache, and executes nothing.
    """
    import ray.data

    return ray.data.Dataset.copy(dataset, _deep_copy=True)


def _as_arrow_batch(batch: dict[str, np.ndarray], id_column: str, embedding_column: str, keep: tuple[str, ...]) -> Any:
    for name in (id_column, embedding_column):
        if name not in batch:
            raise KeyError(f"no column {name!r} in the dataset; its columns are {sorted(batch)}")
    vectors = np.asarray(batch[embedding_column], dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"column {embedding_column!r} must hold one vector per row, not shape {vectors.shape}")
    columns = {id_column: pa.array(batch[id_column].tolist())}
    columns[embedding_column] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    for name in keep:
        if name in batch and name not in columns:
            columns[name] = pa.array(batch[name].tolist())
    return pa.table(columns)


def write_embeddings(
    dataset: ray.data.Dataset,
    path: str | os.PathLike[str],
    *,
    id_column: str = "id",
    embedding_column: str = "embedding",
    keep_columns: tuple[str, ...] = ("text",),
) -> None:
    """Write ids, vectors and the `keep_columns` present as Parquet files under `path`.

    Vectors are stored as `fixed_size_list<float32>[dimension]`, which pandas,
    DuckDB, Spark and pyarrow read without Ray.

    A missing id or embedding column fails the write with a `KeyError` naming the columns present.
    """
    table = dataset.map_batches(
        _as_arrow_batch,
        fn_args=(id_column, embedding_column, tuple(keep_columns)),
        batch_format="numpy",
    )
    table.write_parquet(os.fspath(path))


def read_embeddings(
    path: str | os.PathLike[str], *, id_column: str = "id", embedding_column: str = "embedding"
) -> Iterator[tuple[list[str], np.ndarray, dict[str, list[Any]]]]:
    """Read what `write_embeddings` wrote, file by file, without Ray.

    Yields:
        `(ids, vectors (rows, dimension) float32, other columns by name)` per file.
    """
    files = sorted(Path(path).glob("*.parquet")) if Path(path).is_dir() else [Path(path)]
    if not files:
        raise FileNotFoundError(f"no .parquet files in {os.fspath(path)!r}")
    for file in files:
        table = pq.read_table(file)
        vectors = table.column(embedding_column).combine_chunks()
        width = vectors.type.list_size
        flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        others = {name: table.column(name).to_pylist() for name in table.column_names}
        ids = [str(value) for value in others.pop(id_column)]
        others.pop(embedding_column)
        yield ids, flat.reshape(-1, width), others


def load_into_chroma(
    path: str | os.PathLike[str], collection: Any, *, text_column: str = "text", batch_size: int | None = None
) -> int:
    """Upsert the vectors (and texts, when stored) of `write_embeddings` into a Chroma collection.

    Give the collection the same embedding space for queries, e.g.
    `embedding_function=vaembed.chroma.VAEmbeddingFunction(model=..., recipe=...)`.

    Returns:
        The number of records written.
    """
    limit = batch_size or getattr(getattr(collection, "_client", None), "get_max_batch_size", lambda: 5000)()
    written = 0
    for ids, vectors, others in read_embeddings(path):
        texts = others.get(text_column)
        for start in range(0, len(ids), limit):
            stop = start + limit
            documents = texts[start:stop] if texts is not None else None
            collection.upsert(ids=ids[start:stop], embeddings=vectors[start:stop], documents=documents)
            written += len(ids[start:stop])
    return written
