"""A throw-away certificate authority of the tests, as PEM files.

:func:`make_pki` makes a CA, a server certificate for 127.0.0.1, ::1 and localhost, and
client certificates whose CN is a gateway id on demand (security profiles 2 and 3,
spec §1; TLS to NATS and PostgreSQL, docs/deployment.md). The session's ``pki``
fixture is one; a test that needs a CA the servers do not use makes another.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki"]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ntxcp tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass
class Pki:
    """PEM files of a test PKI.

    Attributes:
        directory: where the files are.
        ca_cert: the CA certificate (trust anchor for both sides).
        server_cert: server certificate for 127.0.0.1, ::1 and localhost.
        server_key: its private key.
    """

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    _ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    _ca: x509.Certificate = field(repr=False)
    _clients: dict[str, tuple[Path, Path]] = field(default_factory=dict, repr=False)

    def client_cert(self, gateway_id: str) -> tuple[Path, Path]:
        """A client certificate with CN = ``gateway_id``, signed by the CA: (cert, key)."""
        if gateway_id not in self._clients:
            key = _key()
            cert = _issue(self._ca, self._ca_key, _name(gateway_id), key, client=True)
            stem = "client-" + "".join(c if c.isalnum() else "_" for c in gateway_id)
            cert_path = self.directory / f"{stem}.pem"
            key_path = self.directory / f"{stem}.key"
            _write_cert(cert_path, cert)
            _write_key(key_path, key)
            self._clients[gateway_id] = (cert_path, key_path)
        return self._clients[gateway_id]


SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
"""The names of the server certificate by default: every name of the loopback."""


def _general_name(name: str) -> x509.GeneralName:
    """A subject alternative name: an IP address, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    client: bool,
    server_names: tuple[str, ...] = SERVER_NAMES,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if not client:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [_general_name(server_name) for server_name in server_names]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())


def make_pki(
    directory: Path, name: str = "ntxcp test CA", server_names: tuple[str, ...] = SERVER_NAMES
) -> Pki:
    """A new CA and its server certificate, as files in ``directory``.

    Args:
        directory: where the PEM files go.
        name: the CA's common name.
        server_names: the server certificate's names (host names or IP addresses).

    Client certificates are made on demand: :meth:`Pki.client_cert`.
    """
    ca_key = _key()
    now = dt.datetime.now(dt.UTC)
    ca_name = _name(name)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    _write_cert(ca_path, ca)
    server_key = _key()
    server = _issue(
        ca, ca_key, _name(server_names[0]), server_key, client=False, server_names=server_names
    )
    server_cert_path = directory / "server.pem"
    server_key_path = directory / "server.key"
    _write_cert(server_cert_path, server)
    _write_key(server_key_path, server_key)
    return Pki(directory, ca_path, server_cert_path, server_key_path, ca_key, ca)
