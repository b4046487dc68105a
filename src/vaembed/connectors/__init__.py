"""Connectors to other systems, each behind an optional extra.

- `chroma`: a native Chroma embedding function (`vaembed[chroma]`);
- `ray`: Ray Data batch embedding, Parquet and Chroma loading (`vaembed[ray]`);
- `mteb`: mteb's encoder protocol (`vaembed[mteb]`);
- `serving`: an OpenAI-compatible embeddings server (`vaembed[serve]`);
- `options`: the model options every connector and adapter takes.

Import each one by its own path (`from vaembed.connectors.chroma import ...`);
this package imports none of them.
"""

from __future__ import annotations
