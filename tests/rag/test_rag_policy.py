"""The policy file: the numbers the issue fixes, validation errors that name the key, lookup helpers."""

from __future__ import annotations

import copy

import pytest

from rag.policy import POLICY_ENV_VAR, PolicyError, get_policy, load_policy, parse_policy


def test_packaged_policy_states_the_issue_numbers() -> None:
    policy = load_policy()
    assert policy.version
    t = policy.severity.thresholds
    assert (t.critical, t.warning, t.info) == (0.7, 0.5, 0.3)
    assert policy.severity.escalators.order_value_over_usd == 500
    assert policy.severity.escalators.warehouse_critical_count_over == 5
    assert policy.severity.escalators.warehouse_window_hours == 24
    assert policy.approval.limit("approver", "refund") == 200
    assert policy.approval.limit("operator", "shipping_upgrade") == 25
    assert policy.communication.apology.max_per_customer == 1
    assert policy.communication.apology.window_hours == 48
    assert sorted(policy.warehouses.blocks) == ["A", "B", "C", "D", "F"]


def test_severity_bounds_are_exclusive_and_value_escalates() -> None:
    severity = load_policy().severity
    assert severity.classify(0.7) == "warning"
    assert severity.classify(0.71) == "critical"
    assert severity.classify(0.5) == "info"
    assert severity.classify(0.3) == "none"
    raised = severity.assess(0.35, order_value=501)
    assert (raised.base_level, raised.level) == ("info", "critical")
    assert severity.assess(0.35, order_value=500).level == "info"
    assert severity.assess(0.2, order_value=9000).level == "none"
    assert severity.warehouse_needs_management(6) and not severity.warehouse_needs_management(5)
    with pytest.raises(ValueError, match="delay_probability"):
        severity.classify(1.5)


def test_approval_authority_per_role() -> None:
    approval = load_policy().approval
    assert approval.required_role("refund", 40) == "operator"
    assert approval.required_role("refund", 200) == "approver"
    assert approval.required_role("refund", 200.01) == "admin"
    assert approval.automation_allows("shipping_upgrade", 25)
    assert not approval.automation_allows("shipping_upgrade", 25.5)
    assert not approval.allows("viewer", "refund", 1)
    assert approval.required_role("purchase_order", 100) == "approver"
    assert approval.required_role("purchase_order", 10**7) is None
    assert approval.required_role("warehouse_transfer") == "approver"
    assert approval.automation_allows("customer_notification")
    with pytest.raises(ValueError, match="action: unknown action 'bribe'"):
        approval.allows("admin", "bribe", 1)
    with pytest.raises(ValueError, match="role: unknown value 'boss'"):
        approval.allows("boss", "refund", 1)


def test_shipping_refund_and_carrier_helpers() -> None:
    policy = load_policy()
    [path] = policy.shipping.upgrade_options("road", 4.2, "warning")
    assert (path.to_mode, path.cost_usd(4.2)) == ("Flight", 22.7)
    assert policy.shipping.upgrade_options("Road", 4.0, "critical") == []
    assert policy.shipping.upgrade_options("Road", 6, "info") == []
    tier = policy.refunds.tier_for(4)
    assert tier is not None and tier.name == "moderate"
    assert policy.refunds.tier_for(0) is None
    assert policy.refunds.max_refund_pct(30) == 100
    assert policy.refunds.max_refund_pct(30, discount_pct=60) == 25
    assert policy.carrier_for("flight", "Low").id == "skyfreight"
    assert policy.communication.channels_for("critical") == ("email", "sms")
    assert policy.communication.quiet_hours.contains(23) and not policy.communication.quiet_hours.contains(12)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d["severity"]["thresholds"].update(warning=0.8), "severity.thresholds"),
        (lambda d: d["approval"]["amount_limits"]["refund"]["limits"].update(approver=20), "limits.approver"),
        (lambda d: d["refunds"]["tiers"][1].update(min_days_late=4), "tiers[1].min_days_late"),
        (lambda d: d["carrier_selection"]["matrix"]["Road"].update(low="aerolift"), "matrix.Road.low"),
        (lambda d: d["shipping"]["upgrade"]["paths"][0].update(max_weight_kg=90), "upgrade.paths[0].max_weight_kg"),
        (lambda d: d["communication"].pop("sms_max_chars"), "communication.sms_max_chars"),
        (lambda d: d["planning"].update(max_discout_pct=10), "planning.max_discout_pct"),
        (lambda d: d["store_credit"]["goodwill"].update(max_usd=500), "store_credit.goodwill.max_usd"),
    ],
)
def test_invalid_policy_errors_name_the_key(policy_data, write_policy, change, key) -> None:
    data = copy.deepcopy(policy_data)
    change(data)
    with pytest.raises(PolicyError) as info:
        load_policy(write_policy(data))
    assert key in str(info.value)


