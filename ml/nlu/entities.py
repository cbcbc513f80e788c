"""Entities in a retail question, resolved against the catalog: stores, products, ids, filters and periods.

:func:`extract` reads one question against a :class:`Catalog` (stores, products, categories and the data's
"today") and returns :class:`Entities`:

* **stores** by id ("store 3", "stores 1 and 2", "#3", "store three"), by name ("Oakhaven Market") or by city
  ("in Redhollow"); a city with several stores is *ambiguous*;
* **products** by sku ("sku 1004", "item #1004", or a bare catalog sku "1004") or by name, fuzzy and partial
  ("cold brew" -> "... Cold Brew Coffee", "tothpaste" -> "... Toothpaste"); several equally good names are
  *ambiguous*;
* **categories** (fuzzy, with synonyms: "drinks" -> beverages, "clothing" -> apparel);
* **order ids** (the seed's ``ORD-000123``, "ORD-123", and any upstream id after the word "order":
  "order 10234", "order SO-2024-0017"), **customer ids** ("customer 17", "C00123"), **plan ids** (UUIDs);
* **warehouse blocks** A-F ("warehouse F", "block C", "warehouses A and C") and **shipping modes**
  (flight / air, road / truck, ship / sea: ``Flight``, ``Road``, ``Ship`` as in the orders table);
* a **limit** ("top 5", "10 best", "top ten") and the **period** and **comparison period**
  (:mod:`ml.nlu.periods`).

A mention that looks like an entity but resolves to nothing ("store 99", "sku 42", "warehouse G", "2026-13-01")
is reported in ``unknown`` with its kind, so the bot can say so; an ambiguous one is in ``ambiguous`` with its
candidates, so the bot can ask which one was meant.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.errors import InputError
from ml.nlu.periods import Period, parse_periods

__all__ = [
    "MAX_TEXT_CHARS",
    "Ambiguous",
    "Catalog",
    "Entities",
    "ProductRef",
    "StoreRef",
    "Unknown",
    "check_text",
    "extract",
]

MAX_TEXT_CHARS = 2000
"""The longest question read (characters)."""

FUZZY_CUTOFF = 0.84
"""Least difflib similarity for a misspelt name to count as a mention."""

_TIE = 0.02
"""Candidates within this similarity of the best one are equally good (ambiguous)."""

MODES = ("Flight", "Road", "Ship")
BLOCKS = ("A", "B", "C", "D", "E", "F")

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "twenty": 20, "fifty": 50,
}  # fmt: skip
_NUM = r"(?:\d{1,4}|" + "|".join(_NUMBER_WORDS) + r")"

_GENERIC = frozenset(
    re.split(
        r"\s+",
        "set kit game games mini pack stick watch car house drink wash water lights light boxes box bags bag chair "
        "cream oil shirt coat shoes beans salt bear train blocks easel path sets item items product products "
        "store stores order orders week month year sales price",
    )
)
"""Words of product names too common to name a product on their own."""

_CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "grocery": ("groceries", "food", "foods", "pantry"),
    "beverages": ("beverage", "drinks", "soft drinks"),
    "household": ("home goods", "homeware", "housewares", "cleaning"),
    "personal_care": ("personal care", "toiletries", "beauty", "health and beauty"),
    "electronics": ("electronic", "tech", "gadgets", "consumer electronics"),
    "apparel": ("clothing", "clothes", "fashion", "garments"),
    "toys": ("toy", "toys and games"),
    "garden": ("gardening", "outdoor", "lawn and garden"),
}

_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


# --- public data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreRef:
    """A store of the catalog."""

    store_id: int
    name: str
    city: str


@dataclass(frozen=True)
class ProductRef:
    """A product of the catalog."""

    sku: int
    name: str
    category: str


@dataclass(frozen=True)
class Catalog:
    """What questions are resolved against: the stores, products and categories, and the data's "today"."""

    stores: tuple[StoreRef, ...]
    products: tuple[ProductRef, ...]
    categories: tuple[str, ...]
    as_of: dt.date

    @classmethod
    def from_frames(cls, stores: pd.DataFrame, products: pd.DataFrame, as_of: dt.date) -> Catalog:
        """From the ``stores`` (store_id, name, city) and ``products`` (sku, name, category) tables."""
        _require_columns(stores, "stores", ("store_id", "name", "city"))
        _require_columns(products, "products", ("sku", "name", "category"))
        if not isinstance(as_of, dt.date):
            raise InputError(f"must be a date, got {as_of!r}", field="as_of")
        store_refs = tuple(StoreRef(int(r.store_id), str(r.name), str(r.city)) for r in stores.itertuples(index=False))
        product_refs = tuple(
            ProductRef(int(r.sku), str(r.name), str(r.category)) for r in products.itertuples(index=False)
        )
        categories = tuple(sorted({p.category for p in product_refs}))
        return cls(store_refs, product_refs, categories, as_of)

    def store(self, store_id: int) -> StoreRef | None:
        """The store with this id, if any."""
        return next((s for s in self.stores if s.store_id == store_id), None)

    def product(self, sku: int) -> ProductRef | None:
        """The product with this sku, if any."""
        return next((p for p in self.products if p.sku == sku), None)


