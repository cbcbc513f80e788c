"""The RIMAS policy file: pydantic models, loading, validation and small lookup helpers.

One versioned YAML file (``rag/content/policy.yaml``) holds every business number: severity
thresholds and escalators, refund tiers, store credit, approval authority per role, the carrier
matrix and SLAs, warehouse SLAs, communication rules and planning limits, and (since 1.1.0) item
issues, cancellations, returns, fraud review, lost parcels, delivery attempts, international
shipping, peak season, post-incident reports, guaranteed dates and large refund copies, plus the
shop's compliance checks (price changes and transaction amounts that need a review). ``tools/``
guardrails read their limits through :func:`get_policy`; the policy documents are rendered from the
same object.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_POLICY_PATH = Path(__file__).parent / "content" / "policy.yaml"
POLICY_ENV_VAR = "RIMAS_POLICY_FILE"

Role = Literal["viewer", "operator", "approver", "admin"]
Severity = Literal["critical", "warning", "info"]
SeverityOrNone = Literal["critical", "warning", "info", "none"]
Importance = Literal["high", "medium", "low"]
Channel = Literal["email", "sms"]

SEVERITY_RANK: dict[str, int] = {"none": 0, "info": 1, "warning": 2, "critical": 3}
ROLES: tuple[Role, ...] = ("viewer", "operator", "approver", "admin")
IMPORTANCES: tuple[Importance, ...] = ("high", "medium", "low")
ISSUES: tuple[str, ...] = ("damaged", "wrong_item", "defective")
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]  # team and route names: finance_team, loss_prevention


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the offending key."""


def severity_at_least(level: str, minimum: str) -> bool:
    """Whether severity ``level`` is at least ``minimum`` (none < info < warning < critical)."""
    for name, value in (("level", level), ("minimum", minimum)):
        if value not in SEVERITY_RANK:
            raise ValueError(f"{name}: unknown severity {value!r}; allowed: {', '.join(SEVERITY_RANK)}")
    return SEVERITY_RANK[level] >= SEVERITY_RANK[minimum]


def _match_name(value: str, allowed: list[str] | tuple[str, ...], field: str) -> str:
    """Return the allowed spelling of ``value`` (case-insensitive) or raise naming the field."""
    for name in allowed:
        if name.lower() == value.strip().lower():
            return name
    raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(allowed)}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- severity and KPIs


class SeverityThresholds(_Model):
    critical: float = Field(gt=0, lt=1)
    warning: float = Field(gt=0, lt=1)
    info: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> SeverityThresholds:
        if not self.critical > self.warning > self.info:
            raise ValueError("thresholds must satisfy critical > warning > info")
        return self


class SeverityEscalators(_Model):
    order_value_over_usd: float = Field(gt=0)
    warehouse_critical_count_over: int = Field(ge=1)
    warehouse_window_hours: int = Field(ge=1)


class SeverityAssessment(_Model):
    """Outcome of :meth:`SeverityPolicy.assess`: final level, level before escalators, reasons."""

    level: SeverityOrNone
    base_level: SeverityOrNone
    reasons: tuple[str, ...]


class SeverityPolicy(_Model):
    thresholds: SeverityThresholds
    escalators: SeverityEscalators
    auto_start_at: Severity
    review_at: Severity

    def classify(self, delay_probability: float) -> SeverityOrNone:
        """Base severity from P(late); a probability must be above a threshold to reach it."""
        if not 0.0 <= delay_probability <= 1.0 or math.isnan(delay_probability):
            raise ValueError(f"delay_probability: must be between 0 and 1, got {delay_probability!r}")
        t = self.thresholds
        if delay_probability > t.critical:
            return "critical"
        if delay_probability > t.warning:
            return "warning"
        if delay_probability > t.info:
            return "info"
        return "none"

    def assess(self, delay_probability: float, order_value: float | None = None) -> SeverityAssessment:
        """Severity with the order-value escalator applied, and the reasons in plain words."""
        base = self.classify(delay_probability)
        reasons = [f"delay probability {delay_probability:.2f} gives {base}"]
        level: SeverityOrNone = base
        limit = self.escalators.order_value_over_usd
        if base != "none" and base != "critical" and order_value is not None and order_value > limit:
            level = "critical"
            reasons.append(f"order value {order_value:.2f} USD is over {limit:g} USD: raised to critical")
        return SeverityAssessment(level=level, base_level=base, reasons=tuple(reasons))

    def warehouse_needs_management(self, critical_count_in_window: int) -> bool:
        """True when a block's critical deviations in the window exceed the escalator."""
        return critical_count_in_window > self.escalators.warehouse_critical_count_over


