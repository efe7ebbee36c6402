"""JSON Schemas generated from the models (ntxcp.v10.schema, scripts/gen_schemas.py)."""

from __future__ import annotations

import importlib.resources
import json
import runpy
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from ntxcp.v10 import ACTIONS, Payload
from ntxcp.v10.schema import (
    SCHEMA_DIALECT,
    all_schemas,
    confirmation_schema,
    payload_schema,
    request_schema,
    schema_text,
)
from ntxcp.v10.types import SampledValue

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_schemas.py"
GEN = runpy.run_path(str(SCRIPT))
write_schemas = GEN["write_schemas"]


def test_all_schemas_names() -> None:
    schemas = all_schemas()
    assert list(schemas) == [f"{a}.{k}" for a in ACTIONS for k in ("req", "conf")]
    assert len(schemas) == 30


@pytest.mark.parametrize("stem", list(all_schemas()))
def test_schema_is_valid_and_self_contained(stem: str) -> None:
    schema = all_schemas()[stem]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == SCHEMA_DIALECT
    # every reference points into the document itself
    text = json.dumps(schema)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"]


def test_shipped_schemas_are_up_to_date() -> None:
    shipped = importlib.resources.files("ntxcp.v10") / "schemas"
    names = sorted(p.name for p in shipped.iterdir() if p.name.endswith(".json"))
    expected = all_schemas()
    assert names == sorted(f"{stem}.json" for stem in expected)
    for stem, schema in expected.items():
        text = (shipped / f"{stem}.json").read_text(encoding="utf-8")
        assert text == schema_text(schema), f"{stem}.json is stale: run scripts/gen_schemas.py"


def test_request_and_confirmation_schema() -> None:
    req = request_schema("BootNotification")
    assert req["title"] == "BootNotification request"
    assert req["$ref"] == "#/$defs/BootNotificationRequest"
    body = req["$defs"]["BootNotificationRequest"]
    assert body["required"] == ["dingxGatewayModel"]
    assert body["additionalProperties"] is False
    assert body["properties"]["dingxGatewayModel"] == {"type": "string", "maxLength": 20}
    conf = confirmation_schema("BootNotification")
    assert conf["title"] == "BootNotification confirmation"
    props = conf["$defs"]["BootNotificationConfirmation"]["properties"]
    assert props["interval"] == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    assert props["currentTime"]["format"] == "date-time"
    assert "pattern" in props["currentTime"]
    assert conf["$defs"]["RegistrationStatus"]["enum"] == ["Accepted", "Pending", "Rejected"]


def test_uri_and_unique_items() -> None:
    location = request_schema("UpdateFirmware")["$defs"]["UpdateFirmwareRequest"]["properties"][
        "location"
    ]
    assert location["format"] == "uri"
    assert "pattern" in location
    ids = request_schema("CaptureProcess")["$defs"]["CaptureProcessRequest"]["properties"][
        "datapointIds"
    ]
    assert ids["uniqueItems"] is True
    assert (ids["minItems"], ids["maxItems"]) == (1, 100)


def test_descriptions_are_one_line_summaries() -> None:
    schema = payload_schema(SampledValue, "SampledValue")
    assert schema["$defs"]["SampledValue"]["description"] == (
        "One measured value (spec §4.1 `SampledValue`)."
    )
    for stem, doc in all_schemas().items():
        for name, definition in doc["$defs"].items():
            assert "\n" not in definition.get("description", ""), (stem, name)


def test_class_without_docstring() -> None:
    class Bare(Payload):
        value: int

    schema = payload_schema(Bare, "Bare")
    assert "description" not in schema["$defs"]["Bare"]
    assert schema["$defs"]["Bare"]["required"] == ["value"]


@pytest.mark.parametrize("make", [request_schema, confirmation_schema])
def test_unknown_action(make: object) -> None:
    with pytest.raises(KeyError, match="unknown action 'Authorize'"):
        make("Authorize")  # type: ignore[operator]


def test_write_schemas(tmp_path: Path) -> None:
    target = tmp_path / "out"
    assert write_schemas(target, check=True) == sorted(f"{s}.json" for s in all_schemas())
    assert not target.exists()
    written = write_schemas(target)
    assert len(written) == 30
    assert write_schemas(target) == []
    assert write_schemas(target, check=True) == []
    # a stale file and a changed file are reported, then fixed
    (target / "Obsolete.req.json").write_text("{}", encoding="utf-8")
    (target / "Heartbeat.req.json").write_text("{}", encoding="utf-8")
    (target / "notes.txt").write_text("kept", encoding="utf-8")
    expected = ["Heartbeat.req.json", "Obsolete.req.json"]
    assert write_schemas(target, check=True) == expected
    assert write_schemas(target) == expected
    assert not (target / "Obsolete.req.json").exists()
    assert (target / "notes.txt").exists()
    assert write_schemas(target, check=True) == []


def test_gen_schemas_script(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    run = [sys.executable, str(SCRIPT), "--dir", str(out)]
    check = subprocess.run([*run, "--check"], capture_output=True, text=True, check=False)
    assert check.returncode == 1
    assert "out of date: Heartbeat.req.json" in check.stdout
    write = subprocess.run(run, capture_output=True, text=True, check=False)
    assert write.returncode == 0
    assert "written: Heartbeat.req.json" in write.stdout
    again = subprocess.run([*run, "--check"], capture_output=True, text=True, check=False)
    assert again.returncode == 0
    assert "up to date" in again.stdout


def test_gen_schemas_script_checks_the_package() -> None:
    assert GEN["main"](["--check"]) == 0
