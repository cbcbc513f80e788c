"""The scoring and deviation endpoints through the real app: what each answers, the inputs each refuses with the
field named, batch jobs and events run by the app's own background runner, the deviation workflow started
automatically and by hand (a stand-in ``deviation`` graph), and every route's role."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Api, order, rows, to_csv

CRITICAL = {"discount_offered": 60, "weight_in_gms": 2500, "cost_of_product": 150.0, "order_value": 650.0}


async def wait_for(check: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def job_done(api: Api, job_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api["viewer"].get(f"/batch/{job_id}/status")).json()
        return body if body["status"] in ("completed", "failed") else None

    result: dict[str, Any] = await wait_for(check)
    return result


async def test_predict_scores_stores_and_answers_the_deviation(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        response = await api["operator"].post("/predict", json=order(order_id="API-1", customer_id=17, **CRITICAL))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["order_id"] == "API-1" and body["customer_ref"] == "17" and body["known_order"] is False
        assert 0 <= body["delay_probability"] <= 1 and body["model_version"]
        assert body["top_factors"] and body["top_factors"][0]["text"].endswith("the delay risk")
        assert 0 < body["anomaly"]["anomaly_score"] <= 1 and body["order_value"] == 650.0
        assert body["severity"] == "critical" and body["deviation"]["severity"] == "critical"
        assert "order value 650.00 above 500" in " ".join(body["deviation"]["reasons"])
        again = (
            await api["operator"].post("/predict", json=order(order_id="API-1", customer_id=17, **CRITICAL))
        ).json()
        assert again["deviation"]["deviation_id"] == body["deviation"]["deviation_id"]
        assert (await rows(api.resources.pool, "SELECT count(*) AS n FROM predictions"))[0]["n"] == 1
        numeric = await api["operator"].post("/predict", json=order(order_id=17, mode_of_shipment=" flight "))
        assert numeric.status_code == 200 and numeric.json()["order_id"] == "17"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"warehouse_block": "Z"}, "warehouse_block"),
        ({"customer_rating": 9}, "customer_rating"),
        ({"discount_offered": "5"}, "discount_offered"),
        ({"order_date": "31/10/2026"}, "order_date"),
        ({"order_id": "has space"}, "order_id"),
        ({"payment_status": "owed"}, "payment_status"),
        ({"colour": "red"}, "colour"),
        ({"customer_care_calls": True}, "customer_care_calls"),
    ],
)
async def test_predict_refuses_bad_fields_by_name(
    make_api: Any, clean: None, change: dict[str, Any], field: str
) -> None:
    async with make_api() as api:
        response = await api["operator"].post("/predict", json=order(**change))
        assert response.status_code == 422, response.text
        assert any(p["field"].startswith(field) for p in response.json()["error"]["details"]), response.text


async def test_without_models_scoring_answers_503_saying_so(make_api: Any, tmp_path: Path, clean: None) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    async with make_api(models_dir=empty) as api:
        response = await api["operator"].post("/predict", json=order())
        assert response.status_code == 503 and "delay model is not loaded" in response.json()["detail"]
        response = await api["operator"].post("/detect-anomaly", json=order())
        assert response.status_code == 503 and "anomaly model is not loaded" in response.json()["detail"]
        health = (await api["viewer"].get("/health")).json()
        assert health["components"]["models"]["models"]["anomaly"]["status"] == "missing"


async def test_detect_anomaly_scores_without_storing(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        normal = await api["operator"].post("/detect-anomaly", json=order(order_id="AN-1"))
        unusual = order(
            weight_in_gms=90_000_000, customer_care_calls=500, cost_of_product=9_000_000, prior_purchases=900
        )
        unusual.pop("order_id")  # optional here
        odd = await api["operator"].post("/detect-anomaly", json=unusual)
        assert normal.status_code == odd.status_code == 200, normal.text
        assert normal.json()["order_id"] == "AN-1" and odd.json()["order_id"] is None
        assert odd.json()["anomaly_score"] > normal.json()["anomaly_score"] and odd.json()["is_anomaly"] is True
        assert (await rows(api.resources.pool, "SELECT count(*) AS n FROM predictions"))[0]["n"] == 0


async def test_a_batch_upload_is_scored_in_the_background(make_api: Any, clean: None) -> None:
    orders = [order(order_id=f"BU-{i}", discount_offered=5 * i) for i in range(12)] + [
        order(order_id="BU-x", gender="?")
    ]
    async with make_api() as api:
        response = await api["operator"].post(
            "/predict/batch", files={"file": ("up.csv", to_csv(orders, bom=True), "text/csv")}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["batch_job_id"]
        assert response.headers["location"] == f"/batch/{job_id}/status"
        job = await job_done(api, job_id)
        assert (job["status"], job["rows_ok"], job["rows_failed"], job["filename"]) == ("completed", 12, 1, "up.csv")
        assert job["errors"][0]["row"] == 14 and job["errors"][0]["field"] == "gender"
        page = (await api["viewer"].get(f"/batch/{job_id}/predictions", params={"limit": 5, "offset": 10})).json()
        assert page["total"] == 12 and [p["order_id"] for p in page["items"]] == ["BU-8", "BU-9"]
        deviations = (await api["viewer"].get(f"/batch/{job_id}/deviations", params={"limit": 1000})).json()
        assert deviations["total"] == sum(job["summary"]["deviations"].values()) > 0
        responses = (await api["viewer"].get(f"/batch/{job_id}/agent-responses")).json()
        critical = [d for d in deviations["items"] if d["severity"] == "critical"]
        assert responses["total"] == len(critical)  # the critical ones were started
        assert {r["thread_id"] for r in responses["items"]} == {f"deviation-{d['deviation_id']}" for d in critical}


async def test_a_batch_upload_that_is_not_text_or_not_usable(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        binary = await api["operator"].post(
            "/predict/batch", files={"file": ("x.bin", b"\xff\xfe\x00\x01", "text/csv")}
        )
        assert binary.status_code == 422 and binary.json()["error"]["details"][0]["field"] == "file"
        no_part = await api["operator"].post("/predict/batch", files={"other": ("x.csv", b"a,b\n1,2\n", "text/csv")})
        assert no_part.status_code == 422 and "'file'" in no_part.json()["detail"]
        as_json = await api["operator"].post("/predict/batch", json={"file": "a,b"})
        assert as_json.status_code == 422 and "multipart/form-data" in as_json.json()["detail"]
        no_columns = await api["operator"].post("/predict/batch", files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
        assert no_columns.status_code == 202
        job = await job_done(api, no_columns.json()["batch_job_id"])
        assert job["status"] == "failed" and "missing column" in job["errors"][0]["message"]
        missing = await api["viewer"].get("/batch/00000000-0000-4000-8000-000000000000/status")
        assert missing.status_code == 404


async def test_a_batch_upload_over_the_body_limit_is_413(make_api: Any, clean: None) -> None:
    async with make_api(max_body_bytes=2048) as api:
        big = to_csv([order(order_id=f"L-{i}") for i in range(40)])
        response = await api["operator"].post("/predict/batch", files={"file": ("big.csv", big, "text/csv")})
        assert response.status_code == 413 and "RIMAS_MAX_BODY_BYTES" in response.json()["detail"]


async def test_events_json_and_ndjson_are_stored_then_scored(
    make_api: Any, clean: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIMAS_EVENTS_FLUSH_SECONDS", "0.3")
    async with make_api() as api:
        response = await api["operator"].post("/events", json=[order(order_id="EV-1"), order(order_id="EV-2")])
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 2 and response.json()["flush_seconds"] == 0.3
        lines = "\n".join(json.dumps(order(order_id=f"ND-{i}")) for i in range(3)) + "\n"
        ndjson = await api["operator"].post("/events", content=lines, headers={"content-type": "application/x-ndjson"})
        assert ndjson.status_code == 202 and ndjson.json()["accepted"] == 3

        async def scored() -> bool:
            found = await rows(api.resources.pool, "SELECT count(*) AS n FROM predictions WHERE source = 'stream'")
            return bool(found[0]["n"] == 5)

        await wait_for(scored)
        bad = await api["operator"].post("/events", json=[order(order_id="EV-3"), order(warehouse_block="Q")])
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "[1].warehouse_block"
        broken = await api["operator"].post(
            "/events", content='{"order_id": "x"}\n{oops\n', headers={"content-type": "application/x-ndjson"}
        )
        assert broken.status_code == 422 and "line 2" in broken.json()["detail"]
        stored = await rows(api.resources.pool, "SELECT count(*) AS n FROM order_events")
        assert stored[0]["n"] == 5  # nothing of a refused request is kept


async def test_deviations_list_filters_and_pages(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        for i, (block, mode) in enumerate([("A", "Road"), ("A", "Ship"), ("B", "Road"), ("C", "Flight")]):
            await api["operator"].post(
                "/predict", json=order(order_id=f"DL-{i}", warehouse_block=block, mode_of_shipment=mode, **CRITICAL)
            )
        await api["operator"].post("/predict", json=order(order_id="DL-low", discount_offered=2, weight_in_gms=5000))
        everything = (await api["viewer"].get("/deviations")).json()
        ids = [d["order_id"] for d in everything["items"]]
        assert everything["total"] == len(ids) >= 4  # DL-low too when the model rates it above info
        assert [i for i in ids if i != "DL-low"] == ["DL-3", "DL-2", "DL-1", "DL-0"]  # newest first
        block_a = (await api["viewer"].get("/deviations", params={"warehouse_block": "A"})).json()
        assert {d["order_id"] for d in block_a["items"]} == {"DL-0", "DL-1"} and block_a["total"] == 2
        road_a = await api["viewer"].get("/deviations", params={"warehouse_block": "A", "mode_of_shipment": "Road"})
        assert [d["order_id"] for d in road_a.json()["items"]] == ["DL-0"]
        page = (await api["viewer"].get("/deviations", params={"limit": 2, "offset": 1, "severity": "critical"})).json()
        assert page["total"] == 4 and [d["order_id"] for d in page["items"]] == ["DL-2", "DL-1"]
        future = (await api["viewer"].get("/deviations", params={"since": "2999-01-01T00:00:00Z"})).json()
        assert future["total"] == 0 and future["items"] == []
        open_ = (await api["viewer"].get("/deviations", params=[("status", "open"), ("status", "in_progress")])).json()
        assert open_["total"] == everything["total"]
        bad = await api["viewer"].get("/deviations", params={"severity": "urgent"})
        assert bad.status_code == 422 and "severity" in bad.json()["error"]["details"][0]["field"]
        one = everything["items"][0]
        got = await api["viewer"].get(f"/deviations/{one['deviation_id']}")
        assert got.status_code == 200 and got.json()["order_id"] == one["order_id"]
        assert (await api["viewer"].get("/deviations/00000000-0000-4000-8000-000000000000")).status_code == 404


async def test_trigger_agent_starts_once_and_agent_response_follows(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        async with api.resources.pool.connection() as conn:  # a warning deviation, as the pipeline leaves one
            await conn.execute(
                "INSERT INTO deviations (deviation_id, order_id, severity, status) VALUES "
                "(gen_random_uuid(), 'TR-1', 'warning', 'open')"
            )
        dev_id = (await api["viewer"].get("/deviations", params={"order_id": "TR-1"})).json()["items"][0][
            "deviation_id"
        ]
        assert (await api["viewer"].get(f"/agent-response/{dev_id}")).status_code == 404
        started = await api["operator"].post("/trigger-agent", json={"deviation_id": dev_id})
        assert started.status_code == 202, started.text
        assert started.json()["thread_id"] == f"deviation-{dev_id}"
        assert started.headers["content-location"] == f"/threads/deviation-{dev_id}"
        again = await api["operator"].post("/trigger-agent", json={"order_id": "TR-1"})
        assert again.status_code == 409 and f"deviation-{dev_id}" in again.json()["detail"]
        unknown = await api["operator"].post("/trigger-agent", json={"order_id": "NOPE"})
        assert unknown.status_code == 404
        for bad in ({}, {"deviation_id": dev_id, "order_id": "TR-1"}, {"deviation_id": "not-a-uuid"}):
            assert (await api["operator"].post("/trigger-agent", json=bad)).status_code == 422, bad
        waiting = (await api["viewer"].get(f"/agent-response/{dev_id}")).json()
        assert "no agent response yet" in waiting["detail"] and f"deviation-{dev_id}" in waiting["detail"]
        resolution = {"summary": "rescheduled", "status": "resolved", "actions": [], "thread_id": f"deviation-{dev_id}"}
        async with api.resources.pool.connection() as conn:  # as the graph's record step writes it
            await conn.execute(
                "UPDATE deviations SET resolution = %s, status = 'resolved', resolved_at = now() "
                "WHERE deviation_id = %s",
                (json.dumps(resolution), dev_id),
            )
        answer = await api["viewer"].get(f"/agent-response/{dev_id}")
        assert answer.status_code == 200 and answer.json()["resolution"] == resolution
        assert answer.json()["status"] == "resolved" and answer.json()["thread_url"] == f"/threads/deviation-{dev_id}"


async def test_info_deviations_are_not_worked_by_the_agents(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        async with api.resources.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO deviations (deviation_id, order_id, severity) VALUES "
                "('11111111-1111-4111-8111-111111111111', 'INFO-1', 'info')"
            )
        response = await api["operator"].post("/trigger-agent", json={"order_id": "INFO-1"})
        assert response.status_code == 409 and "from warning up" in response.json()["detail"]


async def test_critical_deviations_start_their_workflow_automatically(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        body = (await api["operator"].post("/predict", json=order(order_id="AUTO-1", **CRITICAL))).json()
        dev = body["deviation"]
        assert dev["thread_id"] == f"deviation-{dev['deviation_id']}" and dev["status"] == "in_progress"
        runs = (await api["viewer"].get(f"/threads/{dev['thread_id']}/runs")).json()
        assert len(runs) == 1 and runs[0]["metadata"]["started_by"] == "system:auto-start"


async def test_the_order_view_has_prediction_deviation_actions_and_thread(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        dev = (await api["operator"].post("/predict", json=order(order_id="OV-1", **CRITICAL))).json()["deviation"]
        async with api.resources.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO refunds (idempotency_key, order_id, amount, reason, actor, policy_rule, "
                "thread_id) VALUES ('k1', 'OV-1', 12.5, 'late', 'agent', 'refunds.tiers', %s)",
                (dev["thread_id"],),
            )
        view = await api["viewer"].get("/orders/OV-1")
        assert view.status_code == 200, view.text
        body = view.json()
        assert body["prediction"]["order_id"] == "OV-1" and body["deviation"]["deviation_id"] == dev["deviation_id"]
        assert body["order"]["customer_id"] == "C00123" and body["order"]["ship_date"] == "2026-10-21"
        assert [(a["kind"], a["details"]["amount"]) for a in body["actions"]] == [("refund", 12.5)]
        assert "idempotency_key" not in body["actions"][0]["details"]
        assert body["thread_url"] == f"/threads/{dev['thread_id']}"
        assert (await api["viewer"].get("/orders/NEVER-SEEN")).status_code == 404
        assert (await api["viewer"].get("/orders/bad id")).status_code == 422


async def test_the_kpi_dashboard_answers(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        await api["operator"].post("/predict", json=order(order_id="K-1", **CRITICAL))
        response = await api["viewer"].get("/kpi/dashboard", params={"window_days": 7})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["window_days"] == 7 and body["orders_scored"] == 1 and body["high_risk_orders"] == 1
        assert body["segments"]["warehouse_block"][0]["segment"] == "B"
        assert (await api["viewer"].get("/kpi/dashboard", params={"window_days": 0})).status_code == 422


# -- roles ----------------------------------------------------------------------------------------------------------

LEAST_ROLE = {
    ("POST", "/predict"): "operator",
    ("POST", "/predict/batch"): "operator",
    ("GET", "/batch/{batch_id}/status"): "viewer",
    ("GET", "/batch/{batch_id}/predictions"): "viewer",
    ("GET", "/batch/{batch_id}/deviations"): "viewer",
    ("GET", "/batch/{batch_id}/agent-responses"): "viewer",
    ("POST", "/events"): "operator",
    ("POST", "/detect-anomaly"): "operator",
    ("GET", "/kpi/dashboard"): "viewer",
    ("GET", "/kpi/trend"): "viewer",
    ("GET", "/deviations"): "viewer",
    ("GET", "/deviations/{deviation_id}"): "viewer",
    ("GET", "/orders/{order_id}"): "viewer",
    ("POST", "/trigger-agent"): "operator",
    ("GET", "/agent-response/{deviation_id}"): "viewer",
}
VALUES = {
    "batch_id": "00000000-0000-4000-8000-000000000001",
    "deviation_id": "00000000-0000-4000-8000-000000000002",
    "order_id": "O-1",
}


async def test_every_scoring_route_needs_a_key_and_its_least_role(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        document = (await api["viewer"].get("/openapi.json")).json()
        served = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
        assert set(LEAST_ROLE) <= served
        roles = ("viewer", "operator", "approver", "admin")
        for (method, path), least in LEAST_ROLE.items():
            url = path.format(**VALUES)
            body = {"json": {}} if method == "POST" else {}
            assert (await api["anonymous"].request(method, url, **body)).status_code == 401, url
            wrong = await api["anonymous"].request(method, url, headers={"x-api-key": "nope"}, **body)
            assert wrong.status_code == 401
            if least == "viewer":
                assert (await api["viewer"].request(method, url)).status_code in (200, 404), url
                continue
            below = roles[roles.index(least) - 1]
            refused = await api[below].request(method, url, **body)
            assert refused.status_code == 403 and f"needs the {least} role" in refused.json()["detail"], url


async def test_answers_match_the_document(make_api: Any, clean: None) -> None:
    import jsonschema

    async with make_api() as api:
        doc = (await api["viewer"].get("/openapi.json")).json()
        predicted = await api["operator"].post("/predict", json=order(order_id="DOC-1", **CRITICAL))
        dev_id = predicted.json()["deviation"]["deviation_id"]
        cases: list[tuple[str, str, httpx.Response]] = [
            ("post", "/predict", predicted),
            ("post", "/predict", await api["operator"].post("/predict", json=order(warehouse_block="Z"))),
            ("get", "/deviations", await api["viewer"].get("/deviations")),
            ("get", "/deviations/{deviation_id}", await api["viewer"].get(f"/deviations/{dev_id}")),
            ("get", "/orders/{order_id}", await api["viewer"].get("/orders/DOC-1")),
            ("get", "/kpi/dashboard", await api["viewer"].get("/kpi/dashboard")),
            ("post", "/detect-anomaly", await api["operator"].post("/detect-anomaly", json=order())),
            ("post", "/events", await api["operator"].post("/events", json=[order(order_id="DOC-2")])),
            ("post", "/trigger-agent", await api["operator"].post("/trigger-agent", json={"deviation_id": dev_id})),
        ]
        for method, path, response in cases:
            documented = doc["paths"][path][method]["responses"]
            assert str(response.status_code) in documented, (path, response.status_code)
            schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
            jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(response.json())


async def test_refusals_the_document_promises(make_api: Any, clean: None) -> None:
    async with make_api() as api:
        extra = await api["operator"].post(
            "/predict/batch", files={"file": ("a.csv", b"a,b\n1,2\n", "text/csv"), "note": ("n", b"x", "text/plain")}
        )
        assert extra.status_code == 422 and extra.json()["error"]["details"][0]["field"] == "note"
        one_line = await api["operator"].post("/predict/batch", files={"file": ("a.csv", b"12345", "text/csv")})
        assert one_line.status_code == 422 and "no line break" in one_line.json()["detail"]
        for value in ("0.5", "2026-10-31", "yesterday"):
            response = await api["viewer"].get("/deviations", params={"until": value})
            assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "until"
        ok = await api["viewer"].get("/deviations", params={"since": "2026-10-31T00:00:00+02:00"})
        assert ok.status_code == 200


async def test_trigger_agent_says_when_the_workflow_is_not_served(make_api: Any, clean: None, tmp_path: Path) -> None:
    config = tmp_path / "empty.json"
    config.write_text(json.dumps({"dependencies": ["."], "graphs": {}}))
    async with make_api(langgraph_config=config) as api:
        body = (await api["operator"].post("/predict", json=order(order_id="NS-1", **CRITICAL))).json()
        assert body["deviation"]["thread_id"] is None and body["deviation"]["status"] == "open"
        response = await api["operator"].post("/trigger-agent", json={"order_id": "NS-1"})
        assert response.status_code == 409 and "does not serve the 'deviation' workflow" in response.json()["detail"]
