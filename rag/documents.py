"""Policy documents: markdown templates rendered from the policy file and split into cited sections.

Each packaged document (``rag/content/*.md``) starts with YAML front matter (``doc_id``, ``title``,
``category``, ``agents``); each ``## Heading {#section-id}`` opens a section whose citation id is
``policy:<doc_id>#<section-id>``. A ``<!-- meta: key=value; key=a,b -->`` line under a heading sets
section metadata (``agents``, ``mode``, ``warehouse``, ``severity``) used as search filters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rag.generators import expand
from rag.policy import Policy, get_policy
from rag.templating import render

CONTENT_DIR = Path(__file__).parent / "content"
DOC_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
CATEGORY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
META_KEYS = ("agents", "mode", "warehouse", "severity")
LIST_META_KEYS = ("agents",)

_HEADING = re.compile(r"^(#{1,2})\s+(.+?)\s*(?:\{#([a-z0-9][a-z0-9-]*)\})?\s*$")
_META = re.compile(r"^<!--\s*meta:\s*(.*?)\s*-->\s*$")


class DocumentError(ValueError):
    """A document is malformed (front matter, ids, metadata); the message names the file and field."""


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60].strip("-") or "section"


@dataclass
class Section:
    """One section of a document: the unit of retrieval and citation."""

    doc_id: str
    doc_title: str
    heading: str
    section_id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    policy_keys: list[str] = field(default_factory=list)
    citation_prefix: str = "policy"

    @property
    def citation_id(self) -> str:
        return f"{self.citation_prefix}:{self.doc_id}#{self.section_id}"


@dataclass
class Document:
    """A document ready for ingestion: identity, category, default metadata and sections."""

    doc_id: str
    title: str
    category: str
    sections: list[Section]
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_meta(raw: str, source: str) -> dict[str, Any]:
    """Parse ``key=value; key=a,b`` section metadata."""
    meta: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in raw.split(";"))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in META_KEYS:
            raise DocumentError(f"{source}: meta item {item!r}: expected key=value with key in {', '.join(META_KEYS)}")
        values = [v.strip() for v in value.split(",") if v.strip()]
        meta[key] = values if key in LIST_META_KEYS or len(values) > 1 else values[0]
    return meta


_BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\||#|```|>|\d+\.\s)")


def reflow(text: str) -> str:
    """Join hard-wrapped lines of a paragraph or list item; keep tables, lists, code and blank lines."""
    out: list[str] = []
    in_code = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            out.append(line)
            continue
        joinable = (
            not in_code
            and out
            and stripped
            and out[-1].strip()
            and not out[-1].lstrip().startswith(("|", "```"))
            and not _BLOCK_START.match(line)
        )
        if joinable:
            out[-1] = out[-1].rstrip() + " " + stripped
        else:
            out.append(line)
    return "\n".join(out)


def split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0:
        raise DocumentError(f"{source}: front matter opened with --- is never closed")
    try:
        data = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as exc:
        raise DocumentError(f"{source}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DocumentError(f"{source}: front matter must be a mapping")
    return data, text[end + 5 :]


def split_sections(body: str, source: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Split markdown at ``#``/``##`` headings into (heading, section_id, body, meta) tuples.

    Text before the first heading becomes an ``intro`` section; deeper headings stay inside their
    section; sections without text are dropped. Section ids are the explicit ``{#id}`` or a slug of
    the heading, unique per document.
    """
    sections: list[tuple[str, str, list[str], dict[str, Any]]] = []
    current: tuple[str, str, list[str], dict[str, Any]] = ("Introduction", "intro", [], {})
    seen: set[str] = set()
    in_code = False
    for line in body.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        heading = None if in_code else _HEADING.match(line)
        if heading:
            sections.append(current)
            title = heading.group(2).strip()
            section_id = heading.group(3) or slugify(title)
            base, n = section_id, 2
            while section_id in seen:
                section_id, n = f"{base}-{n}", n + 1
            seen.add(section_id)
            current = (title, section_id, [], {})
            continue
        meta = _META.match(line.strip())
        if meta and not in_code:
            current[3].update(parse_meta(meta.group(1), f"{source}#{current[1]}"))
            continue
        current[2].append(line)
    sections.append(current)
    parts = [(h, sid, "\n".join(lines).strip(), meta) for h, sid, lines, meta in sections]
    return [part for part in parts if part[2]]


