"""Real labelled retrieval sets built from the Python documentation.

Debian's `python3.11-doc` package ships the reStructuredText sources of the
Python documentation. Two retrieval sets come out of them:

- `python_faq()`: each FAQ question heading is a query; its answer (the text
  up to the next heading) is the one relevant document. Short documents.
- `python_library_pages()`: each library module's `:synopsis:` line is a
  query; the module's reference page (title and module directive removed, and
  the synopsis sentence removed wherever it appears verbatim) is the one
  relevant document. Long documents: median about 1,400 words.
- `python_doc_passages()`: the paragraphs of the library reference, an
  unlabelled corpus of mixed lengths for throughput and scale-out jobs.

The package is fetched once with `apt-get download` and unpacked with
`dpkg-deb -x` into `$VAEMBED_CACHE/datasets/` (Debian and Ubuntu machines);
nothing is committed or redistributed. The texts are the Python documentation
(PSF licence).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vaembed.cache import cache_dir

__all__ = ["RetrievalSet", "python_docs_sources", "python_faq", "python_library_pages", "python_doc_passages"]

DOCS_PACKAGE = "python3.11-doc"
_SOURCES = Path("usr/share/doc/python3.11/html/_sources")
_UNDERLINE = re.compile(r"^([=\-~^*+#\"'`])\1{2,}\s*$")


@dataclass(frozen=True)
class RetrievalSet:
    """Queries, documents and the one relevant document of each query.

    Attributes:
        name: Where it comes from.
        queries: The query texts.
        doc_ids: Document identifiers, in order.
        documents: Document texts, aligned with `doc_ids`.
        relevant: For each query, the index of its relevant document.
    """

    name: str
    queries: list[str]
    doc_ids: list[str]
    documents: list[str]
    relevant: list[int]

    def subset(self, count: int) -> RetrievalSet:
        """The first `count` queries with their documents, plus every other document up to `count` in all.

        Queries keep their relevant documents, so scores stay meaningful on a
        smaller sample (for quick runs); documents keep their order.
        """
        keep_queries = list(range(min(count, len(self.queries))))
        needed = {self.relevant[q] for q in keep_queries}
        extra = [d for d in range(len(self.documents)) if d not in needed][: max(0, count - len(needed))]
        kept = sorted(needed | set(extra))
        index = {old: new for new, old in enumerate(kept)}
        return RetrievalSet(
            name=f"{self.name} (first {len(keep_queries)} queries)",
            queries=[self.queries[q] for q in keep_queries],
            doc_ids=[self.doc_ids[d] for d in kept],
            documents=[self.documents[d] for d in kept],
            relevant=[index[self.relevant[q]] for q in keep_queries],
        )


def python_docs_sources() -> Path:
    """The documentation sources folder, fetched and unpacked once into the cache.

    Raises:
        RuntimeError: `apt-get` or `dpkg-deb` is missing or fails (the message says which).
    """
    target = cache_dir() / "datasets" / DOCS_PACKAGE
    sources = target / _SOURCES
    if (sources / "faq").is_dir():
        return sources
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"Fetching {DOCS_PACKAGE} needs `{tool}` (a Debian or Ubuntu machine)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        _run(["apt-get", "download", DOCS_PACKAGE], cwd=scratch)
        package = next(Path(scratch).glob(f"{DOCS_PACKAGE}_*.deb"))
        unpacked = Path(scratch) / "unpacked"
        _run(["dpkg-deb", "-x", str(package), str(unpacked)], cwd=scratch)
        (unpacked / "PACKAGE").write_text(package.name)
        if not (target / _SOURCES / "faq").is_dir():
            shutil.rmtree(target, ignore_errors=True)
            unpacked.replace(target)
    return sources


def _run(command: list[str], cwd: str) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Split RST lines into (heading, body lines) at every underlined (or over- and underlined) heading."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if (
            line.strip()
            and not _UNDERLINE.match(line)
            and _UNDERLINE.match(following)
            and len(following.strip()) >= len(line.strip())
        ):
            body = sections[-1][1]
            if body and _UNDERLINE.match(body[-1]):  # an overline belongs to this heading
                body.pop()
            sections.append((line.strip(), []))
            index += 2
            continue
        sections[-1][1].append(line)
        index += 1
    return sections


def python_faq() -> RetrievalSet:
    """Python FAQ: question headings as queries, their answers as documents (about 177 pairs)."""
    sources = python_docs_sources()
    queries: list[str] = []
    doc_ids: list[str] = []
    documents: list[str] = []
    for path in sorted((sources / "faq").glob("*.rst.txt")):
        for number, (heading, body) in enumerate(_sections(path.read_text(encoding="utf-8").splitlines())):
            answer = "\n".join(body).strip()
            if heading.endswith("?") and answer:
                queries.append(heading)
                doc_ids.append(f"faq/{path.name.removesuffix('.rst.txt')}#{number}")
                documents.append(answer)
    return RetrievalSet("Python FAQ", queries, doc_ids, documents, list(range(len(queries))))


def _module_page(text: str) -> tuple[str, str, str] | None:
    """(module, synopsis, body) of a library page with a module directive, else None."""
    module = re.search(r"^\.\. module:: *(\S+)", text, flags=re.MULTILINE)
    synopsis = re.search(r"^ +:synopsis: *(.+)$", text, flags=re.MULTILINE)
    if module is None or synopsis is None:
        return None
    lines = text.splitlines()
    start = text[: module.start()].count("\n")
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1  # the directive's indented options and blank lines
    body_lines = [line for line in lines[end:] if not line.startswith((".. moduleauthor::", ".. sectionauthor::"))]
    query = synopsis.group(1).strip()
    body = "\n".join(body_lines).replace(query, " ").strip()
    return module.group(1), query, body


def python_library_pages() -> RetrievalSet:
    """Python library reference: module synopses as queries, their pages as documents (about 255)."""
    sources = python_docs_sources()
    queries: list[str] = []
    doc_ids: list[str] = []
    documents: list[str] = []
    seen: set[str] = set()
    for path in sorted((sources / "library").glob("*.rst.txt")):
        page = _module_page(path.read_text(encoding="utf-8"))
        if page is None or page[0] in seen or len(page[2].split()) < 20:
            continue
        module, query, body = page
        seen.add(module)
        queries.append(query)
        doc_ids.append(module)
        documents.append(body)
    return RetrievalSet("Python library reference", queries, doc_ids, documents, list(range(len(queries))))


def python_doc_passages(count: int | None = None, *, min_words: int = 12) -> tuple[list[str], list[str]]:
    """Paragraphs of the Python library reference, for corpus-scale jobs (unlabelled).

    Args:
        count: Keep the first `count` passages (default all, several thousand).
        min_words: Skip shorter paragraphs (headings, directives, table rules).

    Returns:
        `(ids, texts)`: ids such as `"os.rst.txt#12"` (file and paragraph number), and the texts.
    """
    sources = python_docs_sources()
    ids: list[str] = []
    texts: list[str] = []
    for path in sorted((sources / "library").glob("*.rst.txt")):
        blocks = re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
        for number, block in enumerate(blocks):
            text = " ".join(block.split())
            if len(text.split()) < min_words or text.startswith((".. ", "==", "--", "+-")):
                continue
            ids.append(f"{path.name}#{number}")
            texts.append(text)
            if count is not None and len(texts) >= count:
                return ids, texts
    return ids, texts