def test_unreadable_policy_files(tmp_path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("severity: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


def test_get_policy_honours_the_environment(policy_data, write_policy, monkeypatch) -> None:
    data = copy.deepcopy(policy_data)
    data["version"] = "9.9.9"
    monkeypatch.setenv(POLICY_ENV_VAR, str(write_policy(data)))
    get_policy.cache_clear()
    try:
        assert get_policy().version == "9.9.9"
    finally:
        monkeypatch.delenv(POLICY_ENV_VAR)
        get_policy.cache_clear()
    assert get_policy().version == load_policy().version


# --------------------------------------------------------------------------- sections added in 1.1.0


def test_packaged_policy_states_the_coverage_sections() -> None:
    policy = load_policy()
    assert policy.version == "1.1.0"
    assert policy.item_issues.report_window_days("damaged") == 7
    assert policy.item_issues.report_window_days("Wrong_Item") == 14
    assert policy.item_issues.report_window_days("defective") == 30
    assert (policy.cancellations.min_role, policy.cancellations.refund_within_hours) == ("operator", 24)
    assert (policy.returns.window_days, policy.returns.clearance.exchange_within_days) == (30, 14)
    assert policy.fraud_review.needs_review(4) and not policy.fraud_review.needs_review(3)
    assert (policy.lost_parcels.investigation_days, policy.lost_parcels.max_reships_per_order) == (7, 1)
    attempts = policy.delivery_attempts
    assert [attempts.fee_usd(n) for n in (1, 2, 3)] == [0.0, 0.0, 7.5]
    with pytest.raises(ValueError, match="attempt: must be from 1 to 3"):
        attempts.fee_usd(4)
    assert [c.id for c in policy.international.carriers_for("united kingdom")] == ["globalair", "oceanlink"]
    assert policy.international.carriers_for("Mars") == []
    season = policy.peak_season
    assert (season.starts, season.ends, season.returns_block, season.overflow_block) == (
        "15 November", "15 January", "D", "F"
    )
    assert policy.post_incident.required_for_priorities == ("P1",)
    assert policy.guaranteed_delivery.modes == ("Flight",)
    assert policy.large_refund_copies.recipients(100) == ()
    assert policy.large_refund_copies.recipients(100.01) == ("finance_team", "customer_care_lead")
    with pytest.raises(ValueError, match="issue: unknown value 'lost'"):
        policy.item_issues.report_window_days("lost")


def test_existing_sections_are_unchanged_by_the_additions(policy_data) -> None:
    # Other code reads these keys: 1.1.0 only adds sections after `planning`.
    added = {
        "item_issues", "cancellations", "returns", "fraud_review", "lost_parcels", "delivery_attempts",
        "international", "peak_season", "post_incident", "guaranteed_delivery", "large_refund_copies",
    }  # fmt: skip
    keys = list(policy_data)
    assert keys[keys.index("planning") + 1 :] == [k for k in keys if k in added]
    assert len(added) == len(keys) - keys.index("planning") - 1


def test_day_of_year_is_normalised(policy_data) -> None:
    data = copy.deepcopy(policy_data)
    data["peak_season"]["starts"] = " 1 december"
    data["peak_season"]["returns_until"] = "29 February"
    season = parse_policy(data).peak_season
    assert (season.starts, season.returns_until) == ("1 December", "29 February")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda d: d.pop("lost_parcels"), ["lost_parcels: Field required"]),
        (lambda d: d["lost_parcels"].pop("investigation_days"), ["lost_parcels.investigation_days: Field required"]),
        (lambda d: d["fraud_review"].update(refund_requests_over=0), ["fraud_review.refund_requests_over:"]),
        (lambda d: d["item_issues"].update(damaged_report_days="a week"), ["item_issues.damaged_report_days:"]),
        (lambda d: d["cancellations"].update(min_role="boss"), ["cancellations.min_role:"]),
        (lambda d: d["international"].update(duties_paid_by="nobody"), ["international.duties_paid_by:"]),
        (lambda d: d["large_refund_copies"].update(copy_to=["Finance Team"]), ["large_refund_copies.copy_to.0:"]),
        (lambda d: d["peak_season"].update(starts="31 February"),
         ["peak_season.starts:", "'31 February' is not a day and month"]),
        (lambda d: d["delivery_attempts"].update(max_attempts=1),
         ["delivery_attempts:", "max_attempts: must not be below free_attempts"]),
        (lambda d: d["returns"]["clearance"].update(exchange_within_days=45),
         ["returns:", "clearance.exchange_within_days: must not exceed window_days"]),
        (lambda d: d["peak_season"].update(overflow_block="D"),
         ["peak_season:", "overflow_block: must differ from returns_block"]),
        (lambda d: d["peak_season"].update(returns_block="E"), ["peak_season.returns_block: unknown block 'E'"]),
        (lambda d: d["international"]["carriers"][0].update(id="aerolift"),
         ["international.carriers[0].id: 'aerolift' is already a carrier id"]),
        (lambda d: d["international"]["carriers"][1].update(mode="Rail"), ["international.carriers[1].mode:"]),
        (lambda d: d["post_incident"].update(required_for_priorities=["P9"]),
         ["post_incident.required_for_priorities[0]: unknown priority 'P9'"]),
        (lambda d: d["guaranteed_delivery"].update(modes=["Rail"]), ["guaranteed_delivery.modes[0]:"]),
        (lambda d: d["item_issues"].update(keep_item_under_usd=80),
         ["item_issues.keep_item_under_usd: above the automation limit for refund"]),
        (lambda d: d["large_refund_copies"].update(over_usd=10),
         ["large_refund_copies.over_usd: below the automation limit for refund"]),
    ],
)
def test_invalid_coverage_sections_name_the_field(policy_data, write_policy, change, fragments) -> None:
    data = copy.deepcopy(policy_data)
    change(data)
    with pytest.raises(PolicyError) as info:
        load_policy(write_policy(data))
    for fragment in fragments:
        assert fragment in str(info.value)
