"""MTEB-style tasks on the real labelled sets, scored with MTEB's metrics.

An *embed function* takes texts and a role (`"query"` or `"document"`) and
returns L2-normalised float32 rows. Each task lists every text it will embed
(`texts()`, so a runner can embed them all up front) and scores an embed function:

- STS: Spearman correlation between cosine similarity and the gold rating.
- Retrieval: nDCG@10 of the documents ranked by cosine (one relevant document per query).
- Classification: accuracy of logistic regression (MTEB's `max_iter=100`), 5-fold stratified cross-validation.
- Clustering: V-measure of mini-batch k-means with k = the number of labels
  (MTEB's settings: k-means++, `n_init=1`, batch 512), mean over 5 seeds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.data_sets import lee_sts, newsgroups_3, stratified_sample, vader_tweets
from benchmarks.python_docs import python_faq, python_library_pages
from vaembed.calibration.devset import ndcg_at_10, spearman

__all__ = ["QUICK", "SIZES", "SMALL", "STANDARD", "Sizes", "Task", "build_tasks"]

Embed = Callable[[list[str], str], np.ndarray]


@dataclass(frozen=True)
class Sizes:
    """How many items of each set a suite uses (None: all)."""

    faq: int | None
    library: int | None
    tweets: int | None
    posts: int | None


QUICK = Sizes(faq=12, library=6, tweets=60, posts=30)
SMALL = Sizes(faq=40, library=10, tweets=150, posts=45)
STANDARD = Sizes(faq=100, library=30, tweets=400, posts=120)
SIZES = {"quick": QUICK, "small": SMALL, "standard": STANDARD}


@dataclass
class Task:
    """One MTEB-style task.

    Attributes:
        name: Short name (e.g. `"lee-sts"`).
        kind: `"sts"`, `"retrieval"`, `"classification"` or `"clustering"`.
        metric: `"spearman"`, `"ndcg@10"`, `"accuracy"` or `"v_measure"`.
        queries: Retrieval queries.
        documents: Documents (retrieval), or the texts of the other kinds.
        relevant: Retrieval: each query's relevant document index.
        pairs: STS: `(i, j, gold)` over `documents`.
        labels: Classification and clustering labels, aligned with `documents`.
    """

    name: str
    kind: str
    metric: str
    queries: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    relevant: list[int] = field(default_factory=list)
    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def texts(self) -> list[tuple[str, list[str]]]:
        """Every text the task embeds, by role."""
        out = [("document", self.documents)]
        return [("query", self.queries), *out] if self.queries else out

    def retrieval_scores(self, embed: Embed) -> np.ndarray:
        """Retrieval: the cosine score of every document for every query, (queries x documents)."""
        return np.asarray(embed(self.queries, "query") @ embed(self.documents, "document").T, dtype=np.float64)

    def ndcg(self, scores: np.ndarray) -> float:
        """Retrieval: nDCG@10 of the documents ranked by a (queries x documents) score matrix."""
        return float(ndcg_at_10(scores, [frozenset({r}) for r in self.relevant]))

    def score(self, embed: Embed) -> float:
        """The task's metric for an embed function."""
        if self.kind == "retrieval":
            return self.ndcg(self.retrieval_scores(embed))
        documents = embed(self.documents, "document")
        if self.kind == "sts":
            cosine = [float(documents[i] @ documents[j]) for i, j, _ in self.pairs]
            return spearman(cosine, [gold for _, _, gold in self.pairs])
        if self.kind == "classification":
            return cross_validated_accuracy(documents, self.labels)
        if self.kind == "clustering":
            return v_measure(documents, self.labels)
        raise ValueError(f"Unknown task kind {self.kind!r}")


def cross_validated_accuracy(vectors: np.ndarray, labels: list[str], folds: int = 5, seed: int = 42) -> float:
    """Mean accuracy of logistic regression over stratified folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    target = np.asarray(labels)
    scores = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(vectors, target):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at MTEB's max_iter=100
            model = LogisticRegression(max_iter=100).fit(vectors[train], target[train])
        scores.append(float((model.predict(vectors[test]) == target[test]).mean()))
    return float(np.mean(scores))


def v_measure(vectors: np.ndarray, labels: list[str], seeds: int = 5) -> float:
    """Mean V-measure of mini-batch k-means (k = number of labels) over seeds."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    scores = []
    for seed in range(seeds):
        model = MiniBatchKMeans(n_clusters=k, batch_size=512, init="k-means++", n_init=1, random_state=seed)
        scores.append(v_measure_score(labels, model.fit_predict(vectors.astype(np.float64))))
    return float(np.mean(scores))


def build_tasks(sizes: Sizes) -> list[Task]:
    """The suite: Lee STS, Python FAQ retrieval, library-page retrieval, VADER tweets, 3 newsgroups."""
    lee_documents, lee_pairs = lee_sts()
    faq = python_faq()
    faq = faq.subset(sizes.faq) if sizes.faq else faq
    library = python_library_pages()
    library = library.subset(sizes.library) if sizes.library else library
    tweets, tweet_labels = stratified_sample(vader_tweets(), sizes.tweets)
    posts, post_labels = stratified_sample(newsgroups_3(), sizes.posts)
    return [
        Task("lee-sts", "sts", "spearman", documents=lee_documents, pairs=lee_pairs),
        Task("faq-retrieval", "retrieval", "ndcg@10", faq.queries, faq.documents, list(faq.relevant)),
        Task("library-retrieval", "retrieval", "ndcg@10", library.queries, library.documents, list(library.relevant)),
        Task("vader-classification", "classification", "accuracy", documents=tweets, labels=tweet_labels),
        Task("newsgroups-clustering", "clustering", "v_measure", documents=posts, labels=post_labels),
    ]
