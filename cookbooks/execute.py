"""Execute cookbooks in place, keeping their outputs (how the committed outputs were made).

Usage (from the repository root, in the project's environment)::

    python cookbooks/execute.py                              # every notebook, full samples
    python cookbooks/execute.py cookbooks/03_long_documents.ipynb
    VAEMBED_COOKBOOK_QUICK=1 python cookbooks/execute.py     # the quick samples the tests use
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def kernel_path() -> str:
    """`PYTHONPATH` for the kernels: the repository root first (the cookbooks read `benchmarks.python_docs`)."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def main() -> None:
    """Run each named notebook (default: all in this folder) top to bottom and save it with its outputs."""
    os.environ["PYTHONPATH"] = kernel_path()  # kernels inherit this process's environment
    paths = [Path(arg) for arg in sys.argv[1:]] or sorted(Path(__file__).parent.glob("*.ipynb"))
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            resources = {"metadata": {"path": folder}}
            NotebookClient(notebook, timeout=1200, kernel_name="python3", resources=resources).execute()
        nbformat.write(notebook, path)
        print(f"{path}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
