"""The three distributions build as wheel and sdist, pass `twine check --strict`, and install together.

Each project is copied out of the tree and built in isolation (`python -m build`, which fetches
its build backend from the package index). The wheels then go, without their dependencies, into
a fresh virtual environment that sees this interpreter's packages only after its own, so the
freshly installed vaembed and adapters are the ones imported.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LICENSE = (ROOT / "LICENSE").read_bytes()
# distribution -> (project folder, version module, import name)
PROJECTS = {
    "vaembed": (ROOT, "src/vaembed/version.py", "vaembed"),
    "langchain-vaembed": (
        ROOT / "integrations" / "langchain-vaembed",
        "langchain_vaembed/version.py",
        "langchain_vaembed",
    ),
    "llama-index-embeddings-vaembed": (
        ROOT / "integrations" / "llama-index-embeddings-vaembed",
        "llama_index/embeddings/vaembed/version.py",
        "llama_index.embeddings.vaembed",
    ),
}
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".venv", ".pytest_cache", ".ruff_cache")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}}
    return {**env, "PYTHONNOUSERSITE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run(*command: str | Path, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout, env=clean_env(), check=False
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def source_version(name: str) -> str:
    folder, module, _ = PROJECTS[name]
    match = re.search(r'^__version__ = "([^"]+)"$', (folder / module).read_text(encoding="utf-8"), re.M)
    assert match, module
    return match.group(1)


def pyproject(name: str) -> dict:
    return tomllib.loads((PROJECTS[name][0] / "pyproject.toml").read_text(encoding="utf-8"))


def parse_metadata(text: str):
    return email.parser.Parser().parsestr(text)


def normal(requirement: str | Requirement) -> tuple:
    req = Requirement(str(requirement))
    return canonicalize_name(req.name), tuple(sorted(req.extras)), str(req.specifier), str(req.marker or "")


def declared_requirements(name: str) -> set[tuple]:
    """What pyproject.toml declares, as the wheel's Requires-Dist should state it."""
    project = pyproject(name)["project"]
    expected = {normal(dep) for dep in project["dependencies"]}
    for extra, deps in project.get("optional-dependencies", {}).items():
        for dep in deps:
            req = Requirement(dep)
            marker = f'extra == "{extra}"'
            req.marker = Marker(f"({req.marker}) and {marker}" if req.marker else marker)
            expected.add(normal(req))
    return expected


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every distribution built once: {name: (wheel, sdist)}, each from a copy of its project folder."""
    work = tmp_path_factory.mktemp("packaging")
    out = work / "dist"
    for name, (folder, _, _) in PROJECTS.items():
        copy = work / "src" / name
        if folder == ROOT:  # the core's sdist is its pyproject, README, LICENSE and src/ (no MANIFEST.in)
            copy.mkdir(parents=True)
            for file in ("pyproject.toml", "README.md", "LICENSE"):
                shutil.copy2(ROOT / file, copy / file)
            shutil.copytree(ROOT / "src", copy / "src", ignore=SKIP)
        else:
            shutil.copytree(folder, copy, ignore=SKIP)
        run(sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", out, copy, timeout=300)
    dists = {}
    for name in PROJECTS:
        stem = f"{canonicalize_name(name).replace('-', '_')}-{source_version(name)}"
        wheels, sdists = list(out.glob(f"{stem}-*.whl")), list(out.glob(f"{stem}.tar.gz"))
        assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
        dists[name] = (wheels[0], sdists[0])
    return dists


def read_wheel(wheel: Path):
    """The wheel's METADATA and its dist-info/licenses/LICENSE (PEP 639)."""
    with zipfile.ZipFile(wheel) as archive:
        (info,) = {n.split("/")[0] for n in archive.namelist() if n.split("/")[0].endswith(".dist-info")}
        return parse_metadata(archive.read(f"{info}/METADATA").decode()), archive.read(f"{info}/licenses/LICENSE")


def test_every_distribution_passes_twine_check_strict(built):
    files = [path for pair in built.values() for path in pair]
    output = run(sys.executable, "-m", "twine", "check", "--strict", *files)
    assert output.count("PASSED") == 6, output


