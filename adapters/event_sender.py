"""Sending one event to a merchant's endpoint, signed per Standard Webhooks with the official
`standardwebhooks` package, and nothing an endpoint can turn against us.

Outside dev an endpoint must be https and resolve to public addresses only (no private, loopback,
link-local or reserved address: an endpoint is not a way into our network). The connection goes to
the address that was checked, so a name that resolves differently a moment later (DNS rebinding)
cannot slip past. Redirects are not followed, an answer is read up to a bound, and a slow endpoint
times out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

TIMEOUT_SECONDS = 10.0
RESOLVER_THREADS = 4  # name lookups at once, across every endpoint
HOSTS_KEPT = 256  # host names whose connections are kept open
ANSWER_BOUND = 4096  # bytes of an answer read; the rest is never read
MAX_URL = 2000


class EndpointRefused(ValueError):
    """An endpoint URL we will not send to, with a code for the caller."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_url(url: str, *, dev: bool) -> str:
    """The URL as kept, or EndpointRefused: https (http in dev), a host (a name in IDNA or an
    address), a valid port, no credentials in it, and outside dev no address literal that is not
    public."""
    if len(url) > MAX_URL:
        raise EndpointRefused("invalid_url", f"an endpoint URL is at most {MAX_URL} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:  # a bracket left open, a port that is no number
        raise EndpointRefused("invalid_url", f"not a URL: {url!r} ({err})") from err
    allowed = ("https", "http") if dev else ("https",)
    if parts.scheme not in allowed:
        raise EndpointRefused("insecure_url", f"an endpoint URL must be {' or '.join(allowed)}: {url!r}")
    if not parts.hostname or port == 0:
        raise EndpointRefused("invalid_url", f"an endpoint URL names a host and a port above 0: {url!r}")
    if parts.username or parts.password:
        raise EndpointRefused(
            "invalid_url", "an endpoint URL carries no credentials (the signature proves us)"
        )
    ascii_host(parts.hostname)
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and not dev and not _public(literal):
        raise EndpointRefused("private_address", f"{parts.hostname} is not a public address")
    return urlunsplit(parts)


def ascii_host(host: str) -> str:
    """The host as DNS and the Host header take it (an internationalised name in IDNA)."""
    try:
        return host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError) as err:
        raise EndpointRefused("invalid_url", f"{host!r} is not a host name") from err


# IPv6 ranges that carry an IPv4 address into a network (NAT64, 6to4, Teredo, IPv4-translated and
# -compatible): from outside they reach whatever IPv4 address they embed, private ones included
_TUNNELS = tuple(
    ipaddress.ip_network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::ffff:0:0:0/96", "::/96")
)


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _public(address.ipv4_mapped)
        if any(address in tunnel for tunnel in _TUNNELS):
            return False
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no answer (refused, timed out, not allowed)
    latency_ms: int
    text: str  # the start of the answer, or why there was none


@dataclass(frozen=True)
class Signed:
    headers: dict[str, str]
    body: bytes


def sign(event_id: str, body: str, secrets: tuple[str, ...], at: datetime) -> Signed:
    """Standard Webhooks headers: one `v1,` signature per secret (a rotated secret's grace)."""
    raw = body.encode()
    signatures = " ".join(Webhook(secret).sign(event_id, at, raw) for secret in secrets)
    return Signed(
        headers={
            "content-type": "application/json",
            "user-agent": "refunds-events/1",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures,
        },
        body=raw,
    )


class EventSender:
    """One HTTP client for every endpoint; `dev` allows http and local addresses (a receiver on the
    developer's own machine)."""

    def __init__(
        self, *, dev: bool, timeout_seconds: float = TIMEOUT_SECONDS, verify: ssl.SSLContext | bool = True
    ) -> None:
        self._dev = dev
        self.timeout_seconds = timeout_seconds
        self._verify = verify  # the public CAs; a test's own authority in tests
        # one pool of connections per host name: a connection is verified for the name it was
        # opened to (its TLS server name), so it is never reused for another name at that address
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._resolver = ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="event-dns")

    def _client(self, host: str) -> httpx.AsyncClient:
        client = self._clients.pop(host, None)
        if client is None:
            # the whole attempt is bounded in `send`: a trickling answer cannot hold it open
            client = httpx.AsyncClient(
                timeout=self.timeout_seconds, follow_redirects=False, trust_env=False, verify=self._verify
            )
        self._clients[host] = client
        while len(self._clients) > HOSTS_KEPT:
            _, oldest = self._clients.popitem(last=False)
            asyncio.get_running_loop().create_task(oldest.aclose())
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        self._resolver.shutdown(wait=False)

    async def send(self, url: str, signed: Signed) -> Answer:
        started = time.perf_counter()

        def took() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            async with asyncio.timeout(self.timeout_seconds):  # the name's resolution included
                target, extensions, host, name = await self._pinned(url)
                headers = {**signed.headers, "host": host}
                async with self._client(name).stream(
                    "POST", target, content=signed.body, headers=headers, extensions=extensions
                ) as response:
                    text = await _bounded(response)
                    return Answer(response.status_code, took(), text)
        except EndpointRefused as refused:
            return Answer(None, took(), f"{refused.code}: {refused}")
        except (httpx.TimeoutException, TimeoutError):
            return Answer(None, took(), f"timed out after {self.timeout_seconds:g} s")
        except httpx.HTTPError as err:
            return Answer(None, took(), f"no answer: {type(err).__name__}: {err}"[:300])

    async def _pinned(self, url: str) -> tuple[str, dict[str, object], str, str]:
        """The URL rewritten to the checked address, the TLS name to verify, the Host header, and
        the host name (which connections are kept by)."""
        parts = urlsplit(check_url(url, dev=self._dev))
        name = parts.hostname or ""
        host = ascii_host(name)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        lookup = partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:  # on threads of its own: a slow resolver holds back no one else's work
            found = await asyncio.get_running_loop().run_in_executor(self._resolver, lookup)
        except OSError as err:
            raise EndpointRefused("unresolvable", f"{host} does not resolve: {err.strerror or err}") from err
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
        if not self._dev and not all(_public(address) for address in addresses):
            raise EndpointRefused("private_address", f"{host} resolves to an address that is not public")
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{literal}:{port}"
        named = f"[{host}]" if ":" in host else host  # an IPv6 literal is bracketed in Host too
        host_header = named if parts.port is None else f"{named}:{parts.port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        extensions: dict[str, object] = {"sni_hostname": host} if parts.scheme == "https" else {}
        return target, extensions, host_header, host


async def _bounded(response: httpx.Response) -> str:
    kept = b""
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) >= ANSWER_BOUND:
            break
    return kept[:ANSWER_BOUND].decode("utf-8", errors="replace")


def now() -> datetime:
    return datetime.now(UTC)