class KpiPolicy(_Model):
    window_days: int = Field(ge=1)
    segment_risk_alert: float = Field(gt=0, lt=1)
    on_time_target_pct: float = Field(gt=0, le=100)


# --------------------------------------------------------------------------- refunds and credit


class RefundTier(_Model):
    name: str
    min_days_late: int = Field(ge=1)
    max_days_late: int | None = Field(default=None, ge=1)
    refund_pct: float = Field(gt=0, le=100)

    def covers(self, days_late: int) -> bool:
        return days_late >= self.min_days_late and (self.max_days_late is None or days_late <= self.max_days_late)


class PctRange(_Model):
    min: float = Field(gt=0, le=100)
    max: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> PctRange:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class HighDiscountRule(_Model):
    discount_over_pct: float = Field(gt=0, lt=100)
    max_refund_pct: float = Field(gt=0, le=100)


class RefundPolicy(_Model):
    claim_window_days: int = Field(ge=1)
    processing_days: int = Field(ge=1)
    eligible_payment_status: tuple[str, ...] = Field(min_length=1)
    max_compensations_per_order: int = Field(ge=1)
    tiers: tuple[RefundTier, ...] = Field(min_length=1)
    partial_refund_pct: PctRange
    high_discount: HighDiscountRule

    @model_validator(mode="after")
    def _contiguous_tiers(self) -> RefundPolicy:
        expected = 1
        for i, tier in enumerate(self.tiers):
            if tier.min_days_late != expected:
                raise ValueError(
                    f"tiers[{i}].min_days_late: expected {expected} (tiers must start at 1 day and leave no gap)"
                )
            if tier.max_days_late is None:
                if i != len(self.tiers) - 1:
                    raise ValueError(f"tiers[{i}].max_days_late: only the last tier may be open-ended")
                break
            if tier.max_days_late < tier.min_days_late:
                raise ValueError(f"tiers[{i}].max_days_late: must not be below min_days_late")
            expected = tier.max_days_late + 1
        return self

    def tier_for(self, days_late: int) -> RefundTier | None:
        """The compensation tier for an order this many days late (None when not late)."""
        return next((t for t in self.tiers if t.covers(days_late)), None)

    def max_refund_pct(self, days_late: int, discount_pct: float = 0.0) -> float:
        """Largest refund share for the delay, capped for orders bought with a high discount."""
        tier = self.tier_for(days_late)
        if tier is None:
            return 0.0
        if discount_pct > self.high_discount.discount_over_pct:
            return min(tier.refund_pct, self.high_discount.max_refund_pct)
        return tier.refund_pct


class GoodwillCredit(_Model):
    min_severity: Severity
    value_pct: float = Field(gt=0, le=100)
    max_usd: float = Field(gt=0)


class StoreCreditPolicy(_Model):
    bonus_pct: float = Field(ge=0, le=100)
    expiry_days: int = Field(ge=1)
    goodwill: GoodwillCredit


# --------------------------------------------------------------------------- approval authority