@dataclass(frozen=True)
class Unknown:
    """A mention that looks like an entity of ``kind`` (store, sku, warehouse_block, period) but matches nothing."""

    kind: str
    text: str


@dataclass(frozen=True)
class Ambiguous:
    """A mention matching several entities of ``kind`` (store, product): their names and ids."""

    kind: str
    text: str
    candidates: tuple[str, ...]
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Entities:
    """Everything :func:`extract` found in one question, in order of mention."""

    stores: tuple[StoreRef, ...] = ()
    products: tuple[ProductRef, ...] = ()
    categories: tuple[str, ...] = ()
    order_ids: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()
    plan_ids: tuple[str, ...] = ()
    warehouse_blocks: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    limit: int | None = None
    period: Period | None = None
    compare_period: Period | None = None
    unknown: tuple[Unknown, ...] = ()
    ambiguous: tuple[Ambiguous, ...] = ()

    @property
    def store_ids(self) -> tuple[int, ...]:
        return tuple(s.store_id for s in self.stores)

    @property
    def skus(self) -> tuple[int, ...]:
        return tuple(p.sku for p in self.products)

    @property
    def customer_numbers(self) -> tuple[int, ...]:
        """Customer ids as integers ("C00123" -> 123), as the customers table keys them."""
        return tuple(int(c.lstrip("Cc")) for c in self.customer_ids if c.lstrip("Cc").isdigit())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entities:
        """The entities :meth:`to_dict` gave (a conversation's focus, kept in the thread's state)."""
        period, compare = data.get("period"), data.get("compare_period")
        return cls(
            stores=tuple(StoreRef(**s) for s in data.get("stores") or ()),
            products=tuple(ProductRef(**p) for p in data.get("products") or ()),
            categories=tuple(data.get("categories") or ()),
            order_ids=tuple(data.get("order_ids") or ()),
            customer_ids=tuple(data.get("customer_ids") or ()),
            plan_ids=tuple(data.get("plan_ids") or ()),
            warehouse_blocks=tuple(data.get("warehouse_blocks") or ()),
            modes=tuple(data.get("modes") or ()),
            limit=data.get("limit"),
            period=Period.from_dict(period) if period else None,
            compare_period=Period.from_dict(compare) if compare else None,
        )

    def is_empty(self) -> bool:
        """True when nothing at all was found."""
        return self == Entities()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "stores": [s.__dict__ for s in self.stores],
            "products": [p.__dict__ for p in self.products],
            "categories": list(self.categories),
            "order_ids": list(self.order_ids),
            "customer_ids": list(self.customer_ids),
            "plan_ids": list(self.plan_ids),
            "warehouse_blocks": list(self.warehouse_blocks),
            "modes": list(self.modes),
            "limit": self.limit,
            "period": self.period.to_dict() if self.period else None,
            "compare_period": self.compare_period.to_dict() if self.compare_period else None,
            "unknown": [u.__dict__ for u in self.unknown],
            "ambiguous": [{**a.__dict__, "candidates": list(a.candidates), "ids": list(a.ids)} for a in self.ambiguous],
        }


