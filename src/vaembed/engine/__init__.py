"""The engine: the registered attention function, the forward pass and its captures, the batch runner.

- `attention`: one attention function (and mask) registered with transformers for every family;
- `forward_pass`: a batch's pass: its intervention and the plans reading it, early exit;
- `layer_hooks`: decoder-layer hooks that hand the residual stream to the pass;
- `tokenization`, `batching`: texts to padded batches, token budgets, chunk combining;
- `runner`: the one batch runner that `Embedder`, calibration and the benchmarks share;
- `locks`: one lock per model and tokenizer.
"""

from __future__ import annotations

from vaembed.engine.attention import SUPPORTED_MODEL_TYPES
from vaembed.engine.forward_pass import ForwardPass, PassPlan, PlanReader, StopForward
from vaembed.engine.runner import PassReadings, Runner
from vaembed.engine.tokenization import (
    LONG_TEXT_POLICIES,
    LongTextPolicy,
    TextTokenizer,
    TextTooLongError,
    TokenSequence,
)

__all__ = [
    "LONG_TEXT_POLICIES",
    "SUPPORTED_MODEL_TYPES",
    "ForwardPass",
    "LongTextPolicy",
    "PassPlan",
    "PassReadings",
    "PlanReader",
    "Runner",
    "StopForward",
    "TextTokenizer",
    "TextTooLongError",
    "TokenSequence",
]