class AmountLimit(_Model):
    unit: Literal["usd", "pct"]
    limits: dict[Role, float | None]

    @model_validator(mode="after")
    def _all_roles_monotonic(self) -> AmountLimit:
        missing = [r for r in ROLES if r not in self.limits]
        if missing:
            raise ValueError(f"limits: missing role(s) {', '.join(missing)}")
        previous = -1.0
        for role in ROLES:
            value = self.limits[role]
            current = math.inf if value is None else value
            if current < 0:
                raise ValueError(f"limits.{role}: must not be negative")
            if current < previous:
                raise ValueError(f"limits.{role}: must not be below the limit of a lower role")
            previous = current
        return self

    def limit(self, role: Role) -> float:
        value = self.limits[role]
        return math.inf if value is None else value


class ApprovalPolicy(_Model):
    roles: tuple[Role, ...]
    automation_role: Role
    amount_limits: dict[str, AmountLimit]
    action_min_role: dict[str, Role]
    pending_expiry_hours: int = Field(ge=1)

    @model_validator(mode="after")
    def _roles(self) -> ApprovalPolicy:
        if tuple(self.roles) != ROLES:
            raise ValueError(f"roles: must be exactly {', '.join(ROLES)} in ascending authority")
        both = set(self.amount_limits) & set(self.action_min_role)
        if both:
            raise ValueError(f"action_min_role: {', '.join(sorted(both))} already has amount_limits")
        return self

    @property
    def actions(self) -> list[str]:
        return sorted([*self.amount_limits, *self.action_min_role])

    def _action(self, action: str) -> str:
        if action not in self.amount_limits and action not in self.action_min_role:
            raise ValueError(f"action: unknown action {action!r}; allowed: {', '.join(self.actions)}")
        return action

    def limit(self, role: Role, action: str) -> float | None:
        """The largest amount ``role`` may execute for ``action`` (None = no amount limit)."""
        rule = self.amount_limits.get(self._action(action))
        if rule is None:
            raise ValueError(f"action: {action!r} has no amount; use allows() or required_role()")
        return rule.limits[cast(Role, _match_name(role, ROLES, "role"))]

    def allows(self, role: str, action: str, amount: float | None = None) -> bool:
        """Whether ``role`` may execute ``action`` (for ``amount`` where the action has one)."""
        role_name = cast(Role, _match_name(role, ROLES, "role"))
        action = self._action(action)
        if action in self.action_min_role:
            return ROLES.index(role_name) >= ROLES.index(self.action_min_role[action])
        if amount is None:
            raise ValueError(f"amount: required for action {action!r}")
        if amount < 0:
            raise ValueError(f"amount: must not be negative, got {amount}")
        limit = self.amount_limits[action].limit(role_name)
        return limit > 0 and amount <= limit

    def required_role(self, action: str, amount: float | None = None) -> Role | None:
        """The least role allowed to execute the action; None when no role may (over every limit)."""
        return next((r for r in ROLES if self.allows(r, action, amount)), None)

    def automation_allows(self, action: str, amount: float | None = None) -> bool:
        """Whether an agent may execute the action without a human approval."""
        return self.allows(self.automation_role, action, amount)


# --------------------------------------------------------------------------- shipping and carriers


class UpgradePath(_Model):
    from_mode: str
    to_mode: str
    min_weight_kg: float = Field(ge=0)
    max_weight_kg: float = Field(gt=0)
    min_severity: Severity
    base_fee_usd: float = Field(ge=0)
    per_kg_usd: float = Field(ge=0)

    @model_validator(mode="after")
    def _weights(self) -> UpgradePath:
        if self.max_weight_kg <= self.min_weight_kg:
            raise ValueError("max_weight_kg must be above min_weight_kg")
        if self.from_mode == self.to_mode:
            raise ValueError("to_mode must differ from from_mode")
        return self

    def applies(self, weight_kg: float, severity: str) -> bool:
        return self.min_weight_kg < weight_kg <= self.max_weight_kg and severity_at_least(severity, self.min_severity)

    def cost_usd(self, weight_kg: float) -> float:
        return round(self.base_fee_usd + self.per_kg_usd * weight_kg, 2)


