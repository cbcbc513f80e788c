"""Tables and repeated sections generated from the policy for the document templates.

A template writes ``{{ table:NAME }}`` or ``{{ table:NAME:ARG }}`` (a markdown table) or
``{{ sections:NAME }}`` (one ``##`` section per item, e.g. per warehouse block). Generators emit
template text whose numbers are themselves ``{{ path }}`` placeholders, so every number still comes
from the policy file and the keys used are tracked per section.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rag.policy import IMPORTANCES, ROLES, Policy

DIRECTIVE = re.compile(r"\{\{\s*(table|sections):([a-z_]+)(?::([A-Za-z_,]+))?\s*\}\}")

Generator = Callable[[Policy, list[str]], str]

_ACTION_LABELS = {
    "refund": "Refund (cash, to the original payment method)",
    "store_credit": "Store credit",
    "shipping_upgrade": "Shipping upgrade (cost of the upgrade)",
    "purchase_order": "Purchase order (planning)",
    "promotion_discount": "Promotion discount (percent off)",
}
_ROLE_LABELS = {
    "viewer": "viewer",
    "operator": "operator (automation)",
    "approver": "approver",
    "admin": "admin (manager)",
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def refund_tiers(policy: Policy, args: list[str]) -> str:
    rows = []
    for tier in policy.refunds.tiers:
        base = f"refunds.tiers.{tier.name}"
        if tier.max_days_late is None:
            late = f"{{{{ {base}.min_days_late }}}} days or more, or lost"
        else:
            late = f"{{{{ {base}.min_days_late }}}} to {{{{ {base}.max_days_late }}}} days"
        kind = "full refund" if tier.refund_pct >= 100 else "partial refund"
        rows.append([tier.name, late, f"{{{{ {base}.refund_pct | pct }}}} of the amount paid ({kind})"])
    return _table(["tier", "days late (after the promised date)", "compensation"], rows)


def approval(policy: Policy, args: list[str]) -> str:
    actions = args or list(policy.approval.amount_limits)
    roles = [r for r in ROLES if r != "viewer"]
    rows = []
    for action in actions:
        rule = policy.approval.amount_limits[action]
        fmt = "money" if rule.unit == "usd" else "pct"
        cells = []
        for role in roles:
            limit = rule.limits[role]
            if limit is None:
                cells.append("no amount limit")
            elif limit == 0:
                cells.append("not allowed")
            else:
                cells.append(f"up to {{{{ approval.amount_limits.{action}.limits.{role} | {fmt} }}}}")
        rows.append([_ACTION_LABELS.get(action, action.replace("_", " ")), *cells])
    return _table(["action", *(_ROLE_LABELS[r] for r in roles)], rows)


def action_roles(policy: Policy, args: list[str]) -> str:
    rows = [
        [action.replace("_", " "), f"{{{{ approval.action_min_role.{action} }}}}"]
        for action in policy.approval.action_min_role
    ]
    return _table(["action", "least role that may execute it"], rows)


def carriers(policy: Policy, args: list[str]) -> str:
    rows = []
    for carrier in policy.carriers:
        if args and carrier.mode not in args:
            continue
        base = f"carriers.{carrier.id}"
        rows.append([
            f"{{{{ {base}.name }}}}",
            f"{{{{ {base}.mode }}}}",
            f"{{{{ {base}.transit_days }}}} days",
            f"{{{{ {base}.on_time_target_pct | pct }}}}",
            f"{{{{ {base}.max_weight_kg }}}} kg",
        ])
    return _table(["carrier", "mode", "promised transit", "on-time target", "max parcel weight"], rows)


def international_carriers(policy: Policy, args: list[str]) -> str:
    rows = []
    for carrier in policy.international.carriers:
        base = f"international.carriers.{carrier.id}"
        rows.append([
            f"{{{{ {base}.name }}}}",
            f"{{{{ {base}.mode }}}}",
            f"{{{{ {base}.regions | list }}}}",
            f"{{{{ {base}.transit_days }}}} days",
            f"{{{{ {base}.on_time_target_pct | pct }}}}",
            f"{{{{ {base}.max_weight_kg }}}} kg",
        ])
    header = ["carrier", "mode", "destinations", "promised transit", "on-time target", "max parcel weight"]
    return _table(header, rows)


def carrier_matrix(policy: Policy, args: list[str]) -> str:
    rows = []
    for mode in policy.shipping.modes:
        cells = []
        for importance in IMPORTANCES:
            cid = policy.carrier_selection.matrix[mode][importance]
            cells.append(f"{{{{ carriers.{cid}.name }}}}")
        rows.append([mode, *cells])
    return _table(["mode", *(f"{i} importance" for i in IMPORTANCES)], rows)


def upgrade_paths(policy: Policy, args: list[str]) -> str:
    rows = []
    for path in policy.shipping.upgrade.paths:
        base = f"shipping.upgrade.paths.{path.from_mode}_to_{path.to_mode}"
        if path.min_weight_kg > 0:
            weight = f"over {{{{ {base}.min_weight_kg }}}} kg, up to {{{{ {base}.max_weight_kg }}}} kg"
        else:
            weight = f"up to {{{{ {base}.max_weight_kg }}}} kg"
        rows.append([
            f"{path.from_mode} to {path.to_mode}",
            weight,
            f"{{{{ {base}.min_severity }}}} or above",
            f"{{{{ {base}.base_fee_usd | money }}}} plus {{{{ {base}.per_kg_usd | money }}}} per kg",
        ])
    return _table(["upgrade", "parcel weight", "deviation severity", "cost"], rows)


def warehouses(policy: Policy, args: list[str]) -> str:
    rows = [
        [
            f"block {name}",
            f"{{{{ warehouses.blocks.{name}.processing_hours }}}} hours",
            f"{{{{ warehouses.blocks.{name}.daily_capacity_orders }}}} orders",
        ]
        for name in policy.warehouses.blocks
    ]
    return _table(["warehouse block", "processing SLA (order to dispatch)", "planned daily capacity"], rows)


def response_targets(policy: Policy, args: list[str]) -> str:
    rows = []
    for severity, priority in policy.escalation.priorities.items():
        base = f"escalation.response_targets.{priority}"
        rows.append([
            severity,
            f"{{{{ escalation.priorities.{severity} }}}}",
            f"{{{{ {base}.acknowledge_hours }}}} h",
            f"{{{{ {base}.resolve_hours }}}} h",
        ])
    return _table(["severity", "priority", "acknowledge within", "resolve within"], rows)


def warehouse_block_sections(policy: Policy, args: list[str]) -> str:
    parts = []
    for name in policy.warehouses.blocks:
        base = f"warehouses.blocks.{name}"
        parts.append(
            f"## Warehouse block {name} {{#block-{name.lower()}}}\n"
            f"<!-- meta: warehouse={name} -->\n"
            f"Orders picked and packed in warehouse block {name} must be handed to the carrier within "
            f"{{{{ {base}.processing_hours }}}} hours of the order being placed. Block {name} is staffed for "
            f"{{{{ {base}.daily_capacity_orders }}}} orders a day. A block {name} order that has not been "
            f"dispatched within its processing SLA is a late dispatch: count it against the block's dispatch "
            f"target and check whether the block is over its capacity alert level before promising a new date.\n"
        )
    return "\n".join(parts)


TABLES: dict[str, Generator] = {
    "refund_tiers": refund_tiers,
    "approval": approval,
    "action_roles": action_roles,
    "carriers": carriers,
    "international_carriers": international_carriers,
    "carrier_matrix": carrier_matrix,
    "upgrade_paths": upgrade_paths,
    "warehouses": warehouses,
    "response_targets": response_targets,
}
SECTIONS: dict[str, Generator] = {"warehouse_blocks": warehouse_block_sections}


def expand(template: str, policy: Policy) -> str:
    """Replace table and section directives by their generated template text."""

    def substitute(match: re.Match[str]) -> str:
        kind, name, raw_args = match.group(1), match.group(2), match.group(3)
        registry = TABLES if kind == "table" else SECTIONS
        if name not in registry:
            raise ValueError(f"{{{{ {kind}:{name} }}}}: unknown {kind}; allowed: {', '.join(registry)}")
        args = [a for a in (raw_args or "").split(",") if a]
        return registry[name](policy, args)

    return DIRECTIVE.sub(substitute, template)
