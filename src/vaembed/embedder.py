"""`Embedder`: training-free text embeddings from a frozen decoder-only LLM."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import torch

from vaembed.calibration.auto import ProfileSource, auto_layers, obtain_profile
from vaembed.calibration.profile import CalibrationProfile, default_profile_path
from vaembed.calibration.quantization import Precision, check_precision, check_ranges, encode_output
from vaembed.calibration.run import calibrate
from vaembed.calibration.statistics import EmbeddingStatistics
from vaembed.calibration.statistics_slot import StatisticsSlot
from vaembed.engine.attention import SUPPORTED_MODEL_TYPES
from vaembed.engine.batching import check_encode_options, check_texts, combine_chunks
from vaembed.engine.forward_pass import PassPlan, PlanReader
from vaembed.engine.runner import Runner, runner_property
from vaembed.engine.tokenization import LONG_TEXT_POLICIES, LongTextPolicy, PaddingSide, TokenSequence
from vaembed.lexical import encode_sparse
from vaembed.models.registry import DEFAULT_MODEL
from vaembed.models.shared import LoadedModel, load_model
from vaembed.recipes.layers import LayerSpec
from vaembed.recipes.postprocess import PostProcess
from vaembed.recipes.presets import DEFAULT_RECIPE, get_recipe
from vaembed.recipes.prompts import Prompt, Role
from vaembed.recipes.recipe import Recipe

__all__ = ["Embedder", "DEFAULT_RECIPE"]


class Embedder:
    """Embeds texts with one recipe read from a frozen causal LM.

    Build it with `Embedder.from_pretrained`; wrap an already loaded base model
    with the constructor.

    Args:
        model: A base decoder model (no LM head) of a supported family.
        tokenizer: Its fast tokenizer.
        recipe: A preset name or a `Recipe`.
        layers: Overrides the recipe's layer set that `layers=` sets (see
            `Recipe.layers_option_target`).
        max_length: Maximum tokens per input, prompt included; default the
            model's context, capped at 8192.
        long_text: What to do with longer inputs: `"truncate"` (warns once per
            call), `"chunk"` (token-weighted mean of windows), or `"error"`.
        padding_side: Side padding goes on; embeddings do not depend on it.
        name: The model's name for reports and calibration profiles.
        calibration: Where `layers="auto"` gets its layers: None (the cached
            profile of this model, computed once when missing), a profile JSON
            path, or a `CalibrationProfile`.
        postprocess: `"center"` or `"standardize"` (with this model's statistics
            over the bundled corpus, computed once per recipe and layer set and
            cached), `"none"`, or None for the recipe's own choice.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        recipe: str | Recipe = DEFAULT_RECIPE,
        layers: LayerSpec | None = None,
        *,
        max_length: int | None = None,
        long_text: LongTextPolicy = "truncate",
        padding_side: PaddingSide = "right",
        name: str | None = None,
        calibration: ProfileSource = None,
        postprocess: PostProcess | None = None,
    ) -> None:
        if long_text not in LONG_TEXT_POLICIES:
            raise ValueError(f"long_text must be one of {', '.join(LONG_TEXT_POLICIES)}, not {long_text!r}")
        self.runner = Runner(model, tokenizer, max_length=max_length, padding_side=padding_side, name=name)
        self.shared: LoadedModel | None = None
        self.long_text: LongTextPolicy = long_text
        self.calibration_source = calibration
        self.calibration_profile: CalibrationProfile | None = None
        self._set_recipe(recipe, layers, postprocess)

    def _set_recipe(self, recipe: str | Recipe, layers: LayerSpec | None, postprocess: PostProcess | None) -> None:
        base = get_recipe(recipe)
        base = base.with_layers(layers) if layers is not None else base
        self.recipe = base.with_postprocess(postprocess) if postprocess is not None else base
        auto = None
        if self.recipe.needs_calibration:
            if self.calibration_profile is None:
                self.calibration_profile = obtain_profile(self.runner, self.calibration_source)
            auto = auto_layers(self.calibration_profile, self.recipe)
        self.plan = PassPlan(self.recipe.resolve(self.num_layers, auto), self.num_layers)
        self.postprocessing = StatisticsSlot(self.runner, self.plan.recipe, self.recipe.postprocess)

    @property
    def statistics(self) -> EmbeddingStatistics | None:
        """The post-processing statistics (None for `postprocess="none"`), obtained on first use."""
        return self.postprocessing.statistics

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        recipe: str | Recipe = DEFAULT_RECIPE,
        layers: LayerSpec | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int | None = None,
        long_text: LongTextPolicy = "truncate",
        padding_side: PaddingSide = "right",
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        calibration: ProfileSource = None,
        postprocess: PostProcess | None = None,
        share: bool = True,
    ) -> Embedder:
        """Load a model and build an embedder.

        With `share` (the default), embedders in one process that load the same
        model on the same device and dtype hold one copy of its weights.

        Args:
            model: A preset name (`vaembed models` lists them), a local `.gguf`
                file, a local model folder, or a Hugging Face hub id.
            recipe: A preset (`hs-mean`, `hs-last`, `prompteol`, `echo`,
                `token-prepending`, `va`, `wva`, `aligned-wva`, `kv`) or a `Recipe`.
            layers: Overrides the recipe's layer set (see the class docstring).
            device: Default CUDA when available, else CPU.
            dtype: Default bfloat16 on CUDA, float32 on CPU.
            max_length: See the class docstring.
            long_text: See the class docstring.
            padding_side: See the class docstring.
            trust_remote_code: Allow a checkpoint's own Python code (off by default).
            model_kwargs: Extra arguments for `transformers.AutoModel.from_pretrained`.
            calibration: See the class docstring.
            postprocess: See the class docstring.
            share: Reuse this process's loaded copy of the model (see
                `vaembed.models.shared`); False loads a private copy.
        """
        loaded, tokenizer, shared = load_model(
            model,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs,
            share=share,
            supported=SUPPORTED_MODEL_TYPES,
        )
        embedder = cls(
            loaded,
            tokenizer,
            recipe,
            layers,
            max_length=max_length,
            long_text=long_text,
            padding_side=padding_side,
            name=os.fspath(model),
            calibration=calibration,
            postprocess=postprocess,
        )
        embedder.shared = shared  # keeps the shared copy alive while this embedder lives
        return embedder

    def with_recipe(
        self, recipe: str | Recipe, layers: LayerSpec | None = None, postprocess: PostProcess | None = None
    ) -> Embedder:
        """Return an embedder with another recipe that shares this one's model, runner and settings."""
        other = object.__new__(Embedder)
        other.__dict__.update(self.__dict__)
        other._set_recipe(recipe, layers, postprocess)
        return other

    def fit_postprocess(
        self, texts: Iterable[str], mode: PostProcess | None = None, *, max_tokens: int = 128
    ) -> EmbeddingStatistics:
        """Post-process with statistics of your own texts instead of the bundled corpus (not saved).

        Args:
            texts: At least 3 distinct texts (a few hundred of your documents).
            mode: `"center"` or `"standardize"`; None keeps the recipe's mode.
            max_tokens: Tokens each text is cut to.

        Raises:
            ValueError: Fewer than 3 distinct texts, or no post-processing mode.
        """
        recipe = self.recipe.with_postprocess(mode) if mode is not None else self.recipe
        self.postprocessing = self.postprocessing.fitted(texts, recipe.postprocess, max_tokens=max_tokens)
        self.recipe = recipe
        return cast(EmbeddingStatistics, self.postprocessing.statistics)

    def calibrate(
        self,
        texts: Iterable[str] | None = None,
        n: int | None = None,
        *,
        save: bool = True,
        path: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> CalibrationProfile:
        """Choose this model's layers by intrinsic dimension, and use them from now on.

        The profile replaces this embedder's current one, so `layers="auto"` recipes re-resolve.

        Args:
            texts: Your own texts (at least 200 recommended); the bundled corpus when None.
            n: Use only the first `n` texts.
            save: Write the profile (to `path`, else to the model's default
                profile file, which later `layers="auto"` loads).
            path: Where to save it.
            **options: The probe's settings (`prompts`, `max_tokens`, `resamples`,
                `batch_size`, ...): see `vaembed.calibration.run.calibrate`.

        Returns:
            The profile (curves, chosen layers per preset, corpus, model identity, timing).
        """
        profile = calibrate(self.runner, texts, n=n, **options)
        if save:
            profile.save(path if path is not None else default_profile_path(profile.model))
        self.calibration_profile = profile
        if self.recipe.needs_calibration:
            self._set_recipe(self.recipe, None, None)
        return profile

    # -- what the runner holds (read through; the last two can be set) --------------------
    model = runner_property("model", "The base model.")
    tokenizer = runner_property("tokenizer", "The model's tokenizer.")
    name = runner_property("name", "The model's name (reports, calibration profiles, adapters' configs).")
    num_layers = runner_property("num_layers", "The model's number of decoder layers.")
    max_length = runner_property("max_length", "Most tokens per input, prompt included.")
    device = runner_property("device", "The device the model runs on.")
    text_tokenizer = runner_property("text_tokenizer", "The runner's `TextTokenizer` (texts to model inputs).")
    forward_passes = runner_property(
        "forward_passes", "Forward passes run by this embedder's runner (shared with `with_recipe` copies).", True
    )
    batch_token_budget = runner_property(
        "batch_token_budget", "Padded tokens per batch beyond its first row: 512 on CPU, 16384 on GPU.", True
    )

    @property
    def layers(self) -> list[int]:
        """The concrete layers that the `layers` option sets for this recipe.

        The readout layers, or the rerouted layers of a KV recipe that reads the
        final layer (`Recipe.layers_option_target`). Passing them back as
        `layers=` rebuilds this embedder without its calibration profile.
        """
        return list(self.plan.recipe.option_layers)

    @property
    def dimension(self) -> int:
        """Size of the embeddings this recipe produces."""
        return self.recipe.readout.dimension(self.model.config)

    def get_sentence_embedding_dimension(self) -> int:
        """Alias of `dimension`, as in sentence-transformers."""
        return self.dimension

    # -- embedding ------------------------------------------------------------------
    def encode(
        self,
        texts: str | Iterable[str],
        *,
        role: Role = "document",
        prompt: str | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        precision: Precision = "float32",
        ranges: np.ndarray | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts.

        Args:
            texts: A string or a list of strings.
            role: `"document"` or `"query"`; selects the prompt template.
            prompt: An instruction for this call: a template holding `{text}`, or
                a prefix put before each text verbatim. It goes inside the
                recipe's own template (see `Prompt.with_instruction`).
            batch_size: Most sequences per forward pass (sorted by length, padded per
                batch); batches of long inputs hold fewer (`batch_token_budget`
                padded tokens: 512 on CPU, 16384 on GPU; set the attribute to change it).
            normalize: L2-normalise the embeddings.
            show_progress_bar: None shows a bar on jobs of more than 8 batches.
            convert_to_numpy: Return a numpy array, else a CPU torch tensor.
            convert_to_tensor: Return a CPU torch tensor (overrides `convert_to_numpy`).
            precision: `"float32"`, or codes (`vaembed.calibration.quantization`): `"int8"`/`"uint8"`
                (255 steps per dimension), `"binary"`/`"ubinary"` (sign bits, 8 per byte).
            ranges: int8/uint8 only: `(2, dimension)` lows and highs per dimension; default
                `quantization_ranges(normalize)`, this embedder's over the bundled corpus.

        Returns:
            Shape (n, dimension), or (dimension,) for a single string; binary codes hold
            `ceil(dimension / 8)` bytes per text.

        Raises:
            TypeError: `texts` or an item of it is not a str (the index is named), or `prompt` is not a str.
            ValueError: Bad `role`, `batch_size`, `prompt`, `precision` or `ranges`; a text holding a
                lone surrogate (not valid Unicode; its index is named); too long a text with `long_text="error"`.
            FloatingPointError: The model produced NaN or Inf.
        """
        items, single = check_texts(texts)
        check_encode_options(role, batch_size)
        integer = check_precision(precision) in ("int8", "uint8")
        ranges = check_ranges(ranges, self.dimension) if integer and ranges is not None else ranges
        as_tensor = convert_to_tensor or not convert_to_numpy
        if not items:  # no codes to bucket: no corpus pass for the default ranges
            empty = np.zeros((2, self.dimension)) if ranges is None else ranges
            return encode_output(torch.zeros((0, self.dimension)), precision, empty, as_tensor=as_tensor)
        ranges = self.quantization_ranges(normalize) if integer and ranges is None else ranges
        sequences, shortened = self.tokenize(items, role=role, prompt=prompt)
        if shortened and self.long_text == "truncate":
            warnings.warn(
                f"{shortened} of {len(items)} texts were truncated to max_length={self.max_length} tokens",
                stacklevel=2,
            )
        embeddings = self.embed_sequences(
            sequences, len(items), batch_size=batch_size, normalize=normalize, show_progress_bar=show_progress_bar
        )
        return encode_output(embeddings[0] if single else embeddings, precision, ranges, as_tensor=as_tensor)

    def quantization_ranges(self, normalize: bool = True) -> np.ndarray:
        """Per-dimension `(2, dimension)` lows and highs of `encode`'s vectors over the bundled corpus (int8 codes)."""
        return self.postprocessing.ranges(normalize)

    def encode_query(self, texts: str | Iterable[str], **kwargs: Any) -> np.ndarray | torch.Tensor:
        """Embed queries (`encode` with `role="query"`)."""
        return self.encode(texts, role="query", **kwargs)

    def encode_document(self, texts: str | Iterable[str], **kwargs: Any) -> np.ndarray | torch.Tensor:
        """Embed documents (`encode` with `role="document"`)."""
        return self.encode(texts, role="document", **kwargs)

    def encode_sparse(self, texts: str | Iterable[str], **kwargs: Any) -> Any:
        """Lexical sparse vectors (scipy CSR, texts x vocabulary) from a PromptEOL pass: `vaembed.lexical`."""
        return encode_sparse(self, texts, **kwargs)

    def tokenize(
        self, texts: list[str], *, role: Role = "document", prompt: str | None = None
    ) -> tuple[list[TokenSequence], int]:
        """First half of `encode`: texts to model inputs under the recipe's prompt and the long-text policy.

        Returns:
            The sequences (several for a chunked text; `source` is the text's
            index) and how many texts were truncated or chunked.

        Raises:
            ValueError: A text is too long under `long_text="error"` (its index is named).
        """
        template: Prompt = self.recipe.prompt
        if prompt is not None:
            template = template.with_instruction(prompt, role)
        return self.runner.text_tokenizer.encode(texts, template, role, self.long_text)

    def embed_sequences(
        self,
        sequences: list[TokenSequence],
        count: int,
        *,
        batch_size: int = 32,
        normalize: bool = True,
        show_progress_bar: bool | None = False,
    ) -> torch.Tensor:
        """Second half of `encode`: one float32 CPU row per text from `tokenize`'s sequences.

        Sequences from several `tokenize` calls can be embedded together once their
        `source` indices are made distinct (`0..count-1`); each text's vector does
        not depend on which other sequences share its batches.

        Raises:
            FloatingPointError: The model produced NaN or Inf (the texts' indices are named).
        """
        (readings,) = self.runner.read(
            sequences, [self.plan], batch_size=batch_size, show_progress_bar=show_progress_bar
        )
        transform = self.postprocessing.transform
        vectors = transform(readings.vectors) if transform is not None else readings.vectors
        return combine_chunks(sequences, vectors, count, normalize)

    def run_pass(self, sequences: list[TokenSequence], plan: PassPlan | None = None) -> PlanReader:
        """Run one forward pass over one batch of `sequences`; return what `plan` (default: this recipe's) read."""
        return self.runner.run_passes(sequences, [plan or self.plan])[0]

    def run_passes(self, sequences: list[TokenSequence], plans: Sequence[PassPlan]) -> list[PlanReader]:
        """Run one forward pass over one batch read by several plans; one reader per plan (`Runner.run_passes`).

        Raises:
            ValueError: The plans cannot share a pass (the differing field is named).
        """
        return self.runner.run_passes(sequences, plans)

    def __repr__(self) -> str:
        return (
            f"Embedder(model={self.name!r}, recipe={self.recipe.name!r}, layers={list(self.plan.recipe.layers)}, "
            f"dimension={self.dimension}, max_length={self.max_length}, postprocess={self.recipe.postprocess!r})"
        )
