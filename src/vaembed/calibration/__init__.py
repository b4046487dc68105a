"""Layer calibration by intrinsic dimension: the TwoNN estimator and the selection rule.

`id_curve` estimates one intrinsic dimension per layer from per-text vectors,
`select_layers` turns such a curve into a window of layers, and
`stable_selection` repeats both on random subsamples of the texts to report
how stable the choice is. `Embedder.calibrate` runs all of it on a model and
returns a `CalibrationProfile`; `sweep_layers` is the supervised alternative
on a labelled `DevSet`. `quantize_embeddings` turns embeddings into int8,
uint8 or packed binary codes, int8/uint8 with ranges calibrated on the bundled corpus.
"""

from __future__ import annotations

from vaembed.calibration.devset import DevSet, load_dev_set
from vaembed.calibration.profile import CalibrationProfile, ModelIdentity, ProfileError, PromptCalibration
from vaembed.calibration.quantization import PRECISIONS, dequantize_embeddings, quantize_embeddings
from vaembed.calibration.selection import DIP_RATIO, RULES, select_layers, select_window, window_width
from vaembed.calibration.stability import StableSelection, stable_selection
from vaembed.calibration.sweep import SweepResult, sweep_layers
from vaembed.calibration.twonn import id_curve, nearest_two_distances, reference_slope, twonn_dimension

__all__ = [
    "CalibrationProfile",
    "PRECISIONS",
    "dequantize_embeddings",
    "quantize_embeddings",
    "DevSet",
    "ModelIdentity",
    "ProfileError",
    "PromptCalibration",
    "SweepResult",
    "load_dev_set",
    "sweep_layers",
    "DIP_RATIO",
    "RULES",
    "StableSelection",
    "id_curve",
    "nearest_two_distances",
    "reference_slope",
    "select_layers",
    "select_window",
    "stable_selection",
    "twonn_dimension",
    "window_width",
]