@pytest.mark.parametrize("name", list(PROJECTS))
def test_wheel_and_sdist_carry_the_licence_and_the_single_sourced_version(built, name):
    wheel, sdist = built[name]
    version = source_version(name)
    metadata, licence = read_wheel(wheel)
    assert licence == LICENSE
    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz")
        assert archive.extractfile(f"{top}/LICENSE").read() == LICENSE
        sdist_metadata = parse_metadata(archive.extractfile(f"{top}/PKG-INFO").read().decode())
    for meta in (metadata, sdist_metadata):
        assert meta["Name"] == name and meta["Version"] == version
        assert meta["Metadata-Version"] == "2.4"
        assert meta["License-Expression"] == "Apache-2.0"
        assert meta.get_all("License-File") == ["LICENSE"]
        assert meta["Requires-Python"] == ">=3.10"
        classifiers = meta.get_all("Classifier")
        assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression says it
        for needed in ("3.10", "3.11", "3.12"):
            assert f"Programming Language :: Python :: {needed}" in classifiers
        assert "Topic :: Scientific/Engineering :: Artificial Intelligence" in classifiers
        urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL"))
        assert set(urls) == {"Homepage", "Documentation", "Issues"}
        assert all(url.startswith("https://github.com/vaembed/vaembed") for url in urls.values())
        assert {normal(r) for r in meta.get_all("Requires-Dist")} == declared_requirements(name)


def test_each_adapter_accepts_the_vaembed_it_is_built_with(built):
    core_version = source_version("vaembed")
    for name in ("langchain-vaembed", "llama-index-embeddings-vaembed"):
        metadata, _ = read_wheel(built[name][0])
        (core,) = [Requirement(r) for r in metadata.get_all("Requires-Dist") if Requirement(r).name == "vaembed"]
        assert core.specifier.contains(core_version), f"{name} requires {core}, built vaembed is {core_version}"


PROBE = r"""
import importlib, importlib.metadata as md, json, sys
from packaging.requirements import Requirement
from langchain_vaembed import VAEmbeddings
from llama_index.embeddings.vaembed import VAEmbedding
modules = {name: importlib.import_module(module) for name, module in json.loads(sys.argv[1]).items()}
unmet = []
for name in modules:
    for line in md.requires(name):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            try:
                found = md.version(req.name)
            except md.PackageNotFoundError:
                found = None
            if found is None or not req.specifier.contains(found, prereleases=True):
                unmet.append(f"{name} requires {req}, found {found}")
print(json.dumps({
    "files": {name: module.__file__ for name, module in modules.items()},
    "classes": [sys.modules[VAEmbeddings.__module__].__file__, sys.modules[VAEmbedding.__module__].__file__],
    "dist_info": {name: str(md.distribution(name).locate_file("")) for name in modules},
    "metadata_version": {name: md.version(name) for name in modules},
    "module_version": {name: module.__version__ for name, module in modules.items()},
    "requires": {name: md.requires(name) for name in modules},
    "unmet": unmet,
}))
"""


def test_the_three_wheels_install_together_into_a_fresh_environment(built, tmp_path):
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    scripts = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / ("python.exe" if os.name == "nt" else "python")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
        *(wheel for wheel, _ in built.values()))  # fmt: skip
    # The dependencies come from this interpreter's site-packages, after the fresh one's (a .pth
    # line only appends a folder: the .pth files in it, editable installs included, stay unread).
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "zz_dependencies.pth").write_text("".join(f"{folder}\n" for folder in ours), encoding="utf-8")

    modules = {name: module for name, (_, _, module) in PROJECTS.items()}
    found = json.loads(run(python, "-c", PROBE, json.dumps(modules), timeout=180))
    for path in [*found["files"].values(), *found["classes"], *found["dist_info"].values()]:
        assert Path(path).resolve().is_relative_to(site.resolve()), path
    versions = {name: source_version(name) for name in PROJECTS}
    assert found["metadata_version"] == versions and found["module_version"] == versions
    for name, requires in found["requires"].items():
        assert {normal(r) for r in requires} == declared_requirements(name)
    assert found["unmet"] == []

    command = scripts / ("vaembed.exe" if os.name == "nt" else "vaembed")
    assert command.is_file()
    assert run(command, "--version", timeout=180).strip() == f"vaembed {versions['vaembed']}"