def check_text(text: object) -> str:
    """The question, stripped; :class:`InputError` naming ``text`` when it is not usable."""
    if not isinstance(text, str):
        raise InputError(f"must be a string, got {type(text).__name__}", field="text")
    stripped = text.strip()
    if not stripped:
        raise InputError("must not be empty", field="text")
    if len(stripped) > MAX_TEXT_CHARS:
        raise InputError(f"must be at most {MAX_TEXT_CHARS} characters, got {len(stripped)}", field="text")
    return stripped


def _require_columns(frame: pd.DataFrame, name: str, columns: tuple[str, ...]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputError("must be a DataFrame", field=name)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", field=name, allowed=columns)


# --- the scan: a copy of the text whose used parts are blanked ----------------------------------------------


@dataclass
class _Scan:
    """The question being read; parts already read as an entity are blanked so nothing reads them twice."""

    text: str
    unknown: list[Unknown] = field(default_factory=list)
    ambiguous: list[Ambiguous] = field(default_factory=list)

    def finditer(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """Matches of ``pattern`` in the unread text, each blanked once yielded."""
        for m in list(pattern.finditer(self.text)):
            if m.group(0).strip():
                yield m
                self.blank(m.start(), m.end())

    def consume(self, pattern: re.Pattern[str]) -> None:
        """Blank every match of ``pattern`` (read by another parser, e.g. dates)."""
        for _ in self.finditer(pattern):
            pass

    def blank(self, start: int, end: int) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]


def _dedupe(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word.lower()]


def _numbers(group: str) -> list[int]:
    return [_number(w) for w in re.findall(_NUM, group, re.IGNORECASE)]


# --- ids ------------------------------------------------------------------------------------------------------

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b")
_SEED_ORDER = re.compile(r"\bORD[-_ ]?(\d{1,9})\b", re.IGNORECASE)
_UPSTREAM_ORDER = re.compile(r"\b[A-Z]{2,5}-\d{4,}(?:-\d+)*\b")
_ID_TAIL = r"[A-Za-z0-9][A-Za-z0-9._:-]*"
_KEYED_ORDER = re.compile(
    rf"\borders?\s*(?:id\s*|number\s*|no\.?\s*|ref\s*)?[:#]?\s*({_ID_TAIL}(?:\s*(?:,|and|or|&)\s*#?{_ID_TAIL})*)",
    re.IGNORECASE,
)
_CUSTOMER = re.compile(
    r"\b(?:customers?|client|shopper|member)\s*(?:id\s*|number\s*|no\.?\s*)?[:#]?\s*(C?\d{1,9})\b", re.IGNORECASE
)
_CUSTOMER_CODE = re.compile(r"\bC\d{3,9}\b", re.IGNORECASE)


def _order_ids(scan: _Scan) -> list[str]:
    found: list[tuple[int, str]] = []
    for m in scan.finditer(_SEED_ORDER):
        found.append((m.start(), f"ORD-{m.group(1).zfill(6)}"))
    for m in scan.finditer(_UPSTREAM_ORDER):
        found.append((m.start(), m.group(0)))
    for m in list(_KEYED_ORDER.finditer(scan.text)):
        ids = [t.rstrip("._:-") for t in re.split(r"\s*(?:,|\band\b|\bor\b|&)\s*#?", m.group(1), flags=re.IGNORECASE)]
        ids = [t for t in ids if any(c.isdigit() for c in t) and not _ISO_DATE.fullmatch(t)]
        if ids:
            found.extend((m.start(1), t) for t in ids)
            scan.blank(m.start(), m.end())
    return [oid for _, oid in sorted(found)]


def _customer_ids(scan: _Scan) -> list[str]:
    found = [(m.start(), m.group(1).upper()) for m in scan.finditer(_CUSTOMER)]
    found += [(m.start(), m.group(0).upper()) for m in scan.finditer(_CUSTOMER_CODE)]
    return [c for _, c in sorted(found)]


# --- stores and skus by number -------------------------------------------------------------------------------

_LIST = rf"{_NUM}(?:\s*(?:,|&|\band\b|\bor\b|/|\+)\s*#?{_NUM})*"
_STORE_ID = re.compile(rf"\b(?:stores?|shops?|branch(?:es)?)\s*(?:#\s*|no\.?\s*|number\s*|id\s*)?({_LIST})\b", re.I)
_HASH_ID = re.compile(r"(?<![\w#])#\s?(\d{1,4})\b")
_SKU_ID = re.compile(
    r"\b(?:skus?|items?|products?|articles?)\s*(?:#\s*|no\.?\s*|number\s*|id\s*)?:?\s*(\d{1,9}(?:\s*(?:,|&|\band\b|"
    r"\bor\b|/)\s*#?\d{1,9})*)\b",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(r"(?<![\w.-])(\d{3,9})(?![\w.-])")


def _stores_by_id(scan: _Scan, catalog: Catalog, *, hashed: bool = False) -> list[tuple[int, StoreRef]]:
    """Stores named by number: "store 3", "stores 1 and 2"; with ``hashed``, a bare "#3"."""
    found: list[tuple[int, StoreRef]] = []
    if hashed:
        matches = [(m, [int(m.group(1))]) for m in scan.finditer(_HASH_ID)]
    else:
        matches = [(m, _numbers(m.group(1))) for m in scan.finditer(_STORE_ID)]
    for m, ids in matches:
        for store_id in ids:
            store = catalog.store(store_id)
            if store is None:
                scan.unknown.append(Unknown("store", f"store {store_id}"))
            else:
                found.append((m.start(), store))
    return found


def _products_by_sku(scan: _Scan, catalog: Catalog) -> list[tuple[int, ProductRef]]:
    """Products named by sku after a keyword: "sku 1004", "items 1001 and 1002"."""
    found: list[tuple[int, ProductRef]] = []
    for m in scan.finditer(_SKU_ID):
        for sku in _numbers(m.group(1)):
            product = catalog.product(sku)
            if product is None:
                scan.unknown.append(Unknown("sku", f"sku {sku}"))
            else:
                found.append((m.start(), product))
    return found


def _products_by_bare_sku(scan: _Scan, catalog: Catalog) -> list[tuple[int, ProductRef]]:
    """A bare number that is a catalog sku ("how many 1004 left?"); other numbers are left alone."""
    found: list[tuple[int, ProductRef]] = []
    for m in list(_BARE_NUMBER.finditer(scan.text)):
        product = catalog.product(int(m.group(1)))
        if product is not None:
            found.append((m.start(), product))
            scan.blank(m.start(), m.end())
    return found


# --- warehouse blocks, shipping modes, limit --------------------------------------------------------------------

_BLOCK = re.compile(
    r"\b(?:warehouses?|blocks?|wh|whs)\b[\s-]*(?:block\s*)?([a-z](?:\s*(?:,|&|\band\b|\bor\b|/)\s*[a-z])*)\b(?!['’]\w)",
    re.IGNORECASE,
)
_MODE_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Flight", re.compile(r"\b(?:flights?|air(?:\s*freight|\s*cargo)?|airfreight|plane|planes|by\s+air)\b", re.I)),
    ("Road", re.compile(r"\b(?:road|trucks?|lorry|lorries|by\s+ground|ground\s+shipping)\b", re.I)),
    (
        "Ship",
        re.compile(
            r"\b(?:sea(?:\s*freight)?|ocean|vessels?|boats?|maritime|(?:by|via|on)\s+(?:a\s+)?ship|"
            r"ship\s+(?:mode|freight|shipments|orders|parcels)|mode\s+(?:of\s+shipment\s+)?(?:is\s+)?ship)\b",
            re.I,
        ),
    ),
)
_LIMIT = re.compile(
    rf"\b(?:top|first|best|limit(?:\s+to)?|bottom|worst)[\s-]*({_NUM})\b|\b({_NUM})\s+(?:best|top|most|biggest|largest|"
    r"worst|highest|lowest|slowest|fastest)\b",
    re.IGNORECASE,
)


def _blocks(scan: _Scan) -> list[str]:
    found: list[str] = []
    for m in list(_BLOCK.finditer(scan.text)):
        letters = re.findall(r"(?<![a-z])[a-z](?![a-z])", m.group(1), re.IGNORECASE)
        if letters == ["a"] and not re.match(r"\s*(?:$|[?.!,;)]|and\b|or\b)", scan.text[m.end() :]):
            continue  # "warehouse a lot": the article, not block A
        for letter in letters:
            if letter.upper() in BLOCKS:
                found.append(letter.upper())
            else:
                scan.unknown.append(Unknown("warehouse_block", f"warehouse {letter.upper()}"))
        scan.blank(m.start(), m.end())
    return found


def _modes(scan: _Scan) -> list[str]:
    found: list[tuple[int, str]] = []
    for mode, pattern in _MODE_WORDS:
        found += [(m.start(), mode) for m in scan.finditer(pattern)]
    return [mode for _, mode in sorted(found)]


def _limit(scan: _Scan) -> int | None:
    for m in scan.finditer(_LIMIT):
        value = _number(m.group(1) or m.group(2))
        if 0 < value <= 1000:
            return value
    return None


# --- names: fuzzy phrase matching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Alias:
    """One way of naming an entity: its words, what it names (kind, ids) and whether it names a whole name."""

    words: tuple[str, ...]
    kind: str
    ids: tuple[int, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class _Match:
    start: int
    end: int
    alias: _Alias
    score: float


def _words(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(text.lower().replace("_", " ")))


def _product_aliases(product: ProductRef) -> Iterator[_Alias]:
    words = _words(product.name)
    for i in range(len(words)):
        for j in range(i + 2, len(words) + 1):
            yield _Alias(words[i:j], "product", (product.sku,))
    if len(words) == 1:
        yield _Alias(words, "product", (product.sku,))
    for word in words[1:]:
        if word.isalpha() and len(word) >= 3 and word not in _GENERIC:
            yield _Alias((word,), "product", (product.sku,))


def _store_aliases(stores: tuple[StoreRef, ...]) -> Iterator[_Alias]:
    for store in stores:
        words = _words(store.name)
        for i in range(len(words)):
            for j in range(i + 2, len(words) + 1):
                yield _Alias(words[i:j], "store", (store.store_id,))
    cities: dict[tuple[str, ...], list[int]] = {}
    for store in stores:
        cities.setdefault(_words(store.city), []).append(store.store_id)
    for words, ids in cities.items():
        yield _Alias(words, "city", tuple(ids))


def _category_aliases(categories: tuple[str, ...]) -> Iterator[_Alias]:
    for index, category in enumerate(categories):
        for name in (category, *_CATEGORY_SYNONYMS.get(category, ())):
            yield _Alias(_words(name), "category", (index,))


class _SizeIndex:
    """The aliases of one number of words, indexed so that most never meet :func:`_similarity`: by text (for the
    exact and plural matches) and by character counts (difflib's ``quick_ratio`` bound, for all of them at once)."""

    def __init__(self, aliases: list[_Alias]) -> None:
        self.aliases = tuple(aliases)
        self.by_text = {a.text: i for i, a in enumerate(aliases)}
        self.lengths = np.array([len(a.text) for a in aliases])
        self.alphabet = {c: i for i, c in enumerate(sorted({c for a in aliases for c in a.text}))}
        self.letters = np.zeros((len(aliases), len(self.alphabet)), dtype=np.int32)
        for row, alias in enumerate(aliases):
            for c in alias.text:
                self.letters[row, self.alphabet[c]] += 1

    def candidates(self, phrases: list[str]) -> list[list[int]]:
        """For each said phrase, the aliases :func:`_similarity` can score at least :data:`FUZZY_CUTOFF` against
        it, in alias order: the ones equal to it or to a plural of it (or it to theirs), and, for a phrase of 5 or
        more characters, those of 5 or more within 3 of its length whose shared characters (with multiplicity)
        reach the cutoff: ``quick_ratio``, an upper bound of the ratio (computed for all phrases at once)."""
        found: list[set[int]] = []
        for said in phrases:
            exact = [said, said + "s"]
            if said.endswith("s"):
                exact.append(said[:-1])
            if said.endswith("es"):
                exact.append(said[:-2])
            found.append({self.by_text[text] for text in exact if text in self.by_text})
        long = [i for i, said in enumerate(phrases) if len(said) >= 5]
        if long:
            counts = np.zeros((len(long), len(self.alphabet)), dtype=np.int32)
            for row, i in enumerate(long):
                for c in phrases[i]:
                    if c in self.alphabet:
                        counts[row, self.alphabet[c]] += 1
            shared = np.minimum(self.letters[None, :, :], counts[:, None, :]).sum(axis=2)
            said_lengths = np.array([len(phrases[i]) for i in long])[:, None]
            near = (self.lengths >= 5) & (np.abs(self.lengths - said_lengths) <= 3)
            near &= 2.0 * shared / (said_lengths + self.lengths) >= FUZZY_CUTOFF
            for row, column in zip(*np.nonzero(near), strict=True):
                found[long[row]].add(int(column))
        return [sorted(f) for f in found]


@functools.lru_cache(maxsize=16)
def _aliases(catalog: Catalog, kind: str) -> dict[int, _SizeIndex]:
    """The catalog's aliases of one kind (product, store, category), indexed by number of words."""
    if kind == "product":
        aliases: Iterable[_Alias] = (a for p in catalog.products for a in _product_aliases(p))
    elif kind == "store":
        aliases = _store_aliases(catalog.stores)
    else:
        aliases = _category_aliases(catalog.categories)
    merged: dict[tuple[str, ...], tuple[str, list[int]]] = {}
    for alias in aliases:
        entry = merged.setdefault(alias.words, (alias.kind, []))
        entry[1].extend(i for i in alias.ids if i not in entry[1])
    by_size: dict[int, list[_Alias]] = {}
    for words, (alias_kind, ids) in merged.items():
        by_size.setdefault(len(words), []).append(_Alias(words, alias_kind, tuple(ids)))
    return {n: _SizeIndex(group) for n, group in by_size.items()}


def _similarity(said: str, alias: str) -> float:
    """How close a said phrase is to an alias: 1.0 equal (or a plural of it), else difflib's ratio."""
    if said == alias or said in (alias + "s", alias + "es") or alias == said + "s":
        return 1.0
    if min(len(said), len(alias)) < 5 or abs(len(said) - len(alias)) > 3:
        return 0.0
    matcher = difflib.SequenceMatcher(None, said, alias)
    if matcher.real_quick_ratio() < FUZZY_CUTOFF or matcher.quick_ratio() < FUZZY_CUTOFF:
        return 0.0
    return matcher.ratio()


def _name_matches(tokens: list[re.Match[str]], index: dict[int, _SizeIndex]) -> list[_Match]:
    words = [t.group(0) for t in tokens]
    found: list[_Match] = []
    for size, group in index.items():
        phrases = [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]
        for i, (said, candidates) in enumerate(zip(phrases, group.candidates(phrases), strict=True)):
            for position in candidates:
                alias = group.aliases[position]
                score = _similarity(said, alias.text)
                if score >= FUZZY_CUTOFF:
                    found.append(_Match(i, i + size, alias, score))
    return found


def _pick(matches: list[_Match]) -> list[list[_Match]]:
    """Non-overlapping mentions, longest first; each is the list of its equally good matches."""
    chosen: list[list[_Match]] = []
    taken: set[int] = set()
    for best in sorted(matches, key=lambda m: (m.start - m.end, -m.score, m.start)):
        span = set(range(best.start, best.end))
        if span & taken:
            continue
        taken |= span
        ties = [m for m in matches if (m.start, m.end) == (best.start, best.end) and m.score >= best.score - _TIE]
        chosen.append(ties)
    return sorted(chosen, key=lambda group: group[0].start)


def _resolve_names(scan: _Scan, catalog: Catalog, kind: str) -> list[tuple[int, list[int], str, str]]:
    """Name mentions of one kind: (position, candidate ids, said text, alias kind); blanks what it read."""
    tokens = list(_TOKEN.finditer(scan.text.lower()))
    found = []
    for group in _pick(_name_matches(tokens, _aliases(catalog, kind))):
        start, end = tokens[group[0].start].start(), tokens[group[0].end - 1].end()
        ids = list(dict.fromkeys(i for m in group for i in m.alias.ids))
        found.append((start, ids, scan.text[start:end], group[0].alias.kind))
        scan.blank(start, end)
    return found


def _stores_by_name(scan: _Scan, catalog: Catalog) -> list[tuple[int, StoreRef]]:
    found: list[tuple[int, StoreRef]] = []
    for position, ids, said, _ in _resolve_names(scan, catalog, "store"):
        stores = [s for s in catalog.stores if s.store_id in ids]
        if len(stores) == 1:
            found.append((position, stores[0]))
        else:
            scan.ambiguous.append(
                Ambiguous("store", said, tuple(s.name for s in stores), tuple(s.store_id for s in stores))
            )
    return found


def _products_by_name(scan: _Scan, catalog: Catalog) -> list[tuple[int, ProductRef]]:
    found: list[tuple[int, ProductRef]] = []
    for position, ids, said, _ in _resolve_names(scan, catalog, "product"):
        products = [p for p in catalog.products if p.sku in ids]
        if len(products) == 1:
            found.append((position, products[0]))
        else:
            scan.ambiguous.append(
                Ambiguous("product", said, tuple(p.name for p in products), tuple(p.sku for p in products))
            )
    return found


def _categories(scan: _Scan, catalog: Catalog) -> list[str]:
    return [catalog.categories[ids[0]] for _, ids, _, _ in _resolve_names(scan, catalog, "category")]


# --- the whole question -----------------------------------------------------------------------------------------


def _ordered(found: list[tuple[int, Any]]) -> tuple[Any, ...]:
    return _dedupe(item for _, item in sorted(found, key=lambda pair: pair[0]))


def extract(text: str, catalog: Catalog, *, base_period: Period | None = None) -> Entities:
    """The entities of one question, resolved against ``catalog``.

    ``base_period`` is the period already in focus in the conversation: a follow-up's "the week before" is
    read against it.
    """
    text = check_text(text)
    periods = parse_periods(text, catalog.as_of, base_period)
    scan = _Scan(text)
    plan_ids = [m.group(0).lower() for m in scan.finditer(_UUID)]
    order_ids = _order_ids(scan)
    scan.consume(_ISO_DATE)
    customer_ids = _customer_ids(scan)
    stores = _stores_by_id(scan, catalog)
    products = _products_by_sku(scan, catalog)
    stores += _stores_by_id(scan, catalog, hashed=True)
    products += _products_by_bare_sku(scan, catalog)
    blocks = _blocks(scan)
    modes = _modes(scan)
    limit = _limit(scan)
    stores += _stores_by_name(scan, catalog)
    products += _products_by_name(scan, catalog)
    categories = _categories(scan, catalog)
    scan.unknown.extend(Unknown("period", u) for u in periods.unknown)
    return Entities(
        stores=_ordered(stores),
        products=_ordered(products),
        categories=_dedupe(categories),
        order_ids=_dedupe(order_ids),
        customer_ids=_dedupe(customer_ids),
        plan_ids=_dedupe(plan_ids),
        warehouse_blocks=_dedupe(blocks),
        modes=_dedupe(modes),
        limit=limit,
        period=periods.period,
        compare_period=periods.compare_period,
        unknown=_dedupe(scan.unknown),
        ambiguous=_dedupe(scan.ambiguous),
    )
