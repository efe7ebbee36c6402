"""TLS end to end (spec §1): profile 2 (wss + Basic auth) and profile 3 (mutual TLS).

The certificates come from the ``pki`` fixture: a CA made for the test run, a server
certificate for 127.0.0.1 and client certificates whose CN is a gateway id.
"""

from __future__ import annotations

import ssl

import pytest
from endpoint_helpers import C2G_REPLIES, G2C_REPLIES, GW, T0, Recording, eventually, reports

from ntxcp import (
    Backoff,
    HandshakeInfo,
    HandshakeRefusedError,
    client_tls_context,
    server_tls_context,
)

pytestmark = pytest.mark.timeout(30)


async def test_profile_2_tls_and_basic_auth(make_cc, make_gw, pki):
    cc = await make_cc(ssl=server_tls_context(str(pki.server_cert), str(pki.server_key)))
    assert cc.url.startswith("wss://127.0.0.1:")
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    cc.set_basic_auth_handler(lambda gateway_id, password: password == "s3cret")
    infos: list[HandshakeInfo] = []
    cc.set_new_gateway_validation_handler(lambda gateway_id, info: infos.append(info) or True)
    trust = client_tls_context(str(pki.ca_cert))
    assert trust.minimum_version >= ssl.TLSVersion.TLSv1_2

    gw = await make_gw(None, start=False, password="s3cret", ssl=trust)
    Recording(control_center=False, replies=C2G_REPLIES).install(gw)
    await gw.start(cc.url)
    assert (await gw.heartbeat()).current_time == T0
    assert (await cc.reset(GW, "Soft")).status == "Accepted"
    connection = cc.connection(GW)
    assert connection is not None
    assert connection.tls is True
    assert connection.peer_certificate is None
    assert infos[0].tls is True and infos[0].credentials == (GW, "s3cret")
    assert infos[0].certificate_common_name is None

    with pytest.raises(HandshakeRefusedError) as caught:  # TLS is fine, the password is not
        await make_gw(cc.url, "GW-2", password="wrong", ssl=client_tls_context(str(pki.ca_cert)))
    assert caught.value.status == 401
    with pytest.raises(HandshakeRefusedError) as caught:
        await make_gw(cc.url, "GW-3", ssl=client_tls_context(str(pki.ca_cert)))
    assert caught.value.status == 401
    assert [r.gateway_id for r in reports(cc, "handshake-refused")] == ["GW-2", "GW-3"]


async def test_profile_2_untrusted_server_certificate(make_cc, make_gw, pki):
    cc = await make_cc(ssl=server_tls_context(str(pki.server_cert), str(pki.server_key)))
    with pytest.raises(ssl.SSLCertVerificationError):
        await make_gw(cc.url, password="x")  # system trust store: our CA is unknown
    with pytest.raises(ssl.SSLCertVerificationError):
        await make_gw(cc.url, password="x", ssl=client_tls_context())
    # plain ws:// against a TLS port does not get a WebSocket either
    with pytest.raises(ConnectionError):
        await make_gw(cc.url.replace("wss://", "ws://"), "GW-plain", connect_timeout=2)
    assert cc.gateways() == []


async def test_profile_3_mutual_tls(make_cc, make_gw, pki):
    cc = await make_cc(
        ssl=server_tls_context(
            str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca_cert)
        )
    )
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    seen: list[tuple[str, str | None]] = []

    def certificate_names_the_gateway(gateway_id: str, info: HandshakeInfo) -> bool:
        seen.append((gateway_id, info.certificate_common_name))
        return info.certificate_common_name == gateway_id

    cc.set_new_gateway_validation_handler(certificate_names_the_gateway)
    cert, key = pki.client_cert(GW)
    gw = await make_gw(
        cc.url, ssl=client_tls_context(str(pki.ca_cert), certfile=str(cert), keyfile=str(key))
    )
    assert (await gw.heartbeat()).current_time == T0
    connection = cc.connection(GW)
    assert connection is not None and connection.tls is True
    assert connection.peer_certificate is not None
    subject = dict(rdn[0] for rdn in connection.peer_certificate["subject"])
    assert subject["commonName"] == GW
    assert seen == [(GW, GW)]

    # a valid certificate of another gateway is refused by the hook
    other_cert, other_key = pki.client_cert("GW-other")
    with pytest.raises(HandshakeRefusedError) as caught:
        await make_gw(
            cc.url,
            "GW-impostor",
            ssl=client_tls_context(
                str(pki.ca_cert), certfile=str(other_cert), keyfile=str(other_key)
            ),
        )
    assert caught.value.status == 401
    assert seen[-1] == ("GW-impostor", "GW-other")


async def test_profile_3_without_client_certificate_cannot_connect(make_cc, make_gw, pki):
    cc = await make_cc(
        ssl=server_tls_context(
            str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca_cert)
        )
    )
    connected: list[str] = []
    cc.set_new_gateway_handler(lambda connection: connected.append(connection.id))
    with pytest.raises(ConnectionError):  # the server drops it in the TLS handshake
        await make_gw(cc.url, ssl=client_tls_context(str(pki.ca_cert)), connect_timeout=3)
    # the one with a certificate still gets in
    cert, key = pki.client_cert(GW)
    gw = await make_gw(
        cc.url, ssl=client_tls_context(str(pki.ca_cert), certfile=str(cert), keyfile=str(key))
    )
    assert gw.is_connected
    await eventually(lambda: connected == [GW])


async def test_handshake_drops_are_retried_with_backoff(make_cc, make_gw, pki):
    cc = await make_cc(
        ssl=server_tls_context(
            str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca_cert)
        )
    )
    gw = await make_gw(
        None,
        start=False,
        ssl=client_tls_context(str(pki.ca_cert)),
        backoff=Backoff(initial=0.01, maximum=0.01, max_attempts=3),
    )
    with pytest.raises(ConnectionError):
        await gw.start(cc.url, retry=True)
    retries = reports(gw, "connection-error")
    assert len(retries) >= 2  # every failed attempt is reported, none ended the retrying
    assert all("handshake" in str(r) for r in retries)
