"""Names that moved in vaembed 0.2, kept importable for one version with a `DeprecationWarning`.

Modules moved into the packages that show the design (`recipes`, `engine`,
`models`, `calibration`, `connectors`, `cli`). Importing an old path (for
example `vaembed.chroma` or `vaembed.recipe`) warns once and gives the new
module itself, so objects, registrations and `isinstance` checks are shared.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "install"]

MOVED_MODULES = {
    "vaembed.prompts": "vaembed.recipes.prompts",
    "vaembed.recipe": "vaembed.recipes",
    "vaembed.attention": "vaembed.engine.attention",
    "vaembed.forward_pass": "vaembed.engine.forward_pass",
    "vaembed.layer_hooks": "vaembed.engine.layer_hooks",
    "vaembed.tokenization": "vaembed.engine.tokenization",
    "vaembed.batching": "vaembed.engine.batching",
    "vaembed.registry": "vaembed.models.registry",
    "vaembed.loading": "vaembed.models.loading",
    "vaembed.model_cache": "vaembed.models.shared",
    "vaembed.atomic_file": "vaembed.cache",
    "vaembed.plots": "vaembed.calibration.plots",
    "vaembed.model_options": "vaembed.connectors.options",
    "vaembed.chroma": "vaembed.connectors.chroma",
    "vaembed.ray": "vaembed.connectors.ray",
    "vaembed.mteb_encoder": "vaembed.connectors.mteb",
    "vaembed.serving": "vaembed.connectors.serving",
    "vaembed.demo": "vaembed.cli.demo",
    "vaembed.cli_support": "vaembed.cli.support",
    "vaembed.cli_serve": "vaembed.cli.serve",
    "vaembed.cli_calibration": "vaembed.cli.calibration",
}
"""Old module path -> new module path."""


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds old module paths and loads them as the new module."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        prefix = next((old for old in MOVED_MODULES if name == old or name.startswith(old + ".")), None)
        if prefix is None:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        old = next(old for old in MOVED_MODULES if spec.name == old or spec.name.startswith(old + "."))
        new = MOVED_MODULES[old] + spec.name[len(old) :]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in vaembed 0.3", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module is already loaded."""


def install() -> None:
    """Put the finder on `sys.meta_path` (once)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
