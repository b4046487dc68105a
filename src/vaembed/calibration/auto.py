"""`layers="auto"`: find the model's calibration profile, or calibrate once and save it.

Where the profile comes from decides what happens to a bad one:

- nothing given: the default file `<cache>/profiles/<family>-<hash>.json`
  (`default_profile_path`). If it
  is missing it is computed and saved; if it is unreadable, for another model
  or from an incompatible version, a warning names the problem and it is
  recomputed and overwritten.
- a path given: a valid file is used; a missing one is computed and saved
  there; any other problem raises `ProfileError`.
- a `CalibrationProfile` given: used if it matches the model, else `ProfileError`.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from vaembed.cache import path_lock
from vaembed.calibration.profile import CalibrationProfile, ProfileError, default_profile_path
from vaembed.calibration.run import TEXT_PROMPT, calibrate, model_identity, prompt_name
from vaembed.engine.runner import Runner
from vaembed.recipes.presets import PRESET_RECIPES
from vaembed.recipes.recipe import Recipe

__all__ = ["ProfileSource", "auto_layers", "obtain_profile"]

logger = logging.getLogger(__name__)

ProfileSource = CalibrationProfile | str | os.PathLike[str] | None


def _calibrate_and_save(runner: Runner, path: Path) -> CalibrationProfile:
    logger.warning("Calibrating layers for %s (once; the profile is saved to %s)", runner.name, path)
    profile = calibrate(runner)
    profile.save(path)
    return profile


def obtain_profile(runner: Runner, source: ProfileSource = None) -> CalibrationProfile:
    """Return a calibration profile for the runner's model (see the module docstring).

    Raises:
        ProfileError: An explicitly given profile or file cannot be used.
    """
    identity = model_identity(runner)
    if isinstance(source, CalibrationProfile):
        source.check(identity)
        return source
    if source is not None:
        path = Path(source)
        with path_lock(path):  # processes starting together calibrate once; the others wait, then read
            if not path.exists():
                return _calibrate_and_save(runner, path)
        return CalibrationProfile.load(path, identity)
    path = default_profile_path(identity)
    with path_lock(path):
        if path.exists():
            try:
                return CalibrationProfile.load(path, identity)
            except ProfileError as error:
                warnings.warn(f"{error}; recalibrating", stacklevel=4)
        return _calibrate_and_save(runner, path)


def auto_layers(profile: CalibrationProfile, recipe: Recipe) -> tuple[int, ...]:
    """The calibrated layers that stand for `"auto"` in `recipe`.

    A preset uses the profile's choice for it. Another recipe uses the curve of
    its prompt when the profile has one, else the choice of a calibrated preset
    with the same prompt, else that of the plain text, else that of the first
    calibrated preset.
    """
    preset = PRESET_RECIPES.get(recipe.name)
    if recipe.name in profile.presets and preset is not None and preset.prompt == recipe.prompt:
        return profile.presets[recipe.name]
    layers = profile.layers_for(prompt_name(recipe.prompt))
    same_prompt = [p for p in profile.presets if p in PRESET_RECIPES and PRESET_RECIPES[p].prompt == recipe.prompt]
    if layers is None and same_prompt:
        layers = profile.presets[same_prompt[0]]
    layers = layers or profile.layers_for(TEXT_PROMPT) or next(iter(profile.presets.values()), None)
    if layers is None:
        raise ValueError(f"The calibration profile of {profile.model.name} chose no layers")
    return layers
