"""HTTPS for every service: a phone's browser gives the camera only to a secure page.

`tls = true` serves HTTPS with the certificate and key at `tls_cert` / `tls_key` (PEM files a bank's
CA issued), or, when none is given, a self-signed one made on first start under `<data>/tls/` and
kept for the next starts. Its SHA-256 fingerprint is printed so that a person can check what their
browser shows before trusting it.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloudbank.platform.config import Config
from cloudbank.platform.errors import CloudbankError

SELF_SIGNED_DAYS = 825  # the longest validity browsers accept for a server certificate


class TlsError(CloudbankError):
    """The certificate or key cannot be used (said in one line at start)."""


def certificate_paths(config: Config) -> tuple[Path, Path]:
    """The certificate and key to serve: the configured pair, else the self-signed one (made now if
    it does not exist yet)."""
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise TlsError("set both tls_cert and tls_key (CLOUDBANK_TLS_CERT, CLOUDBANK_TLS_KEY), or neither "
                           "for a self-signed certificate")
        return Path(config.tls_cert), Path(config.tls_key)
    folder = config.data / "tls"
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not (cert.is_file() and key.is_file()):
        make_self_signed(cert, key, config.host)
    return cert, key


def make_self_signed(cert_path: Path, key_path: Path, host: str = "") -> None:
    """An ECDSA P-256 certificate for this machine's names and loopback (and `host` when it is an
    address or a name), valid SELF_SIGNED_DAYS; the key file is readable by its owner only."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname()),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    if host and host not in ("0.0.0.0", "::", "127.0.0.1", "::1", "localhost"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloudbank (self-signed)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def fingerprint(cert_path: Path) -> str:
    """`AB:CD:...`, the SHA-256 of the certificate as browsers show it."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def server_context(config: Config) -> ssl.SSLContext | None:
    """The TLS context to serve with (None when `tls` is off)."""
    if not config.tls:
        return None
    cert, key = certificate_paths(config)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot use the TLS certificate {cert} and key {key}: {exc}") from None
    return context
