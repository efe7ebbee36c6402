"""The HTTP API of a real service process: calls, registration, errors, token, docs."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import jsonschema
from service_helpers import TOKEN, Api, ServiceProcess, gateway, raw_connect

from ntxcp.v10 import ACTIONS, Direction
from ntxcp.v10.types import DATETIME_PATTERN

# Every C→G action with a valid payload and the confirmation the test gateway answers.
CALLS: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "ChangeConfiguration": (
        {"key": "HeartbeatInterval", "value": "60"},
        {"status": "Accepted"},
    ),
    "GetConfiguration": (
        {"key": ["HeartbeatInterval", "Nope"]},
        {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknownKey": ["Nope"],
        },
    ),
    "ClearCache": ({}, {"status": "Accepted"}),
    "Reset": ({"type": "Soft"}, {"status": "Accepted"}),
    "DataTransfer": (
        {"vendorId": "Ding", "messageId": "m", "data": "x"},
        {"status": "Accepted", "data": "echo:x"},
    ),
    "CaptureProcess": (
        {"serviceId": "1", "datapointIds": ["p1", "p2"]},
        {
            "status": "Accepted",
            "datapoints": [
                {"datapointId": "p1", "value": "1.5", "unit": "bar"},
                {"datapointId": "p2", "value": "1.5", "unit": "bar"},
            ],
        },
    ),
    "GetDiagnostics": (
        {"location": "ftp://example.com/up", "retries": 1, "startTime": "2026-11-23T18:00:00Z"},
        {"fileName": "diagnostics.zip"},
    ),
    "UpdateFirmware": (
        {"location": "https://example.com/fw.bin", "retrieveDate": "2026-11-23T18:00:00Z"},
        {},
    ),
    "TriggerMessage": (
        {"requestedMessage": "StatusNotification", "serviceId": "1"},
        {"status": "Accepted"},
    ),
}


def test_every_gateway_action_is_covered() -> None:
    expected = {
        n for n, s in ACTIONS.items() if s.direction is not Direction.GATEWAY_TO_CONTROL_CENTER
    }
    assert set(CALLS) == expected


async def test_every_c2g_action_through_the_api(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "calls-1") as gw:
        await gw.boot_notification("DX-100")
        for action, (payload, expected) in CALLS.items():
            status, body = await api.call("calls-1", action, payload)
            assert status == 200, (action, body)
            assert body == expected, action
    status, commands = await api.get("/api/commands", gateway="calls-1")
    assert status == 200
    assert commands["count"] == len(CALLS)
    by_action = {c["action"]: c for c in commands["items"]}
    assert set(by_action) == set(CALLS)
    reset = by_action["Reset"]
    assert reset["outcome"] == "ok"
    assert reset["request"] == {"type": "Soft"}
    assert reset["response"] == {"status": "Accepted"}
    assert reset["durationMs"] >= 0 and reset["finishedAt"] >= reset["sentAt"]
    # Date-times are normalised to the wire form of spec §3 before sending.
    assert by_action["UpdateFirmware"]["request"]["retrieveDate"] == "2026-11-23T18:00:00.000Z"
    _, only = await api.get("/api/commands", action="ClearCache", gateway="calls-1")
    assert only["count"] == 1


async def test_call_errors(service: ServiceProcess, api: Api) -> None:
    status, _ = await api.post("/api/gateways", {"id": "offline-1"})
    assert status == 201
    status, body = await api.call("offline-1", "ClearCache", {})
    assert status == 404 and "not connected" in body["error"]
    status, body = await api.call("never-seen", "ClearCache", {})
    assert status == 404 and "unknown gateway" in body["error"]

    async with gateway(service.ws_url, "errs-1") as gw:
        await gw.boot_notification("DX-100")
        status, body = await api.call("errs-1", "Teleport", {})
        assert status == 404 and "unknown action" in body["error"]
        status, body = await api.call("errs-1", "BootNotification", {"dingxGatewayModel": "X"})
        assert status == 404 and "sent by gateways" in body["error"]
        # 422: the field is named by its JSON path (spec §2.2 rule 4).
        status, body = await api.call("errs-1", "ChangeConfiguration", {"key": "k"})
        assert status == 422
        assert body["code"] == "OccurrenceConstraintViolation" and body["path"] == "value"
        status, body = await api.call("errs-1", "Reset", {"type": "Medium"})
        assert status == 422
        assert body["code"] == "PropertyConstraintViolation" and body["path"] == "type"
        status, body = await api.call(
            "errs-1", "CaptureProcess", {"serviceId": "1", "datapointIds": [1]}
        )
        assert status == 422
        assert body["code"] == "TypeConstraintViolation" and body["path"] == "datapointIds[0]"
        status, body = await api.call("errs-1", "ClearCache", {"extra": 1})
        assert status == 422 and body["code"] == "FormationViolation" and body["path"] == "extra"
        status, body = await api.request(
            "POST", "/api/gateways/errs-1/calls/ClearCache", data="{not json"
        )
        assert status == 422 and body["code"] == "FormationViolation"
        status, body = await api.request("POST", "/api/gateways/errs-1/calls/Reset", data="[1]")
        assert status == 422
        # An empty body is the empty payload.
        status, body = await api.request("POST", "/api/gateways/errs-1/calls/ClearCache", data="")
        assert status == 200 and body == {"status": "Accepted"}
        status, body = await api.request(
            "POST", "/api/gateways/errs-1/calls/ClearCache", params={"timeout": "zero"}
        )
        assert status == 400
        # 502: the gateway answered a CALLERROR (spec §2.1).
        status, body = await api.call(
            "errs-1", "ChangeConfiguration", {"key": "fail", "value": "1"}
        )
        assert status == 502
        assert body["code"] == "GenericError"
        assert body["description"] == "refused by the test"
        assert body["details"] == {"key": "fail"}
        # 504: no answer within --call-timeout 1 (the handler takes 2 s).
        status, body = await api.call("errs-1", "Reset", {"type": "Hard"})
        assert status == 504 and "not answered" in body["error"]

    _, commands = await api.get("/api/commands", gateway="errs-1")
    outcomes = [c["outcome"] for c in commands["items"]]
    assert outcomes[:2] == ["timeout", "callerror"]
    failed = commands["items"][1]
    assert failed["error"] == {
        "code": "GenericError",
        "description": "refused by the test",
        "details": {"key": "fail"},
    }
    _, metrics = await api.get("/metrics")
    assert 'ntxcp_callerrors_total{code="GenericError",direction="in"}' in metrics
    assert 'ntxcp_api_call_duration_seconds_count{action="Reset"}' in metrics


async def test_invalid_payload_reports_every_field_in_words(
    service: ServiceProcess, api: Api
) -> None:
    async with gateway(service.ws_url, "words-1") as gw:
        await gw.boot_notification("DX-100")
        payload = {"location": "not a url", "retrieveDate": "tomorrow", "retries": -1, "x": 1}
        status, body = await api.call("words-1", "UpdateFirmware", payload)
        assert status == 422
        problems = {p["path"]: (p["code"], p["message"]) for p in body["errors"]}
        assert problems == {
            "location": (
                "PropertyConstraintViolation",
                "must be an absolute URL such as ftp://host/file, not 'not a url'",
            ),
            "retrieveDate": (
                "PropertyConstraintViolation",
                "must be a date and time with its time zone (RFC 3339), "
                "such as 2026-11-23T17:36:34Z, not 'tomorrow'",
            ),
            "retries": (
                "PropertyConstraintViolation",
                "must be a whole number from 0 to 2147483647, not -1",
            ),
            "x": (
                "FormationViolation",
                "is not a field of UpdateFirmware "
                "(its fields: location, retrieveDate, retries, retryInterval)",
            ),
        }
        assert body["error"].startswith("4 fields are invalid: location: must be")
        assert (body["path"], body["code"]) == (
            body["errors"][0]["path"],
            body["errors"][0]["code"],
        )

        # An enum lists its values; a missing field says what it needs; no regex text.
        status, body = await api.call("words-1", "Reset", {"type": "Sotf"})
        assert status == 422 and body["error"] == "type: must be one of Hard, Soft, not 'Sotf'"
        status, body = await api.call("words-1", "CaptureProcess", {"datapointIds": ["a", "a"]})
        assert [(p["path"], p["code"]) for p in body["errors"]] == [
            ("serviceId", "OccurrenceConstraintViolation"),
            ("datapointIds", "PropertyConstraintViolation"),
        ]
        assert "'a' appears more than once" in body["error"]
        assert "regex" not in body["error"] and "Expected" not in body["error"]


async def test_registration_and_deletion(service: ServiceProcess, api: Api) -> None:
    status, body = await api.post("/api/gateways", {"id": "reg-1", "password": "s3cret"})
    assert status == 201
    assert body["id"] == "reg-1" and body["registered"] is True and body["hasPassword"] is True
    assert "password" not in json.dumps(body).replace("hasPassword", "")
    status, body = await api.post("/api/gateways", {"id": "reg-1"})
    assert status == 409 and "already registered" in body["error"]
    for bad in ("", "a/b", "x" * 49, "tab\there", 7, None):
        status, body = await api.post("/api/gateways", {"id": bad})
        assert status == 422 and body["path"] == "id", bad
    status, body = await api.post("/api/gateways", {"id": "reg-2", "password": ""})
    assert status == 422 and body["path"] == "password"
    status, body = await api.post("/api/gateways", {"id": "reg-2", "colour": "red"})
    assert status == 422 and "colour" in body["error"]
    status, body = await api.post("/api/gateways", ["reg-2"])
    assert status == 422
    status, body = await api.request("POST", "/api/gateways", data="{oops")
    assert status == 400 and "JSON" in body["error"]

    # A gateway that was only seen can be registered afterwards.
    async with gateway(service.ws_url, "seen-1") as gw:
        await gw.boot_notification("DX-100")
    status, body = await api.post("/api/gateways", {"id": "seen-1"})
    assert status == 201 and body["registered"] is True
    assert body["bootInfo"] == {"dingxGatewayModel": "DX-100"}

    status, _ = await api.request("DELETE", "/api/gateways/reg-1")
    assert status == 204
    status, body = await api.request("DELETE", "/api/gateways/reg-1")
    assert status == 404 and "unknown gateway" in body["error"]
    status, body = await api.get("/api/gateways/reg-1")
    assert status == 404
    status, _ = await api.request("DELETE", "/api/gateways/seen-1")
    assert status == 204
    status, body = await api.get("/api/gateways/seen-1/messages")
    assert status == 404


async def test_bearer_token(service: ServiceProcess, api: Api) -> None:
    for token in (None, "wrong", TOKEN + "x"):
        status, body = await api.request("GET", "/api/gateways", token=token)
        assert status == 401 and "bearer token" in body["error"]
        status, body = await api.request("POST", "/api/gateways", json={"id": "t"}, token=token)
        assert status == 401
    status, body = await api.request("GET", "/healthz", token=None)
    assert status == 200 and body["status"] == "ok"
    status, body = await api.request("GET", "/api/gateways", token=TOKEN)
    assert status == 200


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    status, body = await api.get("/api/nothing-here")
    assert status == 404 and body["error"]
    status, body = await api.request("PUT", "/api/gateways")
    assert status == 405 and body["error"]
    status, body = await api.request("GET", "/api/gateways/x/calls/Reset")
    assert status == 405


async def test_health_metrics_docs_and_dashboard(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "metrics-1") as gw:
        await gw.boot_notification("DX-100")
        status, health = await api.request("GET", "/healthz", token=None)
        assert status == 200 and health["connectedGateways"] >= 1
        assert health["version"]
        status, text = await api.request("GET", "/metrics", token=None)
        assert status == 200
        gauge = re.search(r"^ntxcp_connected_gateways (\d+)$", text, re.M)
        assert gauge is not None and int(gauge[1]) >= 1
        for needle in (
            "# TYPE ntxcp_messages_total counter",
            'ntxcp_messages_total{action="BootNotification",direction="in",type="CALL"}',
            'ntxcp_messages_total{action="BootNotification",direction="out",type="CALLRESULT"}',
            "# TYPE ntxcp_callerrors_total counter",
            "# TYPE ntxcp_api_call_duration_seconds histogram",
            "# TYPE ntxcp_duplicates_dropped_total counter",
            "ntxcp_meter_samples_stored_total",
            'ntxcp_boot_notifications_total{status="Accepted"}',
        ):
            assert needle in text, needle
    status, page = await api.request("GET", "/docs", token=None)
    assert status == 200 and "/openapi.json" in page
    assert "<script src" not in page and "cdn" not in page.lower()
    status, page = await api.request("GET", "/", token=None)
    assert status == 200 and "/docs" in page and service.ws_url in page


async def test_openapi_document(api: Api) -> None:
    status, doc = await api.request("GET", "/openapi.json", token=None)
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    expected = {
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/api/gateways",
        "/api/gateways/{id}",
        "/api/gateways/{id}/status",
        "/api/gateways/{id}/meter-values",
        "/api/gateways/{id}/messages",
        "/api/gateways/{id}/firmware-status",
        "/api/gateways/{id}/diagnostics-status",
        "/api/gateways/{id}/data-transfers",
        "/api/commands",
    } | {f"/api/gateways/{{id}}/calls/{action}" for action in CALLS}
    assert expected <= set(paths)
    schemas = doc["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.split("/")[-1] in schemas, ref
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    # The call bodies are the message schemas of ntxcp.v10.schema.
    body = paths["/api/gateways/{id}/calls/ChangeConfiguration"]["post"]["requestBody"]
    root = body["content"]["application/json"]["schema"]
    assert root["$ref"] == "#/components/schemas/ChangeConfigurationRequest"
    request = schemas["ChangeConfigurationRequest"]
    assert request["required"] == ["key", "value"]
    assert request["properties"]["value"]["maxLength"] == 500
    update = schemas["UpdateFirmwareRequest"]
    assert update["properties"]["retrieveDate"]["pattern"] == DATETIME_PATTERN
    for path, item in paths.items():
        for method, operation in item.items():
            assert operation["responses"], (path, method)
            secured = bool(operation["security"])  # this service has a token
            assert secured == path.startswith("/api/"), path
            assert ("401" in operation["responses"]) == secured, path


async def test_a_gateway_that_disconnects_before_answering_gives_502(
    service: ServiceProcess, api: Api, http: aiohttp.ClientSession
) -> None:
    # The command reached the gateway, which went away without an answer: that is a
    # failure of the gateway (502), not an unknown or unconnected one (404).
    ws = await raw_connect(http, service.ws_url, "drop-1")
    try:
        call = asyncio.create_task(api.call("drop-1", "ClearCache", {}))
        frame = json.loads(await ws.receive_str(timeout=5))
        assert frame[:3] == [2, frame[1], "ClearCache"]
    finally:
        await ws.close()
    status, body = await call
    assert status == 502, body
    assert "disconnected before answering" in body["error"]
    _, commands = await api.get("/api/commands", gateway="drop-1")
    assert commands["items"][0]["outcome"] == "disconnected"
