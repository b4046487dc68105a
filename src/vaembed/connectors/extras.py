"""Optional extras: a connector whose packages are missing says which `pip install` brings them.

Each connector stands behind an extra of vaembed's package (`chroma`, `serve`,
`ray`, `mteb`). A connector imports its extra's packages when it is imported
(or, for `mteb`, when it is first used, through `require`); when one cannot
be imported it raises `missing_extra`'s `ImportError`, which holds the exact
install command, `pip install "vaembed[<extra>]"`, chained to the original error.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["install_command", "missing_extra", "require"]


def install_command(extra: str) -> str:
    """The shell command that installs an extra: `pip install "vaembed[<extra>]"`."""
    return f'pip install "vaembed[{extra}]"'


def missing_extra(extra: str, what: str, error: ImportError) -> ImportError:
    """The error to raise (`from error`) when an import of an extra's package failed.

    Args:
        extra: The extra that installs the package (`"chroma"`, `"serve"`, ...).
        what: What needs it, for the message (`"The Chroma embedding function"`).
        error: The failed import's error; its top-level package goes into the message.
    """
    missing = error.name.split(".")[0] if error.name else str(error)
    return ImportError(f"{what} needs {missing}: {install_command(extra)}", name=error.name)


def require(extra: str, what: str, *modules: str) -> ModuleType:
    """Import `modules` and return the first one.

    Args:
        extra: The extra that installs them (`"chroma"`, `"serve"`, ...).
        what: What needs them, for the message (`"The Chroma embedding function"`).
        *modules: Importable module names (at least one).

    Raises:
        ImportError: A module cannot be imported; the message names it and the install command.
    """
    loaded: list[ModuleType] = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as error:
            raise missing_extra(extra, what, error) from error
    return loaded[0]