class UpgradePolicy(_Model):
    min_severity: Severity
    max_per_order: int = Field(ge=1)
    paths: tuple[UpgradePath, ...]


class ShippingPolicy(_Model):
    modes: tuple[str, ...] = Field(min_length=1)
    upgrade: UpgradePolicy
    priority_handling_fee_usd: float = Field(ge=0)

    @model_validator(mode="after")
    def _path_modes(self) -> ShippingPolicy:
        for i, path in enumerate(self.upgrade.paths):
            for field in ("from_mode", "to_mode"):
                if getattr(path, field) not in self.modes:
                    raise ValueError(f"upgrade.paths[{i}].{field}: must be one of {', '.join(self.modes)}")
        return self

    def upgrade_options(self, from_mode: str, weight_kg: float, severity: str) -> list[UpgradePath]:
        """Upgrade paths open to a parcel of this mode, weight and deviation severity (best first)."""
        mode = _match_name(from_mode, self.modes, "mode_of_shipment")
        if weight_kg <= 0:
            raise ValueError(f"weight_kg: must be positive, got {weight_kg}")
        if not severity_at_least(severity, self.upgrade.min_severity):
            return []
        options = [p for p in self.upgrade.paths if p.from_mode == mode and p.applies(weight_kg, severity)]
        return sorted(options, key=lambda p: p.to_mode != "Flight")


