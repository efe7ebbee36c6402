"""The HTTP API keeps the contract its OpenAPI document states (a real service process).

Every query parameter is declared once (``ntxcp.service.api_contract``) and both
documented and enforced from there: unknown, repeated or empty parameters and values
out of bounds get a 400 naming the parameter. Bodies follow JSON Schema's reading
(``1.0`` is an integer, a ``date-time`` has a ``T``); lists are paged.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from service_helpers import TOKEN, WAIT, Api, ServiceProcess, gateway

from ntxcp.service.api_contract import OPERATIONS
from ntxcp.service.events import KINDS
from ntxcp.v10 import types as t

GW_PATH = "/api/gateways/contract-1"


async def _commands_sent(api: Api) -> int:
    status, commands = await api.get("/api/commands", gateway="contract-1")
    assert status == 200
    return int(commands["count"])


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/gateways", {"colour": "red"}, "colour"),
        ("/healthz", {"x": "1"}, "x"),
        (f"{GW_PATH}/meter-values", {"since": ""}, "since"),
        (f"{GW_PATH}/meter-values", {"until": ""}, "until"),
        (f"{GW_PATH}/meter-values", {"limit": ""}, "limit"),
        (f"{GW_PATH}/meter-values", {"service": "2147483648"}, "service"),
        (f"{GW_PATH}/meter-values", {"service": "1.0"}, "service"),
        (f"{GW_PATH}/meter-values", {"since": "2026-01-01 00:00:00Z"}, "since"),
        (f"{GW_PATH}/meter-values", {"since": "2026-02-30T00:00:00Z"}, "since"),
        (f"{GW_PATH}/meter-values", {"since": "2026-01-01T00:00:00+24:00"}, "since"),
        (f"{GW_PATH}/meter-values", {"since": "2026-01-01T00:00:00Z\n"}, "since"),
        (f"{GW_PATH}/status", {"history": "10001"}, "history"),
        (f"{GW_PATH}/status", {"history": "-1"}, "history"),
        (f"{GW_PATH}/messages", {"direction": "sideways"}, "direction"),
        ("/api/gateways", {"limit": "0"}, "limit"),
        ("/api/gateways", {"after": "a/b"}, "after"),
        ("/api/commands", {"gateway": ""}, "gateway"),
        ("/api/events", {"kinds": ""}, "kinds"),
        ("/api/events", {"kinds": "status,bogus"}, "kinds"),
        ("/api/events", {"kinds": "status, meter"}, "kinds"),
    ],
)
async def test_bad_query_parameters_are_refused_by_name(
    service: ServiceProcess, api: Api, path: str, params: dict[str, str], parameter: str
) -> None:
    await api.post("/api/gateways", {"id": "contract-1"})
    status, body = await api.get(path, **params)
    assert status == 400, body
    assert body["parameter"] == parameter
    assert repr(parameter) in body["error"]


async def test_a_repeated_parameter_is_refused(api: Api) -> None:
    status, body = await api.get("/api/gateways?limit=1&limit=2")
    assert status == 400 and body["parameter"] == "limit" and "more than once" in body["error"]


async def test_date_times_at_the_edges_of_the_range_are_clamped(
    service: ServiceProcess, api: Api
) -> None:
    async with gateway(service.ws_url, "contract-1") as gw:
        await gw.boot_notification("DX-100")
    for params in (
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
        {"since": "2026-01-01T00:00:00.1234567+01:00", "until": "2025-01-01T00:00:00Z"},
        {"since": "2026-01-01t00:00:00z"},
    ):
        status, body = await api.get(f"{GW_PATH}/meter-values", **params)
        assert status == 200, (params, body)
        assert body["items"] == []
    status, body = await api.get(f"{GW_PATH}/messages", since="0001-01-01T00:00:00+01:00")
    assert status == 200 and body["count"] > 0  # every frame is after the clamped instant


@pytest.mark.parametrize("timeout", ["", "5e-324", "0", "0.5", "600.5", "1e2", "nan", "inf", "x"])
async def test_call_timeout_is_bounded_and_a_refused_one_sends_nothing(
    service: ServiceProcess, api: Api, timeout: str
) -> None:
    async with gateway(service.ws_url, "contract-1"):
        before = await _commands_sent(api)
        status, body = await api.request(
            "POST", f"{GW_PATH}/calls/Reset", json={"type": "Soft"}, params={"timeout": timeout}
        )
        assert status == 400 and body["parameter"] == "timeout", body
        assert await _commands_sent(api) == before
        status, body = await api.request(
            "POST", f"{GW_PATH}/calls/ClearCache", params={"timeout": "1.5"}
        )
        assert status == 200, body


async def test_call_bodies_are_read_as_json_schema_says(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "contract-1"):
        # 1.0 is an integer in JSON Schema: sent as 1 (spec §3 refuses 1.0 on the wire).
        status, body = await api.call(
            "contract-1",
            "UpdateFirmware",
            {
                "location": "http://127.0.0.1:9/fw.bin",
                "retrieveDate": "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
                "retries": 1.0,
            },
        )
        assert status == 200, body
        _, commands = await api.get("/api/commands", gateway="contract-1", limit="1")
        assert commands["items"][0]["request"] == {
            "location": "http://127.0.0.1:9/fw.bin",
            "retrieveDate": "0001-01-01T00:00:00.000Z",
            "retries": 1,
        }
        for payload, path, code in [
            (
                {"location": "ftp://x/", "retrieveDate": "2026-01-01 00:00:00Z"},
                "retrieveDate",
                "PropertyConstraintViolation",
            ),
            (
                {"location": "ftp://x/", "retrieveDate": "2026-01-01T00:00:00Z", "retries": 1.5},
                "retries",
                "TypeConstraintViolation",
            ),
            (
                {"location": "ftp://x/", "retrieveDate": "2026-01-01T00:00:00Z", "retries": 2**31},
                "retries",
                "PropertyConstraintViolation",
            ),
            (
                {"location": "ftp://x/", "retrieveDate": "2026-01-01T00:00:00Z", "retries": 1e30},
                "retries",
                "PropertyConstraintViolation",
            ),
        ]:
            status, body = await api.call("contract-1", "UpdateFirmware", payload)
            assert status == 422, (payload, body)
            assert (body["path"], body["code"]) == (path, code), payload


async def test_bodies_that_are_not_json_or_too_deep(service: ServiceProcess, api: Api) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    status, body = await api.request("POST", "/api/gateways", data=deep)
    assert status == 400 and "JSON" in body["error"], body
    status, body = await api.request("POST", "/api/gateways", data=b" " * (1024 * 1024 + 1))
    assert status == 413 and body["error"], body
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        status, body = await api.request(
            "POST", "/api/gateways", data='{"id": "x"}', content_type=content_type
        )
        assert status == 415 and content_type in body["error"], body
    async with gateway(service.ws_url, "contract-1"):
        for data in (deep, '{"data":' * 100_000 + "1" + "}" * 100_000):
            status, body = await api.request("POST", f"{GW_PATH}/calls/DataTransfer", data=data)
            assert status == 422 and body["code"].endswith("Violation"), body
        status, body = await api.request(
            "POST", f"{GW_PATH}/calls/ClearCache", data="{}", content_type="text/csv"
        )
        assert status == 415, body


async def test_registration_body_follows_its_schema(api: Api) -> None:
    _, doc = await api.request("GET", "/openapi.json", token=None)
    schema = doc["components"]["schemas"]["NewGateway"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["id"]["maxLength"] == 48
    for body, path in [
        ({"id": "ok-1", "extra": 1}, "extra"),
        ({"id": "x" * 49}, "id"),
        ({"id": "a\n"}, "id"),
        ({"id": "ok-1", "password": "p" * 257}, "password"),
        ({}, "id"),
    ]:
        status, answer = await api.post("/api/gateways", body)
        assert status == 422 and answer["path"] == path, (body, answer)
    status, answer = await api.request("POST", "/api/gateways", data="")
    assert status == 422, answer
    # 256 characters of 4 UTF-8 bytes each: the hash's limit of 1024 bytes.
    status, answer = await api.post("/api/gateways", {"id": "ok-1", "password": "\U0001d538" * 256})
    assert status == 201, answer


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        status, _ = await api.request(
            "GET", "/api/gateways", token=None, headers={"Authorization": f"{scheme} {TOKEN}"}
        )
        assert status == 200, scheme
    for header in (f"Basic {TOKEN}", TOKEN, f"Bearer{TOKEN}", "Bearer "):
        status, _ = await api.request(
            "GET", "/api/gateways", token=None, headers={"Authorization": header}
        )
        assert status == 401, header


async def test_gateways_and_statuses_are_paged(service: ServiceProcess, api: Api) -> None:
    ids = [f"page-{n:02d}" for n in range(7)]
    for gateway_id in ids:
        assert (await api.post("/api/gateways", {"id": gateway_id}))[0] in (201, 409)
    for path in ("/api/gateways", "/api/status"):
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            params = {"limit": "3"} if after is None else {"limit": "3", "after": after}
            status, page = await api.get(path, **params)
            assert status == 200, page
            key = "id" if path == "/api/gateways" else "gatewayId"
            seen += [item[key] for item in page["items"] if item[key].startswith("page-")]
            pages += 1
            after = page["next"]
            if after is None:
                break
        if path == "/api/gateways":
            assert seen == ids and pages >= 3
    status, page = await api.get("/api/gateways", after="page-05")
    assert [g["id"] for g in page["items"]][:1] == ["page-06"]


async def test_every_query_parameter_is_documented_from_the_contract(api: Api) -> None:
    status, doc = await api.request("GET", "/openapi.json", token=None)
    assert status == 200
    for item in doc["paths"].values():
        for operation in item.values():
            op_id = operation["operationId"]
            declared = OPERATIONS["call" if op_id.startswith("call") else op_id]
            documented = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            assert [p["name"] for p in documented] == [p.name for p in declared], op_id
            assert [p["schema"] for p in documented] == [p.schema for p in declared], op_id
            assert "400" in operation["responses"] and "500" in operation["responses"], op_id
            if "requestBody" in operation:
                assert {"413", "415"} <= set(operation["responses"]), op_id


async def test_events_are_documented_as_a_stream(api: Api) -> None:
    _, doc = await api.request("GET", "/openapi.json", token=None)
    operation = doc["paths"]["/api/events"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["gateway", "kinds"]
    content = operation["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    schemas: dict[str, Any] = content["text/event-stream"]["x-event-schemas"]
    assert set(schemas) == KINDS
    for ref in schemas.values():
        assert ref["$ref"].split("/")[-1] in doc["components"]["schemas"]


async def test_without_a_token_nothing_is_marked_secured(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    process = ServiceProcess(tmp_path).start()
    try:
        status, doc = await Api(http, process.api_url, None).request("GET", "/openapi.json")
        assert status == 200
        for path, item in doc["paths"].items():
            for operation in item.values():
                assert operation["security"] == [], path
                assert "401" not in operation["responses"], path
        assert "without an API token" in doc["info"]["description"]
        status, _ = await Api(http, process.api_url, None).get("/api/gateways")
        assert status == 200
    finally:
        assert process.stop() == 0, process.stderr()


async def test_every_event_matches_its_documented_schema(
    service: ServiceProcess, api: Api, http: aiohttp.ClientSession
) -> None:
    _, doc = await api.request("GET", "/openapi.json", token=None)
    content = doc["paths"]["/api/events"]["get"]["responses"]["200"]["content"]
    refs = content["text/event-stream"]["x-event-schemas"]
    events: list[tuple[str, Any]] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{service.api_url}api/events"
    async with http.get(url, params={"gateway": "events-1"}, headers=headers) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")

        async def read_until(kind: str, check: Any = lambda data: True) -> None:
            event: dict[str, str] = {}
            async with asyncio.timeout(WAIT):
                while True:
                    line = (await stream.content.readline()).decode().rstrip("\n")
                    if line.startswith(("event:", "data:")):
                        key, _, value = line.partition(":")
                        event[key] = value.strip()
                    elif not line and "event" in event:
                        events.append((event["event"], json.loads(event["data"])))
                        if events[-1][0] == kind and check(events[-1][1]):
                            return
                        event = {}

        await read_until("hello")
        status, _ = await api.post("/api/gateways", {"id": "events-1"})
        assert status in (201, 409)
        async with gateway(service.ws_url, "events-1") as gw:
            await gw.boot_notification("DX-EV")
            await gw.status_notification("1", "NoError", "Available")
            now = datetime.now(UTC)
            sampled = [t.SampledValue(value="1.5")]
            await gw.meter_values(1, [t.MeterValue(timestamp=now, sampled_value=sampled)])
            await gw.data_transfer("Ding", message_id="m", data="x")
            await gw.firmware_status_notification("Downloading")
            await gw.diagnostics_status_notification("Uploading")
        await read_until("connection", lambda data: data["connected"] is False)
        await api.request("DELETE", "/api/gateways/events-1")
        await read_until("gateway", lambda data: data["change"] == "removed")
        status, _ = await api.post("/api/gateway-imports", {"gateways": [{"id": "events-2"}]})
        assert status == 201
        await read_until("gateway", lambda data: data["change"] == "imported")
    kinds = {kind for kind, _ in events}
    assert kinds >= KINDS - {"resync"}, kinds
    for kind, data in events:
        schema = {"$ref": refs[kind]["$ref"], "components": doc["components"]}
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
        assert not errors, (kind, data, [e.message for e in errors])
