"""Batch embedding on Ray Data: one engine per actor, results to Parquet and Chroma.

Needs the `ray` extra (`pip install "vaembed[ray]"`). A corpus too large for
one process becomes a Ray Dataset of rows with a text column; `embed_dataset`
adds an embedding column with `map_batches` over `EmbedBatch`, a callable
class whose actors (a `ray.data.ActorPoolStrategy` pool) each load the model
once and embed batch after batch. The same code runs on a laptop
(`ray.init(num_cpus=2)`) and on a cluster (`ray.init(address="auto")`,
`num_gpus=1` per actor). `write_embeddings` stores ids, vectors and the other
columns as Parquet (the vectors as a `fixed_size_list<float32>` column that
any Arrow reader understands) and `load_into_chroma` fills a collection with
vectors, texts and metadata (see `vaembed.connectors.ray_store`).

Rows keep every other column exactly as they were (batches are Arrow tables,
so types, nulls and nested values go through untouched). Every actor gets the
vectors one process would compute with `Embedder.encode` and the same role,
prompt and post-processing: a text's embedding does not depend on which other
texts share its batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaembed.connectors.extras import missing_extra
from vaembed.connectors.options import ModelOptions, check_call_options
from vaembed.recipes.postprocess import PostProcess
from vaembed.recipes.prompts import ROLES, Role

try:
    import pyarrow as pa
    import ray.data
    from ray.data.extensions import ArrowTensorArray
except ImportError as error:
    raise missing_extra("ray", "Ray Data batch embedding", error) from error

from vaembed.connectors.ray_store import load_into_chroma, read_embeddings, write_embeddings

__all__ = ["EmbedBatch", "embed_dataset", "write_embeddings", "read_embeddings", "load_into_chroma"]

_MODEL_OPTIONS = ("max_length", "long_text", "device", "dtype", "model_kwargs", "trust_remote_code")


class EmbedBatch:
    """A Ray Data callable class: loads one engine per actor and embeds a column of texts.

    Args:
        options: Which model and recipe to load (see `vaembed.connectors.options.ModelOptions`).
        role: `"document"` or `"query"`.
        prompt: An instruction for every text (as `Embedder.encode`'s `prompt`), or None.
        batch_size: Most sequences per forward pass.
        normalize: L2-normalise the vectors.
        text_column: The column holding the texts.
        embedding_column: The column the vectors go to (a Ray tensor column: a
            `(dimension,)` float32 array per row, `(rows, dimension)` in numpy batches).
    """

    def __init__(
        self,
        options: ModelOptions,
        *,
        role: Role = "document",
        prompt: str | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        text_column: str = "text",
        embedding_column: str = "embedding",
    ) -> None:
        self.embedder = options.build()
        self.role: Role = role
        self.prompt = prompt
        self.batch_size = batch_size
        self.normalize = normalize
        self.text_column = text_column
        self.embedding_column = embedding_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Return the batch (an Arrow table) with its embedding column appended.

        Raises:
            KeyError: The text column is missing (the columns present are named).
            ValueError: The embedding column exists already.
            TypeError: A row's text is not a string (its index in the batch is named).
        """
        columns = batch.column_names
        if self.text_column not in columns:
            raise KeyError(f"no column {self.text_column!r} in the dataset; its columns are {sorted(columns)}")
        if self.embedding_column in columns:
            raise ValueError(
                f"the dataset already has a column {self.embedding_column!r}; choose another embedding_column"
            )
        texts = batch.column(self.text_column).to_pylist()
        vectors = self.embedder.encode(
            texts,
            role=self.role,
            prompt=self.prompt,
            batch_size=self.batch_size,
            normalize=self.normalize,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.embedder.dimension)
        return batch.append_column(self.embedding_column, ArrowTensorArray.from_numpy(vectors))


def _actor_pool(concurrency: int | tuple[int, int]) -> ray.data.ActorPoolStrategy:
    """A fixed pool of `concurrency` actors, or an autoscaling `(min, max)` one."""
    if isinstance(concurrency, tuple):
        low, high = concurrency
        return ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    return ray.data.ActorPoolStrategy(size=concurrency)


def embed_dataset(
    dataset: ray.data.Dataset,
    *,
    model: str | None = None,
    recipe: str | None = None,
    layers: Any = None,
    postprocess: PostProcess | None = None,
    role: Role = "document",
    query_prompt: str | None = None,
    document_prompt: str | None = None,
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
        dataset: Rows with a text column; every other column is kept as it is.
        model: A preset, `.gguf` file, model folder or hub id, reachable from every
            worker (default `$VAEMBED_MODEL`, else the default preset).
        recipe: A preset recipe (default `vaembed.DEFAULT_RECIPE`, `"hs-mean"`).
        layers: The recipe's layer set (default its own).
        postprocess: `"center"`, `"standardize"` or `"none"` (default the recipe's own).
        role: `"document"` or `"query"`: which of the recipe's templates, and
            which of the two prompts below, the texts get.
        query_prompt: Instruction for `role="query"`, as the LangChain, LlamaIndex
            and Chroma adapters take it: a template holding `{text}`, or a prefix.
        document_prompt: Instruction for `role="document"`.
        text_column: The column holding the texts.
        embedding_column: The column added (it must not exist yet).
        concurrency: Actors (engines) to run, or a `(min, max)` autoscaling range
            (a `ray.data.ActorPoolStrategy`).
        num_gpus: GPUs per actor; above 0 the engine runs on CUDA unless `device` says otherwise.
        num_cpus: CPUs per actor (Ray's default 1 when None).
        rows_per_batch: Rows handed to an actor per call.
        batch_size: Most sequences per forward pass inside a call.
        normalize: L2-normalise the vectors.
        preserve_order: Keep the input's row order in the output. Ray Data
            reads the order from a pipeline's `DataContext`, which every dataset
            derived from one source shares; so True sets
            `execution_options.preserve_order` on `dataset.context` (the input's
            pipeline, and every dataset derived from it, then runs in order;
            the global `DataContext` and other pipelines are left as they were).
            False leaves the context as it is.
        **options: More `ModelOptions` (`max_length`, `long_text`, `device`, `dtype`,
            `model_kwargs`, `trust_remote_code`).

    Raises:
        ValueError: A bad option (unknown names are named), role or batch size.
        TypeError: A prompt is not a str.
    """
    unknown = sorted(set(options) - set(_MODEL_OPTIONS))
    if unknown:
        raise ValueError(f"unknown options {unknown}; see vaembed.connectors.options.ModelOptions")
    if role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}, not {role!r}")
    check_call_options(batch_size, query_prompt, document_prompt)
    if num_gpus and not options.get("device"):
        options["device"] = "cuda"
    model_options = ModelOptions(model=model, recipe=recipe, layers=layers, postprocess=postprocess, **options)
    out = dataset.map_batches(
        EmbedBatch,
        fn_constructor_kwargs={
            "options": model_options,
            "role": role,
            "prompt": query_prompt if role == "query" else document_prompt,
            "batch_size": batch_size,
            "normalize": normalize,
            "text_column": text_column,
            "embedding_column": embedding_column,
        },
        batch_size=rows_per_batch,
        batch_format="pyarrow",
        compute=_actor_pool(concurrency),
        num_gpus=num_gpus,
        num_cpus=num_cpus,
    )
    if preserve_order:
        out.context.execution_options.preserve_order = True
    return out
