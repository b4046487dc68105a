"""Every cookbook runs headlessly (nbclient) on the real default model, on its quick sample.

The committed notebooks carry the outputs of a full run; here each one is
executed again with `VAEMBED_COOKBOOK_QUICK=1` (same code, smaller sample), in
the session's cache, and must finish without an error.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
COOKBOOKS = sorted((ROOT / "cookbooks").glob("*.ipynb"))
EXPECTED_OUTPUT = {  # a line each notebook prints only when its last steps ran
    "01_langchain_chroma_rag": "documents on disk:",
    "02_llamaindex_chroma": "hit@1  hit@3  MRR@10",
    "03_long_documents": "| (d) prompteol, whole page |",
    "04_choosing_layers": "aligned-wva  fallback",
}


def text_of(notebook) -> str:
    return "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_the_four_cookbooks_are_committed_with_outputs_of_a_run():
    assert [path.stem for path in COOKBOOKS] == sorted(EXPECTED_OUTPUT)
    for path in COOKBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.execution_count is not None for cell in code), path.name
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), path.name
        assert not any(o.output_type == "error" for cell in code for o in cell.outputs), path.name
        assert EXPECTED_OUTPUT[path.stem] in text_of(notebook), path.name
        assert "VAEMBED_COOKBOOK_QUICK" in "".join(cell.source for cell in code), path.name


@pytest.mark.real_model
@pytest.mark.parametrize("path", COOKBOOKS, ids=lambda path: path.stem)
def test_cookbook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMBED_COOKBOOK_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", resources=resources)
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    assert EXPECTED_OUTPUT[path.stem] in text_of(notebook)
