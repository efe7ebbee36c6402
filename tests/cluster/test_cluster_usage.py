"""Cluster mode's command line and subject names, without servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntxcp.service.cluster.subjects import call_subject, gateway_id_of, gateway_token
from service_process import run_cli

# spec §1: gateway ids are 1..48 printable ASCII characters without "/".
GATEWAY_IDS = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="/"),
    min_size=1,
    max_size=48,
)


@given(GATEWAY_IDS)
def test_every_gateway_id_is_one_valid_subject_token(gateway_id: str) -> None:
    token = gateway_token(gateway_id)
    assert gateway_id_of(token) == gateway_id
    # NATS subject tokens: no separators, wildcards or white space.
    assert not set(token) & set(". *>\t\r\n")
    assert call_subject(gateway_id).split(".") == ["ntxcp", "gw", token, "call"]


def test_the_encoding_is_one_to_one() -> None:
    assert gateway_token("GW.1 x") == "GW~2e1~20x"
    assert gateway_token("a~2eb") != gateway_token("a.b")
    assert gateway_token("plain-ID_9") == "plain-ID_9"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "nats://127.0.0.1:4222"], "--cluster needs --db postgresql://"),
        (["--node-id", "n1"], "--node-id needs --cluster"),
        (
            ["--db", "postgresql://u@127.0.0.1:1/x", "--cluster", "http://x"],
            "--cluster must be a nats:// URL",
        ),
        (
            ["--db", "postgresql://u@127.0.0.1:1/x", "--cluster", "nats://h:1", "--node-id", "a.b"],
            "--node-id must be 1..64 letters",
        ),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    if "--db" not in args:
        args = ["--db", str(tmp_path / "cc.sqlite"), *args]
    result = run_cli(["control-center", "--port", "0", "--api-port", "0", *args])
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr
