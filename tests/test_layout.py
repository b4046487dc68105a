"""The package layout shows the design, and its layering holds: nothing imports upwards, no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from vaembed.engine.attention import SUPPORTED_MODEL_TYPES
from vaembed.testing import FAMILIES, build_config

SOURCE = Path(__file__).resolve().parents[1] / "src" / "vaembed"

# What each part may import (besides itself). Lower parts never import higher ones.
ALLOWED = {
    "version": set(),
    "cache": set(),
    "deprecations": set(),
    "recipes": set(),
    "engine": {"recipes"},
    "models": {"cache"},
    "calibration": {"cache", "engine", "recipes", "version"},
    "testing": {"cache", "engine"},
    "lexical": {"engine", "recipes"},
    "embedder": {"calibration", "engine", "lexical", "models", "recipes"},
    "connectors": {"embedder", "engine", "models", "recipes", "calibration", "cache", "version"},
    "cli": {"embedder", "engine", "models", "recipes", "calibration", "cache", "version", "connectors", "__init__"},
    "__init__": {"calibration", "embedder", "models", "recipes", "version", "deprecations"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every vaembed module a file imports, anywhere in it (TYPE_CHECKING blocks and functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vaembed":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "vaembed")
    return found


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = {module_name(path): path for path in SOURCE.rglob("*.py")}


def test_the_tree_has_one_folder_per_part_of_a_recipe_and_a_flat_top_only_for_the_core():
    folders = sorted(p.name for p in SOURCE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert folders == ["calibration", "cli", "connectors", "engine", "models", "recipes"]
    top = sorted(p.stem for p in SOURCE.glob("*.py"))
    assert top == ["__init__", "cache", "deprecations", "embedder", "lexical", "testing", "version"]
    recipes = sorted(p.stem for p in (SOURCE / "recipes").glob("*.py"))
    assert {"prompts", "interventions", "readouts", "layers", "presets", "recipe"} <= set(recipes)


def test_nothing_imports_a_part_above_it():
    wrong = []
    for module, path in MODULES.items():
        mine = part_of(module)
        for imported in imports_of(path):
            theirs = part_of(imported)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_there_is_no_import_cycle():
    graph = {module: {i for i in imports_of(path) if i in MODULES and i != module} for module, path in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_module_stays_under_400_lines():
    long = {module: n for module, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_supported_families_are_defined_once_and_each_has_a_tiny_config():
    assert FAMILIES is SUPPORTED_MODEL_TYPES
    for family in FAMILIES:
        assert build_config(family).model_type == family


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("vaembed.recipe", "vaembed.recipes", "KVReroute"),
        ("vaembed.chroma", "vaembed.connectors.chroma", "VAEmbeddingFunction"),
        ("vaembed.serving", "vaembed.connectors.serving", "create_app"),
        ("vaembed.mteb_encoder", "vaembed.connectors.mteb", "MTEBEncoder"),
        ("vaembed.tokenization", "vaembed.engine.tokenization", "TextTooLongError"),
    ],
)
def test_moved_modules_still_import_for_one_version_with_a_warning(old, new, name):
    code = (
        "import warnings, importlib\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "import vaembed\n"
        "try:\n"
        f"    importlib.import_module({old!r})\n"
        "except DeprecationWarning as warning:\n"
        "    print('warned:', warning)\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        f"old, new = importlib.import_module({old!r}), importlib.import_module({new!r})\n"
        f"print(old is new, getattr(old, {name!r}) is getattr(new, {name!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert f"warned: {old} moved to {new}" in result.stdout
    assert result.stdout.strip().endswith("True True")


def test_moved_top_level_names_warn():
    import vaembed
    from vaembed.calibration.devset import ndcg_at_10

    with pytest.warns(DeprecationWarning, match="vaembed.ndcg_at_10 moved to vaembed.calibration.devset"):
        assert vaembed.ndcg_at_10 is ndcg_at_10
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = vaembed.nothing_here
