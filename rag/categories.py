"""The closed set of document categories: those of the packaged policy documents, plus ``case``.

Every packaged document (``rag/content/*.md``) names its category in its front matter; those names, and
``case`` for recorded resolutions, are the only categories a document may have and a search may filter
on. Adding a packaged document with a new category adds that category. The search and ingest request
models publish the set in OpenAPI, and the knowledge base rejects anything else naming the allowed values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from rag.cases import CASE_CATEGORY
from rag.documents import split_front_matter, template_paths


@functools.cache
def document_categories() -> tuple[str, ...]:
    """Sorted categories of the packaged policy documents, then ``case``."""
    found = set()
    for path in template_paths():
        front, _ = split_front_matter(path.read_text(encoding="utf-8"), path.name)
        category = front.get("category")
        if isinstance(category, str) and category:
            found.add(category)
    return (*sorted(found), CASE_CATEGORY)


def unknown_category_message(field: str, value: object, allowed: Iterable[str] | None = None) -> str:
    """``category: 'returns' is not allowed; allowed: carrier_slas, ...`` (one wording everywhere)."""
    names = ", ".join(allowed if allowed is not None else document_categories())
    return f"{field}: {value!r} is not allowed; allowed: {names}"
