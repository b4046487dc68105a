"""An `Embedder` behind mteb's encoder protocol, so real MTEB tasks can score any recipe.

    import mteb
    from vaembed.connectors.mteb import MTEBEncoder

    model = MTEBEncoder.from_pretrained("smollm2-135m", recipe="aligned-wva")
    results = mteb.evaluate(model, mteb.get_tasks(tasks=["STSBenchmark"]))

mteb (`pip install "vaembed[mteb]"`) is imported only when an encoder is built.
Queries (`PromptType.query`) are embedded with the recipe's query template,
everything else as documents. Optional instructions follow mteb's priority for
sentence-transformers models: `"{task}-{query|document}"`, then the task name,
then `"{task type}-{query|document}"`, then the task type, then
`"query"` / `"document"`; an instruction goes inside the recipe's template
(see `Embedder.encode`'s `prompt`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from vaembed.connectors.extras import require
from vaembed.embedder import Embedder

__all__ = ["MTEBEncoder"]


def _mteb() -> Any:
    return require("mteb", "The mteb adapter", "mteb")


class MTEBEncoder:
    """mteb's `EncoderProtocol` over an `Embedder`.

    Args:
        embedder: The engine (any recipe, model and layers).
        prompts: Optional instructions keyed as described in the module docstring.
        batch_size: Default sequences per forward pass (mteb's `batch_size` overrides it).
    """

    def __init__(self, embedder: Embedder, *, prompts: Mapping[str, str] | None = None, batch_size: int = 32) -> None:
        _mteb()
        if not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must be a vaembed Embedder, not {type(embedder).__name__}")
        for key, value in (prompts or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"prompts must map str to str; got {key!r}: {type(value).__name__}")
        self.embedder = embedder
        self.prompts = dict(prompts or {})
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, model: str, *, prompts: Mapping[str, str] | None = None, **options: Any) -> MTEBEncoder:
        """Load a model with `Embedder.from_pretrained(model, **options)` and wrap it."""
        return cls(Embedder.from_pretrained(model, **options), prompts=prompts)

    @property
    def mteb_model_meta(self) -> Any:
        """Mteb's `ModelMeta` of this model and recipe (named `vaembed/<model>-<recipe>`)."""
        mteb = _mteb()
        engine = self.embedder
        name = str(engine.name).rstrip("/").split("/")[-1]
        return mteb.models.model_meta.ModelMeta(
            loader=None,
            name=f"vaembed/{name}-{engine.recipe.name}",
            revision="layers-" + "-".join(map(str, engine.layers)),
            release_date=None,
            languages=None,
            n_parameters=sum(p.numel() for p in engine.model.parameters()),
            memory_usage_mb=None,
            max_tokens=engine.max_length,
            embed_dim=engine.dimension,
            license=None,
            open_weights=True,
            public_training_code=None,
            public_training_data=None,
            framework=["PyTorch"],
            similarity_fn_name="cosine",
            use_instructions=bool(self.prompts),
            training_datasets=None,
        )

    def instruction(self, task_name: str, task_type: str, role: str) -> str | None:
        """The instruction for a task and role, by mteb's priority order, or None."""
        for key in (f"{task_name}-{role}", task_name, f"{task_type}-{role}", task_type, role):
            if key in self.prompts:
                return self.prompts[key]
        return None

    def encode(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed the texts of mteb's batches (a DataLoader of `{"text": [...]}`) as unit float32 rows.

        Raises:
            ValueError: A batch holds no `text` field (images, audio) or a text is not a str.
        """
        role = "query" if str(getattr(prompt_type, "value", prompt_type)) == "query" else "document"
        texts: list[str] = []
        for number, batch in enumerate(inputs):
            if not isinstance(batch, Mapping) or "text" not in batch:
                fields = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
                raise ValueError(f"vaembed embeds text only; batch {number} holds {fields}")
            for text in batch["text"]:
                if not isinstance(text, str):
                    raise ValueError(f"batch {number} holds a {type(text).__name__} where a text was expected")
                texts.append(text)
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        prompt = self.instruction(task_metadata.name, task_metadata.type, role)
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        return self.embedder.encode(texts, role=role, prompt=prompt, batch_size=batch_size)  # type: ignore[return-value]

    def similarity(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        """Cosine similarity of every row of the first set with every row of the second."""
        first, second = _rows(embeddings1), _rows(embeddings2)
        return torch.nn.functional.normalize(first, dim=1) @ torch.nn.functional.normalize(second, dim=1).T

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        """Cosine similarity of corresponding rows."""
        first, second = _rows(embeddings1), _rows(embeddings2)
        return torch.nn.functional.cosine_similarity(first, second, dim=1)

    def __repr__(self) -> str:
        return f"MTEBEncoder({self.embedder!r})"


def _rows(embeddings: Any) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
    return tensor.float().reshape(-1, tensor.shape[-1])
