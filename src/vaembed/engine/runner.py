"""The one batch runner: a model, its tokenizer and locks, token-budgeted batches of passes.

`Runner` is what `Embedder`, layer calibration, the supervised sweep and the
benchmarks share. It switches the model to the registered attention, tokenizes
under a prompt and the long-text policy, groups sequences into batches by
length under a token budget, runs one forward pass per batch (under the
model's lock) read by one or more plans, and gathers every plan's vectors in
input order, refusing NaN and Inf.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vaembed.engine.attention import use_vaembed_attention
from vaembed.engine.batching import plan_batches
from vaembed.engine.forward_pass import PASS_KWARG, ForwardPass, PassPlan, PlanReader, StopForward
from vaembed.engine.layer_hooks import install_layer_hooks
from vaembed.engine.locks import lock_for
from vaembed.engine.tokenization import PaddingSide, TextTokenizer, TokenSequence

__all__ = ["CPU_TOKEN_BUDGET", "GPU_TOKEN_BUDGET", "MAX_DEFAULT_LENGTH", "PassReadings", "Runner", "runner_property"]

MAX_DEFAULT_LENGTH = 8192
CPU_TOKEN_BUDGET = 512
"""Padded tokens per batch on CPU: measured fastest on 2 cores (short and long texts alike)."""
GPU_TOKEN_BUDGET = 16384


def runner_property(attribute: str, doc: str, settable: bool = False) -> property:
    """A property of an object holding a `runner` that reads (and, if `settable`, writes) `runner.<attribute>`."""

    def read(self: Any) -> Any:
        return getattr(self.runner, attribute)

    def write(self: Any, value: Any) -> None:
        setattr(self.runner, attribute, value)

    return property(read, write if settable else None, doc=doc)


@dataclass
class PassReadings:
    """What one plan read over many sequences, one row per sequence in input order (float32, CPU).

    Attributes:
        vectors: The readout averaged over its layers, (n, dim).
        per_layer: Each read layer's pooled vectors, (n, dim), when the plan keeps layers.
        residuals: The last-token residual after each recorded layer, (n, D).
    """

    vectors: torch.Tensor
    per_layer: dict[int, torch.Tensor] = field(default_factory=dict)
    residuals: dict[int, torch.Tensor] = field(default_factory=dict)


class Runner:
    """Runs forward passes of one model over tokenized texts.

    Args:
        model: A base decoder model (no LM head) of a supported family.
        tokenizer: Its fast tokenizer.
        max_length: Maximum tokens per input, prompt included; default the
            model's context, capped at 8192.
        padding_side: Side padding goes on; results do not depend on it.
        name: The model's name for reports and calibration profiles.

    Raises:
        ValueError: An unsupported architecture, or a bad `max_length` or `padding_side`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        max_length: int | None = None,
        padding_side: PaddingSide = "right",
        name: str | None = None,
    ) -> None:
        use_vaembed_attention(model)
        install_layer_hooks(model)
        config = model.config
        context = int(getattr(config, "max_position_embeddings", None) or MAX_DEFAULT_LENGTH)
        if max_length is None:
            max_length = min(context, MAX_DEFAULT_LENGTH)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 0 < max_length <= context:
            raise ValueError(f"max_length must be an int in [1, {context}] (the model's context), not {max_length!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = str(name or getattr(config, "_name_or_path", None) or config.model_type)
        self.num_layers = int(config.num_hidden_layers)
        self.max_length = max_length
        self.text_tokenizer = TextTokenizer(tokenizer, max_length, padding_side)
        self.batch_token_budget = CPU_TOKEN_BUDGET if self.device.type == "cpu" else GPU_TOKEN_BUDGET
        self.forward_passes = 0
        self._lock = lock_for(model)

    @property
    def device(self) -> torch.device:
        """The device the model runs on (that of its input embeddings)."""
        return self.model.get_input_embeddings().weight.device

    def tokenizer_for(self, max_length: int) -> TextTokenizer:
        """A tokenizer like this runner's, with another length limit (at most `max_length`)."""
        limit = min(int(max_length), self.max_length)
        return TextTokenizer(self.tokenizer, limit, self.text_tokenizer.padding_side)

    def run_passes(self, sequences: Sequence[TokenSequence], plans: Sequence[PassPlan]) -> list[PlanReader]:
        """Run one forward pass over one batch, read by several plans; one reader per plan.

        The plans must share the prompt the sequences were tokenized with and the
        intervention (`check_shareable`); each reader holds exactly what a pass
        of its own plan would.

        Raises:
            ValueError: The plans cannot share a pass (the differing field is named).
        """
        batch = self.text_tokenizer.collate(sequences).to(self.device)
        state = ForwardPass(plans, batch.positions)
        with self._lock, torch.inference_mode():
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
                return state.readers
            state.final_hidden(output.last_hidden_state, self.model)
        return state.readers

    def read(
        self,
        sequences: Sequence[TokenSequence],
        plans: Sequence[PassPlan],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = False,
    ) -> list[PassReadings]:
        """Run every sequence through token-budgeted batches; gather each plan's readings in input order.

        Batches hold at most `batch_size` sequences and, beyond their first, at
        most `batch_token_budget` padded tokens (longest first); results do not
        depend on the grouping.

        Args:
            sequences: Tokenized inputs (any order, any lengths).
            plans: What to read; they must share a pass.
            batch_size: Most sequences per forward pass.
            show_progress_bar: None shows a bar on jobs of more than 8 batches.

        Raises:
            ValueError: No sequences, or plans that cannot share a pass.
            FloatingPointError: The model produced NaN or Inf (the texts' indices are named).
        """
        if not sequences:
            raise ValueError("Runner.read needs at least one sequence")
        batches: Iterable[list[int]] = plan_batches(
            [len(s.ids) for s in sequences], batch_size, self.batch_token_budget
        )
        show = len(batches) > 8 if show_progress_bar is None else show_progress_bar
        if show:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="Batches", unit="batch")
        out: list[PassReadings | None] = [None] * len(plans)
        for chosen in batches:
            readers = self.run_passes([sequences[i] for i in chosen], plans)
            for slot, reader in enumerate(readers):
                parts = {None: reader.result(), **reader.per_layer}
                residuals = reader.residuals
                if out[slot] is None:
                    out[slot] = PassReadings(
                        _empty(len(sequences), parts[None]),
                        {layer: _empty(len(sequences), part) for layer, part in reader.per_layer.items()},
                        {layer: _empty(len(sequences), part) for layer, part in residuals.items()},
                    )
                readings = out[slot]
                for layer, part in parts.items():
                    target = readings.vectors if layer is None else readings.per_layer[layer]
                    target[chosen] = _finite(part, chosen, sequences, layer)
                for layer, part in residuals.items():
                    readings.residuals[layer][chosen] = _finite(part, chosen, sequences, layer)
        return out  # type: ignore[return-value]


def _empty(rows: int, like: torch.Tensor) -> torch.Tensor:
    return torch.empty((rows, like.shape[1]), dtype=torch.float32)


def _finite(
    part: torch.Tensor, chosen: list[int], sequences: Sequence[TokenSequence], layer: int | None
) -> torch.Tensor:
    """`part` as float32 on the CPU, or FloatingPointError naming the texts with NaN or Inf."""
    part = part.float().cpu()
    finite = torch.isfinite(part).all(dim=1)
    if not bool(finite.all()):
        bad = sorted({sequences[chosen[i]].source for i in (~finite).nonzero().flatten().tolist()})
        where = "" if layer is None else f" at layer {layer}"
        raise FloatingPointError(f"The model produced NaN or Inf{where} for texts at indices {bad}")
    return part
