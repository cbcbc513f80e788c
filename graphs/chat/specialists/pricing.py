"""The pricing specialist: what a quantity of an item costs, and whether to discount it.

``pricing.price`` reads :func:`tools.pricing.calculate` for each product named (up to :data:`MAX_PRODUCTS`), the
quantity a number in the question gives ("10 units", "for 10", "qty 10"; else 1), at the first store named (none:
store promotions do not apply) on the data's "today". The text states the base price, the discount, the unit price
after it, the total and the rule behind it. ``pricing.recommend`` reads :func:`tools.pricing.recommend`: the
suggested discount and its expected effect as the tool gives them, or that it suggests none and why. Both need a
product; without one the answer is a question back. Every number in the text is formatted from a tool result.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from graphs.chat.specialists.base import (
    Answer,
    Ask,
    Handler,
    call,
    clarify,
    count,
    dispatch,
    money,
    pct,
    table,
)
from ml.nlu import ProductRef
from tools import pricing as pricing_tools

MAX_PRODUCTS = 5
"""Products priced in one answer."""

_QUANTITY = re.compile(
    r"\b(\d{1,6})\s*(?:x\b|×|units?\b|pcs\b|pieces?\b|items?\b|packs?\b|of\s+(?:the\s+|them\b|those\b)?)"
    r"|\b(?:for|qty|quantity(?:\s+of)?|buy(?:ing)?)\s*:?\s*(\d{1,6})\b(?!\s*-)",
    re.IGNORECASE,
)
_NUMBER_WORD = re.compile(r"(?<![\w#.-])(\d{1,6})\s+([A-Za-z]+)")
_ID_BEFORE = re.compile(r"(?:stores?|shops?|branch|skus?|items?|products?|top|no\.?|number|#)\s*$", re.IGNORECASE)
_PRICE_COLUMNS = ["sku", "product", "quantity", "base_price", "discount_pct", "unit_price", "total", "savings",
                  "pricing_rule", "on"]  # fmt: skip
_PRICE_UNITS = {"quantity": "units", "base_price": "USD", "discount_pct": "%", "unit_price": "USD", "total": "USD",
                "savings": "USD"}  # fmt: skip
_RECOMMEND_COLUMNS = ["sku", "product", "current_price", "discount_pct", "suggested_price", "promotion_days",
                      "expected_lift_pct", "extra_units", "net_benefit", "elasticity"]  # fmt: skip
_RECOMMEND_UNITS = {"current_price": "USD", "discount_pct": "%", "suggested_price": "USD", "promotion_days": "days",
                    "expected_lift_pct": "%", "extra_units": "units", "net_benefit": "USD"}  # fmt: skip


def _needs_product(ask: Ask) -> Answer:
    """The question back when no product is named."""
    return clarify("Which product? Name it or give its sku (e.g. sku 1001).", store_ids=list(ask.entities.store_ids))


def quantity_of(text: str, products: Sequence[ProductRef] = ()) -> int | None:
    """The quantity a question asks about ("10 units", "for 10", "qty 10", or a number just before a word of a
    product's name: "3 espresso beans"): 1 when it names none, None when it is not at least 1."""
    m = _QUANTITY.search(text)
    if m is not None:
        value = int(m.group(1) or m.group(2))
    else:
        words = {w.lower() for p in products for w in re.findall(r"[A-Za-z]{3,}", p.name)}
        found = (n for n in _NUMBER_WORD.finditer(text) if n.group(2).lower() in words)
        first = next((n for n in found if not _ID_BEFORE.search(text[: n.start()])), None)
        value = int(first.group(1)) if first is not None else 1
    return value if value >= 1 else None


def _focus(store_id: int | None, products: Sequence[ProductRef]) -> dict[str, Any]:
    return {"store_ids": [store_id] if store_id is not None else [], "skus": [p.sku for p in products]}


# -- pricing.price ------------------------------------------------------------------------------------------------


def _rule(result: dict[str, Any]) -> str:
    """The pricing rule in force, in words, from the tool's ``pricing_rule``."""
    rule = result["pricing_rule"]
    if rule is None:
        return "no pricing rule is in force for it (the policy's planning limits apply)"
    return (f"pricing rule {rule['rule_id']} ({rule['scope']} {rule['rule_type']}: at most "
            f"{pct(rule['max_discount_percent'])} off, at least {pct(rule['min_margin_percent'])} margin)")  # fmt: skip


def _price_sentence(r: dict[str, Any]) -> str:
    where = f"at store {r['store_id']}" if r["store_id"] is not None else "with no store given"
    return (f"{count(r['quantity'])} x {r['product_name']} (sku {r['sku']}) {where} on {r['on']}: base price "
            f"{money(r['base_price'])}, discount {pct(r['discount_percent'])}, {money(r['unit_price_after_discount'])} "
            f"each after discount, total {money(r['total_cost'])}{_saving(r['savings'])}. Rule: {_rule(r)}; "
            f"{r['explanation']}.")  # fmt: skip


def _saving(savings: float) -> str:
    return f" (saving {money(savings)})" if savings > 0 else ""


def _price_row(r: dict[str, Any]) -> list[Any]:
    rule = r["pricing_rule"]["rule_id"] if r["pricing_rule"] else None
    return [r["sku"], r["product_name"], r["quantity"], r["base_price"], r["discount_percent"],
            r["unit_price_after_discount"], r["total_cost"], r["savings"], rule, r["on"]]  # fmt: skip


async def _price(ask: Ask, tools: list[str]) -> Answer:
    if not ask.entities.products:
        return _needs_product(ask)
    quantity = quantity_of(ask.text, ask.entities.products)
    if quantity is None:
        return clarify("How many units? Give a whole number of at least 1.", skus=list(ask.entities.skus))
    store_id = ask.entities.store_ids[0] if ask.entities.stores else None
    products = ask.entities.products[:MAX_PRODUCTS]
    results = [await call(tools, "price", pricing_tools.calculate(p.sku, quantity, store_id=store_id, on=ask.as_of))
               for p in products]  # fmt: skip
    text = " ".join(_price_sentence(r) for r in results)
    result = table("price", _PRICE_COLUMNS, [_price_row(r) for r in results], _PRICE_UNITS)
    return Answer(text, table=result, tools=list(tools), focus=_focus(store_id, products))


# -- pricing.recommend --------------------------------------------------------------------------------------------


def _effect(effect: dict[str, Any] | None) -> str:
    if not effect:
        return ""
    return (f" Expected effect: {pct(effect['expected_lift_percent'])} more units ({_units(effect['baseline_units'])} "
            f"-> {_units(effect['expected_units'])}, {_units(effect['extra_units'])} extra), margin after the "
            f"discount {pct(effect['margin_percent_after'])}, net benefit {money(effect['net_benefit'])}.")  # fmt: skip


def _units(value: float) -> str:
    return f"{value:,.1f} units"


def _recommend_sentence(r: dict[str, Any]) -> str:
    what = f"{r['product_name']} (sku {r['sku']})"
    where = f" at store {r['store_id']}" if r["store_id"] is not None else " across all stores"
    if r["recommended_discount_percent"] <= 0:
        return (f"I would not discount {what}{where} now (price {money(r['current_price'])}): "
                f"{r['reason']}.")  # fmt: skip
    approval = f" Running it needs the {r['approval_role']} role's approval." if r["approval_role"] else ""
    return (f"Suggested for {what}{where}: {pct(r['recommended_discount_percent'])} off for "
            f"{count(r['promotion_days'])} days, {money(r['recommended_price'])} instead of "
            f"{money(r['current_price'])}. Why: {r['reason']}.{_effect(r['expected_effect'])}{approval} "
            "This is a suggestion only: nothing is changed.")  # fmt: skip


def _recommend_row(r: dict[str, Any]) -> list[Any]:
    effect = r["expected_effect"] or {}
    return [r["sku"], r["product_name"], r["current_price"], r["recommended_discount_percent"],
            r["recommended_price"], r["promotion_days"], effect.get("expected_lift_percent"),
            effect.get("extra_units"), effect.get("net_benefit"), r["elasticity"]["value"]]  # fmt: skip


async def _recommend(ask: Ask, tools: list[str]) -> Answer:
    if not ask.entities.products:
        return _needs_product(ask)
    store_id = ask.entities.store_ids[0] if ask.entities.stores else None
    products = ask.entities.products[:MAX_PRODUCTS]
    results = [await call(tools, "price_recommendation",
                          pricing_tools.recommend(p.sku, store_id=store_id, on=ask.as_of))
               for p in products]  # fmt: skip
    text = " ".join(_recommend_sentence(r) for r in results)
    result = table("discount suggestion", _RECOMMEND_COLUMNS, [_recommend_row(r) for r in results], _RECOMMEND_UNITS)
    return Answer(text, table=result, tools=list(tools), focus=_focus(store_id, products))


# -- entry point --------------------------------------------------------------------------------------------------

_HANDLERS: dict[str, Handler] = {
    "pricing.price": _price,
    "pricing.recommend": _recommend,
}


async def answer(ask: Ask) -> Answer:
    """The pricing specialist's answer to ``ask`` (``pricing.price`` or ``pricing.recommend``)."""
    return await dispatch("pricing", _HANDLERS, ask)
