"""A connection opened to one endpoint's name is never reused for another name at the same address:
before, the client pooled connections by the checked address, and after a delivery to a.test a
delivery to b.test went over a.test's verified connection though no certificate names b.test."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.event_sender import EventSender, now, sign


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test authority, and a certificate it issues for a.test only: (authority, cert, key)."""
    moment = dt.datetime.now(dt.UTC)
    authority_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "events test authority")])
    authority = (
        x509.CertificateBuilder()
        .subject_name(authority_name)
        .issuer_name(authority_name)
        .public_key(authority_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(hours=1))
        .not_valid_after(moment + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(authority_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.test")]))
        .issuer_name(authority_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(hours=1))
        .not_valid_after(moment + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.test")]), critical=False)
        .sign(authority_key, hashes.SHA256())
    )
    paths = directory / "authority.pem", directory / "a.pem", directory / "a.key"
    paths[0].write_bytes(authority.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def a_test_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[str]]]:
    authority, cert, key = _certificates(tmp_path)
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            hosts.append(self.headers["host"])
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], authority, hosts
    finally:
        server.shutdown()
        server.server_close()


async def test_a_connection_verified_for_one_name_is_never_used_for_another(
    a_test_server: tuple[int, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, authority, hosts = a_test_server
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host in ("a.test", "b.test"):  # both names at the one address
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", args[0]))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    sender = EventSender(
        dev=True, timeout_seconds=5, verify=ssl.create_default_context(cafile=str(authority))
    )
    signed = sign("evt_1", '{"to":"b"}', ("whsec_" + "B" * 32,), now())
    try:
        to_a = await sender.send(f"https://a.test:{port}/a", signed)
        to_b = await sender.send(f"https://b.test:{port}/b", signed)
    finally:
        await sender.aclose()
    assert to_a.status_code == 204
    assert to_b.status_code is None and "CERTIFICATE_VERIFY_FAILED" in to_b.text, to_b
    assert hosts == [f"a.test:{port}"]  # b's event never reached a's server
