"""A connector imported without its extra's packages names the exact `pip install` that brings them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CASES = [
    ("vaembed.connectors.chroma", "chromadb", "chroma"),
    ("vaembed.chroma", "chromadb", "chroma"),
    ("vaembed.connectors.serving", "fastapi", "serve"),
    ("vaembed.connectors.serving.settings", "uvicorn", "serve"),
    ("vaembed.serving", "prometheus_client", "serve"),
    ("vaembed.connectors.ray", "ray", "ray"),
    ("vaembed.ray", "pyarrow", "ray"),
    ("vaembed.connectors.chroma", None, "chroma"),
]

# One interpreter for every case: each imports its module with one package made unimportable
# (None in sys.modules), then sys.modules is put back as it was, so the next case starts afresh.
CHILD = r"""
import importlib, json, sys, warnings
import vaembed
warnings.simplefilter("ignore", DeprecationWarning)
for module, blocked, _ in json.loads(sys.argv[1]):
    before = dict(sys.modules)
    if blocked:
        for name in [name for name in sys.modules if name == blocked or name.startswith(blocked + ".")]:
            del sys.modules[name]
        sys.modules[blocked] = None
    try:
        importlib.import_module(module)
        print(json.dumps("imported"))
    except ImportError as error:
        print(json.dumps(f"ImportError: {error}"))
    sys.modules.clear()
    sys.modules.update(before)
"""


@pytest.fixture(scope="module")
def outcomes():
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(CASES)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('"')]
    assert len(lines) == len(CASES), result.stdout
    return dict(zip(range(len(CASES)), lines, strict=True))


@pytest.mark.parametrize(("index", "case"), list(enumerate(CASES)), ids=[f"{m}-{b}" for m, b, _ in CASES])
def test_a_missing_extra_names_the_install_command(outcomes, index, case):
    module, blocked, extra = case
    line = outcomes[index]
    if blocked is None:  # with every package there, the connector imports
        assert line == "imported"
        return
    assert line.startswith("ImportError:"), line
    assert f'needs {blocked}: pip install "vaembed[{extra}]"' in line


def test_the_mteb_adapter_names_its_extra(monkeypatch, tiny_llama):
    from vaembed import Embedder
    from vaembed.connectors.mteb import MTEBEncoder

    monkeypatch.setitem(sys.modules, "mteb", None)
    model, tokenizer = tiny_llama
    with pytest.raises(ImportError, match=r'The mteb adapter needs mteb: pip install "vaembed\[mteb\]"'):
        MTEBEncoder(Embedder(model, tokenizer, "hs-mean"))
