"""`Embedder`: training-free text embeddings from a frozen decoder-only LLM."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from vaembed.attention import use_vaembed_attention
from vaembed.batching import check_texts, combine_chunks, plan_batches
from vaembed.calibration.auto import ProfileSource, auto_layers, obtain_profile
from vaembed.calibration.profile import CalibrationProfile, default_profile_path
from vaembed.calibration.run import calibrate
from vaembed.forward_pass import PASS_KWARG, ForwardPass, PassPlan, StopForward
from vaembed.layer_hooks import install_layer_hooks
from vaembed.loading import ModelSource, load_model_and_tokenizer, pick_device, pick_dtype, resolve_model_folder
from vaembed.model_cache import LoadedModel, load_shared, lock_for
from vaembed.prompts import Prompt, Role
from vaembed.recipe import KVReroute, LayerSpec, Recipe, get_recipe
from vaembed.registry import DEFAULT_MODEL
from vaembed.shared_pass import SharedPass, check_shareable
from vaembed.tokenization import LongTextPolicy, PaddingSide, TextTokenizer, TokenSequence

__all__ = ["Embedder", "DEFAULT_RECIPE"]

DEFAULT_RECIPE = "va"
MAX_DEFAULT_LENGTH = 8192
CPU_TOKEN_BUDGET = 512
"""Padded tokens per batch on CPU: measured fastest on 2 cores (short and long texts alike)."""
GPU_TOKEN_BUDGET = 16384


class Embedder:
    """Embeds texts with one recipe read from a frozen causal LM.

    Build it with `Embedder.from_pretrained`; wrap an already loaded base model
    with the constructor.

    Args:
        model: A base decoder model (no LM head) of a supported family.
        tokenizer: Its fast tokenizer.
        recipe: A preset name or a `Recipe`.
        layers: Overrides the recipe's calibrated layer set (see `Recipe.with_layers`).
        max_length: Maximum tokens per input, prompt included; default the
            model's context, capped at 8192.
        long_text: What to do with longer inputs: `"truncate"` (warns once per
            call), `"chunk"` (token-weighted mean of windows), or `"error"`.
        padding_side: Side padding goes on; embeddings do not depend on it.
        name: The model's name for reports and calibration profiles.
        calibration: Where `layers="auto"` gets its layers: None (the cached
            profile of this model, computed once when missing), a profile JSON
            path, or a `CalibrationProfile`.
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
    ) -> None:
        use_vaembed_attention(model)
        install_layer_hooks(model)
        self.model = model
        self.tokenizer = tokenizer
        self.shared: LoadedModel | None = None
        self._model_lock = lock_for(model)
        self.name = name or getattr(model.config, "_name_or_path", None) or model.config.model_type
        self.num_layers = int(model.config.num_hidden_layers)
        context = int(getattr(model.config, "max_position_embeddings", None) or MAX_DEFAULT_LENGTH)
        if max_length is None:
            max_length = min(context, MAX_DEFAULT_LENGTH)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 0 < max_length <= context:
            raise ValueError(f"max_length must be an int in [1, {context}] (the model's context), not {max_length!r}")
        if long_text not in ("truncate", "chunk", "error"):
            raise ValueError(f"long_text must be 'truncate', 'chunk' or 'error', not {long_text!r}")
        self.max_length = max_length
        self.long_text: LongTextPolicy = long_text
        self.text_tokenizer = TextTokenizer(tokenizer, max_length, padding_side)
        self.calibration_source = calibration
        self.calibration_profile: CalibrationProfile | None = None
        self.forward_passes = 0
        self.batch_token_budget = CPU_TOKEN_BUDGET if self.device.type == "cpu" else GPU_TOKEN_BUDGET
        self._set_recipe(recipe, layers)

    def _set_recipe(self, recipe: str | Recipe, layers: LayerSpec | None) -> None:
        base = get_recipe(recipe)
        self.recipe = base.with_layers(layers) if layers is not None else base
        auto = None
        if self.recipe.needs_calibration:
            if self.calibration_profile is None:
                self.calibration_profile = obtain_profile(self, self.calibration_source)
            auto = auto_layers(self.calibration_profile, self.recipe)
        self.plan = PassPlan(self.recipe.resolve(self.num_layers, auto), self.num_layers)

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
            layers: Overrides the recipe's calibrated layer set.
            device: Default CUDA when available, else CPU.
            dtype: Default bfloat16 on CUDA, float32 on CPU.
            max_length: See the class docstring.
            long_text: See the class docstring.
            padding_side: See the class docstring.
            trust_remote_code: Allow a checkpoint's own Python code (off by default).
            model_kwargs: Extra arguments for `transformers.AutoModel.from_pretrained`.
            calibration: See the class docstring.
            share: Reuse this process's loaded copy of the model (see
                `vaembed.model_cache`); False loads a private copy.
        """
        source: ModelSource = resolve_model_folder(model)
        target = pick_device(device)
        options = dict(
            device=target,
            dtype=pick_dtype(dtype, target),
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs,
        )
        shared = load_shared(source, **options) if share else None
        loaded, tokenizer = (shared.model, shared.tokenizer) if shared else load_model_and_tokenizer(source, **options)
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
        )
        embedder.shared = shared  # keeps the shared copy alive while this embedder lives
        return embedder

    def with_recipe(self, recipe: str | Recipe, layers: LayerSpec | None = None) -> Embedder:
        """Return an embedder with another recipe that shares this one's model and settings."""
        other = object.__new__(Embedder)
        other.__dict__.update(self.__dict__)
        other.forward_passes = 0
        other._set_recipe(recipe, layers)
        return other

    def calibrate(
        self,
        texts: Iterable[str] | None = None,
        n: int | None = None,
        *,
        save: bool = True,
        path: str | os.PathLike[str] | None = None,
        prompts: str = "text",
        max_tokens: int | None = 96,
        resamples: int = 20,
        batch_size: int = 8,
    ) -> CalibrationProfile:
        """Choose this model's layers by intrinsic dimension, and use them from now on.

        Runs the model over the calibration texts once per prompt of the
        calibration prompts, estimates the ID of the last-token residual after
        each layer (TwoNN), and applies the selection rule. The profile replaces
        this embedder's current one, so `layers="auto"` recipes re-resolve.

        Args:
            texts: Your own texts (at least 200 recommended); the bundled corpus when None.
            n: Use only the first `n` texts.
            save: Write the profile (to `path`, else to the model's default
                profile file, which later `layers="auto"` loads).
            path: Where to save it.
            prompts: `"text"` (the plain texts, one pass) or `"per-preset"` (each
                calibrated preset's own prompt, one pass per distinct prompt).
            max_tokens: Token budget per text (cost is about N x max_tokens); None for `max_length`.
            resamples: Subsamples for the stability of the choice.
            batch_size: Sequences per forward pass.

        Returns:
            The profile (curves, chosen layers per preset, corpus, model identity, timing).
        """
        profile = calibrate(
            self, texts, n=n, prompts=prompts, max_tokens=max_tokens, resamples=resamples, batch_size=batch_size
        )
        if save:
            profile.save(path if path is not None else default_profile_path(profile.model))
        self.calibration_profile = profile
        if self.recipe.needs_calibration:
            self._set_recipe(self.recipe, None)
        return profile

    @property
    def device(self) -> torch.device:
        """The device the model runs on."""
        return next(self.model.parameters()).device

    @property
    def layers(self) -> list[int]:
        """The concrete layers that the `layers` option sets for this recipe.

        The readout layers, or the rerouted layers of a KV recipe that reads the
        final layer (see `Recipe.with_layers`). Passing them back as `layers=`
        rebuilds this embedder without its calibration profile.
        """
        resolved = self.plan.recipe
        if isinstance(self.recipe.intervention, KVReroute) and self.recipe.layers == "final":
            return list(resolved.reroute_layers)
        return list(resolved.layers)

    @property
    def dimension(self) -> int:
        """Size of the embeddings this recipe produces."""
        config = self.model.config
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        source = self.recipe.readout.source
        if source == "value":
            return int(config.num_key_value_heads * head_dim)
        if source == "mixed":
            return int(heads * head_dim)
        return int(config.hidden_size)

    def get_sentence_embedding_dimension(self) -> int:
        """Alias of `dimension`, as in sentence-transformers."""
        return self.dimension

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
            convert_to_numpy: Return a float32 numpy array, else a CPU torch tensor.

        Returns:
            Shape (n, dimension), or (dimension,) for a single string.

        Raises:
            TypeError: `texts` or an item of it is not a str (the index is named), or `prompt` is not a str.
            ValueError: Bad `role`, `batch_size` or `prompt`; too long a text with `long_text="error"`.
            FloatingPointError: The model produced NaN or Inf.
        """
        items, single = check_texts(texts)
        if role not in ("document", "query"):
            raise ValueError(f"role must be 'document' or 'query', not {role!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if not items:
            out = torch.zeros((0, self.dimension), dtype=torch.float32)
            return out.numpy() if convert_to_numpy else out
        sequences, shortened = self.tokenize(items, role=role, prompt=prompt)
        if shortened and self.long_text == "truncate":
            warnings.warn(
                f"{shortened} of {len(items)} texts were truncated to max_length={self.max_length} tokens",
                stacklevel=2,
            )
        embeddings = self.embed_sequences(
            sequences, len(items), batch_size=batch_size, normalize=normalize, show_progress_bar=show_progress_bar
        )
        if single:
            embeddings = embeddings[0]
        return embeddings.numpy() if convert_to_numpy else embeddings

    def encode_query(self, texts: str | Iterable[str], **kwargs: Any) -> np.ndarray | torch.Tensor:
        """Embed queries (`encode` with `role="query"`)."""
        return self.encode(texts, role="query", **kwargs)

    def encode_document(self, texts: str | Iterable[str], **kwargs: Any) -> np.ndarray | torch.Tensor:
        """Embed documents (`encode` with `role="document"`)."""
        return self.encode(texts, role="document", **kwargs)

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
        return self.text_tokenizer.encode(texts, template, role, self.long_text)

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
        vectors = self._embed_sequences(sequences, batch_size, show_progress_bar)
        return combine_chunks(sequences, vectors, count, normalize)

    def run_pass(self, sequences: list[TokenSequence], plan: PassPlan | None = None) -> ForwardPass:
        """Run one forward pass over `sequences` and return its state.

        Args:
            sequences: One batch of inputs.
            plan: What to capture; defaults to this embedder's recipe.
        """
        return self.run_passes(sequences, [plan or self.plan])[0]

    def run_passes(self, sequences: list[TokenSequence], plans: Sequence[PassPlan]) -> list[ForwardPass]:
        """Run one forward pass over `sequences` read by several plans; return one state per plan.

        The plans must share the prompt the sequences were tokenized with and the
        intervention (`vaembed.shared_pass.check_shareable`); each state holds
        exactly what a pass of its own plan would.

        Raises:
            ValueError: The plans cannot share a pass (the differing field is named).
        """
        check_shareable(plans)
        batch = self.text_tokenizer.collate(sequences).to(self.device)
        states = [ForwardPass(p, batch.last_index, batch.pool_weights, batch.placeholder_index) for p in plans]
        state: ForwardPass | SharedPass = states[0] if len(states) == 1 else SharedPass(states)
        with self._model_lock, torch.inference_mode():
            self.forward_passes += 1
            try:
                output = self.model(
                    input_ids=batch.input_ids,
                    attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids,
                    use_cache=False,
                    **{PASS_KWARG: state},
                )
            except StopForward:
                return states
            state.on_final_hidden(output.last_hidden_state)
        return states

    def _embed_sequences(
        self, sequences: list[TokenSequence], batch_size: int, show_progress_bar: bool | None
    ) -> torch.Tensor:
        lengths = [len(s.ids) for s in sequences]
        batches: Iterable[list[int]] = plan_batches(lengths, batch_size, self.batch_token_budget)
        show = len(batches) > 8 if show_progress_bar is None else show_progress_bar
        if show:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="Batches", unit="batch")
        out = torch.empty((len(sequences), self.dimension), dtype=torch.float32)
        for chosen in batches:
            vectors = self.run_pass([sequences[i] for i in chosen]).result().float().cpu()
            finite = torch.isfinite(vectors).all(dim=1)
            if not bool(finite.all()):
                bad = sorted({sequences[chosen[i]].source for i in (~finite).nonzero().flatten().tolist()})
                raise FloatingPointError(f"The model produced NaN or Inf for texts at indices {bad}")
            out[chosen] = vectors
        return out

    def __repr__(self) -> str:
        recipe = self.plan.recipe
        return (
            f"Embedder(model={self.name!r}, recipe={self.recipe.name!r}, layers={list(recipe.layers)}, "
            f"dimension={self.dimension}, max_length={self.max_length})"
        )