def load_policy_document(path: Path, policy: Policy) -> Document:
    """Render one packaged template against the policy and split it into sections."""
    source = path.name
    front, body = split_front_matter(path.read_text(encoding="utf-8"), source)
    for key in ("doc_id", "title", "category"):
        if not isinstance(front.get(key), str) or not front[key]:
            raise DocumentError(f"{source}: front matter needs a {key}")
    doc_id, title, category = front["doc_id"], front["title"], front["category"]
    if not DOC_ID_PATTERN.match(doc_id):
        raise DocumentError(f"{source}: doc_id {doc_id!r} must match {DOC_ID_PATTERN.pattern}")
    if not CATEGORY_PATTERN.match(category):
        raise DocumentError(f"{source}: category {category!r} must match {CATEGORY_PATTERN.pattern}")
    agents = front.get("agents") or []
    if not isinstance(agents, list):
        raise DocumentError(f"{source}: agents must be a list")
    sections = []
    for heading, section_id, text, meta in split_sections(expand(body, policy), source):
        rendered_heading = render(heading, policy)
        rendered = render(text, policy)
        merged = {"agents": list(agents), **meta}
        sections.append(
            Section(
                doc_id=doc_id,
                doc_title=title,
                heading=rendered_heading.text,
                section_id=section_id,
                text=reflow(rendered.text),
                metadata=merged,
                policy_keys=sorted(set(rendered.keys + rendered_heading.keys)),
            )
        )
    return Document(doc_id=doc_id, title=title, category=category, sections=sections, metadata={"agents": agents})


def template_paths(directory: Path | None = None) -> list[Path]:
    return sorted((directory or CONTENT_DIR).glob("*.md"))


def load_policy_documents(policy: Policy | None = None, directory: Path | None = None) -> list[Document]:
    """All packaged policy documents rendered against ``policy`` (default: :func:`get_policy`)."""
    policy = policy or get_policy()
    documents = [load_policy_document(path, policy) for path in template_paths(directory)]
    ids = [d.doc_id for d in documents]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DocumentError(f"duplicate doc_id in policy documents: {', '.join(duplicates)}")
    return documents


def citations_for_key(key_prefix: str, policy: Policy | None = None) -> list[str]:
    """Citation ids of the sections that state a policy value under ``key_prefix``.

    ``citations_for_key("approval.amount_limits.refund")`` lists the sections a guardrail can cite
    when it allows or blocks a refund.
    """
    found = []
    for document in load_policy_documents(policy):
        for section in document.sections:
            if any(k == key_prefix or k.startswith(key_prefix + ".") for k in section.policy_keys):
                found.append(section.citation_id)
    return found


def parse_admin_document(
    doc_id: str, title: str, content: str, category: str, metadata: dict[str, Any] | None = None
) -> Document:
    """A document given by an admin (plain markdown, no templating) split at its headings."""
    for name, value, pattern in (("doc_id", doc_id, DOC_ID_PATTERN), ("category", category, CATEGORY_PATTERN)):
        if not pattern.match(value):
            raise DocumentError(f"{name}: {value!r} is not allowed; it must match {pattern.pattern}")
    if not title.strip():
        raise DocumentError("title: must not be empty")
    if not content.strip():
        raise DocumentError("content: must not be empty")
    meta = dict(metadata or {})
    sections = [
        Section(doc_id=doc_id, doc_title=title.strip(), heading=heading if sid != "intro" else title.strip(),
                section_id=sid, text=text, metadata={**meta, **smeta})
        for heading, sid, text, smeta in split_sections(content, doc_id)
    ]
    if not sections:
        raise DocumentError("content: has headings but no text")
    return Document(doc_id=doc_id, title=title.strip(), category=category, sections=sections, metadata=meta)