class Carrier(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    name: str
    mode: str
    transit_days: int = Field(ge=1)
    on_time_target_pct: float = Field(gt=0, le=100)
    max_weight_kg: float = Field(gt=0)


class CarrierSelection(_Model):
    matrix: dict[str, dict[Importance, str]]
    review_window_days: int = Field(ge=1)
    max_points_below_target: float = Field(gt=0)
    claim_after_days_late: int = Field(ge=1)


# --------------------------------------------------------------------------- warehouses, communication


class WarehouseBlock(_Model):
    processing_hours: int = Field(ge=1)
    daily_capacity_orders: int = Field(ge=1)


class WarehousePolicy(_Model):
    blocks: dict[str, WarehouseBlock] = Field(min_length=1)
    on_time_dispatch_target_pct: float = Field(gt=0, le=100)
    capacity_alert_pct: float = Field(gt=0, le=100)
    transfer_backlog_hours: int = Field(ge=1)

    @model_validator(mode="after")
    def _block_names(self) -> WarehousePolicy:
        for name in self.blocks:
            if len(name) != 1 or not name.isupper():
                raise ValueError(f"blocks.{name}: a block is one upper-case letter")
        return self

    def block(self, name: str) -> WarehouseBlock:
        return self.blocks[_match_name(name, list(self.blocks), "warehouse_block")]


class ApologyRule(_Model):
    max_per_customer: int = Field(ge=1)
    window_hours: int = Field(ge=1)


class QuietHours(_Model):
    start_hour: int = Field(ge=0, le=23)
    end_hour: int = Field(ge=0, le=23)

    def contains(self, hour: int) -> bool:
        if self.start_hour > self.end_hour:
            return hour >= self.start_hour or hour < self.end_hour
        return self.start_hour <= hour < self.end_hour


class CommunicationPolicy(_Model):
    channels: dict[Severity, tuple[Channel, ...]]
    apology: ApologyRule
    sms_max_chars: int = Field(ge=1)
    email_subject_max_chars: int = Field(ge=1)
    email_body_max_words: int = Field(ge=1)
    quiet_hours: QuietHours
    reply_within_hours: int = Field(ge=1)
    never_disclose: tuple[str, ...]

    @model_validator(mode="after")
    def _every_severity(self) -> CommunicationPolicy:
        missing = [s for s in ("critical", "warning", "info") if s not in self.channels]
        if missing:
            raise ValueError(f"channels: missing severity {', '.join(missing)}")
        return self

    def channels_for(self, severity: str) -> tuple[Channel, ...]:
        if severity == "none":
            return ()
        return self.channels[cast(Severity, _match_name(severity, ("critical", "warning", "info"), "severity"))]


class ResponseTarget(_Model):
    acknowledge_hours: int = Field(ge=1)
    resolve_hours: int = Field(ge=1)


class EscalationPolicy(_Model):
    priorities: dict[Severity, str]
    response_targets: dict[str, ResponseTarget]
    care_calls_over: int = Field(ge=1)
    routes: dict[Literal["warehouse_cluster", "care_calls", "over_authority", "overdue_p1"], str]

    @model_validator(mode="after")
    def _targets(self) -> EscalationPolicy:
        for severity, priority in self.priorities.items():
            if priority not in self.response_targets:
                raise ValueError(f"response_targets: missing {priority} (priority of {severity})")
        return self


class CompliancePolicy(_Model):
    """The shop's compliance checks: a price change larger than ``max_price_change_pct`` (either way, as a share
    of the old price) and a single transaction above ``review_amount_usd`` are flagged for a person to review."""

    max_price_change_pct: float = Field(gt=0, le=1000)
    review_amount_usd: float = Field(gt=0)

    def price_change_pct(self, old_price: float, new_price: float) -> float:
        """The change from ``old_price`` to ``new_price`` as a percentage of the old price (positive either way)."""
        if not (math.isfinite(old_price) and old_price > 0):
            raise ValueError(f"old_price: must be a finite number > 0, got {old_price!r}")
        if not (math.isfinite(new_price) and new_price >= 0):
            raise ValueError(f"new_price: must be a finite number >= 0, got {new_price!r}")
        return abs(new_price - old_price) / old_price * 100

    def price_change_too_large(self, old_price: float, new_price: float) -> bool:
        """True when the change is above the limit (a change of exactly the limit passes)."""
        return self.price_change_pct(old_price, new_price) > self.max_price_change_pct + 1e-9

    def needs_review(self, amount_usd: float) -> bool:
        """True when a transaction amount is above the review amount (exactly the amount passes)."""
        return amount_usd > self.review_amount_usd


class PlanningPolicy(_Model):
    max_discount_pct: float = Field(ge=0, lt=100)
    max_promotion_days: int = Field(ge=1)
    min_margin_pct: float = Field(ge=0, lt=100)
    service_level_pct: float = Field(gt=50, lt=100)
    default_lead_time_days: int = Field(ge=1)
    max_plan_budget_usd: float = Field(gt=0)
    min_history_days: int = Field(ge=1)
    min_confidence_pct: float = Field(gt=0, le=100)
    budget_priority: tuple[str, ...] = Field(min_length=1)


# --------------------------------------------------------------------------- returns, item issues, fraud


class ItemIssuePolicy(_Model):
    """Damaged, defective and wrong items: report windows (days from delivery) and how they are resolved."""

    damaged_report_days: int = Field(ge=1)
    wrong_item_report_days: int = Field(ge=1)
    defective_report_days: int = Field(ge=1)
    photo_required_over_usd: float = Field(ge=0)
    keep_item_under_usd: float = Field(ge=0)
    replacement_dispatch_hours: int = Field(ge=1)

    def report_window_days(self, issue: str) -> int:
        """Days after delivery within which an issue (damaged, wrong_item, defective) may be reported."""
        name = _match_name(issue, ISSUES, "issue")
        return cast(int, getattr(self, f"{name}_report_days"))


class CancellationPolicy(_Model):
    """Orders the customer cancels before dispatch (our own cancellations are an approval action)."""

    self_service_hours: int = Field(ge=1)
    min_role: Role
    refund_within_hours: int = Field(ge=1)


class ClearanceRule(_Model):
    exchange_within_days: int = Field(ge=1)


class PersonalisedRule(_Model):
    cancel_within_hours: int = Field(ge=1)
    remake_within_days: int = Field(ge=1)


class ReturnsPolicy(_Model):
    window_days: int = Field(ge=1)
    clearance: ClearanceRule
    personalised: PersonalisedRule

    @model_validator(mode="after")
    def _exchange_inside_window(self) -> ReturnsPolicy:
        if self.clearance.exchange_within_days > self.window_days:
            raise ValueError("clearance.exchange_within_days: must not exceed window_days")
        return self


class FraudReviewPolicy(_Model):
    refund_requests_over: int = Field(ge=1)
    window_days: int = Field(ge=1)
    review_within_hours: int = Field(ge=1)
    reviewer: Name

    def needs_review(self, requests_in_window: int) -> bool:
        """True when a customer's refund requests within the window exceed the limit."""
        return requests_in_window > self.refund_requests_over


# --------------------------------------------------------------------------- delivery exceptions


class LostParcelPolicy(_Model):
    no_scan_days: int = Field(ge=1)
    investigation_days: int = Field(ge=1)
    reship_within_hours: int = Field(ge=1)
    max_reships_per_order: int = Field(ge=0)


class DeliveryAttemptPolicy(_Model):
    free_attempts: int = Field(ge=1)
    max_attempts: int = Field(ge=1)
    redelivery_fee_usd: float = Field(ge=0)
    pickup_hold_days: int = Field(ge=1)

    @model_validator(mode="after")
    def _attempts(self) -> DeliveryAttemptPolicy:
        if self.max_attempts < self.free_attempts:
            raise ValueError("max_attempts: must not be below free_attempts")
        return self

    def fee_usd(self, attempt: int) -> float:
        """What the customer pays for the ``attempt``-th delivery attempt (1 = the first)."""
        if not 1 <= attempt <= self.max_attempts:
            raise ValueError(f"attempt: must be from 1 to {self.max_attempts}, got {attempt}")
        return 0.0 if attempt <= self.free_attempts else self.redelivery_fee_usd


class InternationalCarrier(Carrier):
    regions: tuple[str, ...] = Field(min_length=1)


class InternationalPolicy(_Model):
    carriers: tuple[InternationalCarrier, ...] = Field(min_length=1)
    duties_paid_by: Literal["customer", "retailer"]
    max_order_value_usd: float = Field(gt=0)
    customs_hold_escalate_days: int = Field(ge=1)

    def carriers_for(self, region: str) -> list[InternationalCarrier]:
        """International carriers serving a destination region (case-insensitive), fastest first."""
        wanted = region.strip().lower()
        found = [c for c in self.carriers if wanted in (r.lower() for r in c.regions)]
        return sorted(found, key=lambda c: c.transit_days)


def _day_of_year(value: str) -> str:
    """Validate a date in the year written as ``15 November`` (day, then the month's full name)."""
    try:
        parsed = datetime.strptime(f"{value.strip()} 2000", "%d %B %Y")  # a leap year: 29 February is allowed
    except ValueError:
        raise ValueError(f"{value!r} is not a day and month such as '15 November'") from None
    return f"{parsed.day} {parsed.strftime('%B')}"


DayOfYear = Annotated[str, AfterValidator(_day_of_year)]


class PeakSeasonPolicy(_Model):
    starts: DayOfYear
    ends: DayOfYear
    extra_processing_hours: int = Field(ge=0)
    promise_buffer_days: int = Field(ge=0)
    returns_until: DayOfYear
    returns_block: str
    overflow_block: str

    @model_validator(mode="after")
    def _distinct(self) -> PeakSeasonPolicy:
        if self.starts == self.ends:
            raise ValueError("ends: must differ from starts")
        if self.returns_block == self.overflow_block:
            raise ValueError("overflow_block: must differ from returns_block (returns would compete with overflow)")
        return self


# --------------------------------------------------------------------------- incidents, guarantees, copies


class PostIncidentPolicy(_Model):
    required_for_priorities: tuple[str, ...] = Field(min_length=1)
    due_within_hours: int = Field(ge=1)
    review_within_days: int = Field(ge=1)
    author: Name
    reviewer: Name


class GuaranteedDeliveryPolicy(_Model):
    modes: tuple[str, ...] = Field(min_length=1)
    shipping_refund_pct: float = Field(gt=0, le=100)
    claim_within_days: int = Field(ge=1)
    misses_over: int = Field(ge=0)


class LargeRefundCopies(_Model):
    over_usd: float = Field(gt=0)
    copy_to: tuple[Name, ...] = Field(min_length=1)

    def recipients(self, refund_usd: float) -> tuple[str, ...]:
        """Who is blind-copied on the confirmation of a refund of this amount (none at or below the limit)."""
        return self.copy_to if refund_usd > self.over_usd else ()


# --------------------------------------------------------------------------- the policy


class Policy(_Model):
    """The whole policy file. Cross-section rules are checked in :meth:`_cross_checks`."""

    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    effective_from: str
    currency: Literal["USD"]
    severity: SeverityPolicy
    kpis: KpiPolicy
    refunds: RefundPolicy
    store_credit: StoreCreditPolicy
    approval: ApprovalPolicy
    shipping: ShippingPolicy
    carriers: tuple[Carrier, ...] = Field(min_length=1)
    carrier_selection: CarrierSelection
    warehouses: WarehousePolicy
    communication: CommunicationPolicy
    escalation: EscalationPolicy
    compliance: CompliancePolicy
    planning: PlanningPolicy
    item_issues: ItemIssuePolicy
    cancellations: CancellationPolicy
    returns: ReturnsPolicy
    fraud_review: FraudReviewPolicy
    lost_parcels: LostParcelPolicy
    delivery_attempts: DeliveryAttemptPolicy
    international: InternationalPolicy
    peak_season: PeakSeasonPolicy
    post_incident: PostIncidentPolicy
    guaranteed_delivery: GuaranteedDeliveryPolicy
    large_refund_copies: LargeRefundCopies

    @model_validator(mode="after")
    def _cross_checks(self) -> Policy:
        ids = [c.id for c in self.carriers]
        if len(ids) != len(set(ids)):
            raise ValueError("carriers: carrier ids must be unique")
        by_id = {c.id: c for c in self.carriers}
        for i, carrier in enumerate(self.carriers):
            if carrier.mode not in self.shipping.modes:
                raise ValueError(f"carriers[{i}].mode: must be one of {', '.join(self.shipping.modes)}")
        for mode in self.shipping.modes:
            row = self.carrier_selection.matrix.get(mode)
            if row is None:
                raise ValueError(f"carrier_selection.matrix.{mode}: missing (every shipping mode needs a row)")
            for importance in IMPORTANCES:
                cid = row.get(importance)
                if cid is None:
                    raise ValueError(f"carrier_selection.matrix.{mode}.{importance}: missing")
                if cid not in by_id:
                    raise ValueError(f"carrier_selection.matrix.{mode}.{importance}: unknown carrier {cid!r}")
                if by_id[cid].mode != mode:
                    raise ValueError(f"carrier_selection.matrix.{mode}.{importance}: {cid} does not ship by {mode}")
        for i, path in enumerate(self.shipping.upgrade.paths):
            heaviest = max((c.max_weight_kg for c in self.carriers if c.mode == path.to_mode), default=0.0)
            if path.max_weight_kg > heaviest:
                raise ValueError(
                    f"shipping.upgrade.paths[{i}].max_weight_kg: {path.max_weight_kg:g} kg is over the heaviest "
                    f"{path.to_mode} carrier limit ({heaviest:g} kg)"
                )
        for action in ("refund", "store_credit", "shipping_upgrade", "purchase_order", "promotion_discount"):
            if action not in self.approval.amount_limits:
                raise ValueError(f"approval.amount_limits.{action}: missing")
        admin_discount = self.approval.amount_limits["promotion_discount"].limit("admin")
        if admin_discount > self.planning.max_discount_pct:
            raise ValueError("approval.amount_limits.promotion_discount.limits.admin: above planning.max_discount_pct")
        goodwill = self.store_credit.goodwill.max_usd
        if goodwill > self.approval.amount_limits["store_credit"].limit(self.approval.automation_role):
            raise ValueError("store_credit.goodwill.max_usd: above the automation limit for store_credit")
        tiers_partial = [t for t in self.refunds.tiers if t.refund_pct < 100]
        rng = self.refunds.partial_refund_pct
        for tier in tiers_partial:
            if not rng.min <= tier.refund_pct <= rng.max:
                raise ValueError(f"refunds.tiers.{tier.name}.refund_pct: outside partial_refund_pct")
        self._check_additions()
        return self

    def _check_additions(self) -> None:
        """Cross-section rules of the sections added in 1.1.0."""
        automation_refund = self.approval.amount_limits["refund"].limit(self.approval.automation_role)
        if self.item_issues.keep_item_under_usd > automation_refund:
            raise ValueError(
                "item_issues.keep_item_under_usd: above the automation limit for refund (an item not collected "
                "is refunded without a person seeing it)"
            )
        if self.large_refund_copies.over_usd < automation_refund:
            raise ValueError(
                "large_refund_copies.over_usd: below the automation limit for refund (a copied refund must be "
                "one a person approved)"
            )
        domestic = {c.id for c in self.carriers}
        seen: set[str] = set()
        for i, carrier in enumerate(self.international.carriers):
            if carrier.id in domestic or carrier.id in seen:
                raise ValueError(f"international.carriers[{i}].id: {carrier.id!r} is already a carrier id")
            seen.add(carrier.id)
            if carrier.mode not in self.shipping.modes:
                raise ValueError(f"international.carriers[{i}].mode: must be one of {', '.join(self.shipping.modes)}")
        for field in ("returns_block", "overflow_block"):
            block = getattr(self.peak_season, field)
            if block not in self.warehouses.blocks:
                raise ValueError(
                    f"peak_season.{field}: unknown block {block!r}; allowed: {', '.join(self.warehouses.blocks)}"
                )
        for i, priority in enumerate(self.post_incident.required_for_priorities):
            if priority not in self.escalation.response_targets:
                raise ValueError(
                    f"post_incident.required_for_priorities[{i}]: unknown priority {priority!r}; "
                    f"allowed: {', '.join(self.escalation.response_targets)}"
                )
        for i, mode in enumerate(self.guaranteed_delivery.modes):
            if mode not in self.shipping.modes:
                raise ValueError(f"guaranteed_delivery.modes[{i}]: must be one of {', '.join(self.shipping.modes)}")

    def carrier(self, carrier_id: str) -> Carrier:
        for carrier in self.carriers:
            if carrier.id == carrier_id:
                return carrier
        raise ValueError(f"carrier: unknown carrier {carrier_id!r}; allowed: {', '.join(c.id for c in self.carriers)}")

    def carrier_for(self, mode: str, importance: str) -> Carrier:
        """The carrier the selection matrix assigns to a mode and product importance."""
        mode_name = _match_name(mode, self.shipping.modes, "mode_of_shipment")
        level = _match_name(importance, IMPORTANCES, "product_importance")
        return self.carrier(self.carrier_selection.matrix[mode_name][cast(Importance, level)])


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid policy file {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def parse_policy(data: Any, source: str = "<data>") -> Policy:
    """Validate already-parsed policy data; errors name each offending key."""
    if not isinstance(data, dict):
        raise PolicyError(f"invalid policy file {source}: the top level must be a mapping")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_validation_error(exc, source)) from exc


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file (default: the packaged ``rag/content/policy.yaml``)."""
    policy_path = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        text = policy_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {policy_path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {policy_path} is not valid YAML: {exc}") from exc
    return parse_policy(data, str(policy_path))


@lru_cache(maxsize=1)
def get_policy() -> Policy:
    """The process-wide policy: ``$RIMAS_POLICY_FILE`` if set, else the packaged file (cached)."""
    return load_policy(os.environ.get(POLICY_ENV_VAR) or None)
