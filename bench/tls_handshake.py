"""What one TLS handshake costs the control center (security profile 2, spec §1).

Runs TLS handshakes between a client and a server :class:`ssl.SSLObject` joined by
memory buffers (no sockets, no event loop), and measures the CPU time the **server**
side spends in them, for:

* an RSA-2048 and an ECDSA P-256 server certificate (both made for the run);
* TLS 1.3 full handshakes and TLS 1.3 resumptions with a session ticket (the client
  offers the session of its previous connection), and TLS 1.2 full handshakes.

It also says whether a resumption really happened (``session_reused``), and how many
tickets the server context issues. Prints one line per case: server CPU µs per
handshake (median of rounds), handshakes per second of one core.

    python bench/tls_handshake.py [--handshakes 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

KeyType = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def self_signed(work: Path, kind: str = "ec") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (``ec``: ECDSA P-256, ``rsa``: RSA-2048).

    Returns:
        The PEM files of the certificate and of its key.
    """
    key: KeyType = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = work / f"server-{kind}.pem", work / f"server-{kind}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _pump(source: ssl.MemoryBIO, target: ssl.MemoryBIO) -> None:
    data = source.read()
    if data:
        target.write(data)


class _Pair:
    """A client and a server TLS object over memory buffers; server CPU is timed apart."""

    def __init__(
        self,
        server_context: ssl.SSLContext,
        client_context: ssl.SSLContext,
        session: ssl.SSLSession | None,
    ) -> None:
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client_context.wrap_bio(
            self.c_in, self.c_out, server_hostname="127.0.0.1", session=session
        )
        self.server = server_context.wrap_bio(self.s_in, self.s_out, server_side=True)
        self.server_cpu = 0.0

    def _step(self, side: ssl.SSLObject) -> bool:
        try:
            side.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def handshake(self) -> None:
        client_done = server_done = False
        while not (client_done and server_done):
            if not client_done:
                client_done = self._step(self.client)
            _pump(self.c_out, self.s_in)
            if not server_done:
                began = time.process_time()
                server_done = self._step(self.server)
                self.server_cpu += time.process_time() - began
            _pump(self.s_out, self.c_in)
        # TLS 1.3 sends its session tickets after the handshake: let the client read them.
        began = time.process_time()
        self.server.write(b"x")
        self.server_cpu += time.process_time() - began
        _pump(self.s_out, self.c_in)
        self.client.read(1)


def _contexts(
    files: tuple[Path, Path], version: ssl.TLSVersion
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = files
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(str(cert), str(key))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(str(cert))
    client.minimum_version = client.maximum_version = version
    return server, client


def _case(
    cert: tuple[Path, Path], version: ssl.TLSVersion, resume: bool, count: int
) -> tuple[float, bool]:
    """Server CPU seconds per handshake, and whether the last one was a resumption."""
    server, client = _contexts(cert, version)
    session: ssl.SSLSession | None = None
    if resume:
        first = _Pair(server, client, None)
        first.handshake()
        session = first.client.session
    total = 0.0
    reused = False
    for _ in range(count):
        pair = _Pair(server, client, session)
        pair.handshake()
        total += pair.server_cpu
        reused = pair.client.session_reused
        if resume:
            session = pair.client.session  # TLS 1.3 tickets are for one use
    return total / count, reused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handshakes", type=int, default=300, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{ssl.OPENSSL_VERSION}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="ntxcp-tls-"))
    certs = {"RSA-2048": self_signed(work, "rsa"), "ECDSA P-256": self_signed(work, "ec")}
    tickets = _contexts(certs["ECDSA P-256"], ssl.TLSVersion.TLSv1_3)[0].num_tickets
    print(f"TLS 1.3 session tickets a server context issues per handshake: {tickets}")
    cases = [
        ("TLS 1.3 full", ssl.TLSVersion.TLSv1_3, False),
        ("TLS 1.3 resumed", ssl.TLSVersion.TLSv1_3, True),
        ("TLS 1.2 full", ssl.TLSVersion.TLSv1_2, False),
    ]
    heads = ("certificate", "handshake", "server CPU us", "per core /s", "resumed")
    print(f"{heads[0]:12} {heads[1]:16} {heads[2]:>13} {heads[3]:>11} {heads[4]:>8}")
    for label, cert in certs.items():
        for name, version, resume in cases:
            runs = [_case(cert, version, resume, args.handshakes) for _ in range(args.rounds)]
            cpu = statistics.median(seconds for seconds, _ in runs)
            print(
                f"{label:12} {name:16} {cpu * 1e6:>13.0f} {1 / cpu:>11.0f} "
                f"{'yes' if runs[-1][1] else 'no':>8}"
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
