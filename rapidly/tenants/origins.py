"""The websites a tenant's form may be used from: origins, checked as browsers send them.

An origin is `scheme://host[:port]` exactly as a browser writes it in the `Origin` header (lower
case, IDN in punycode, IPv6 in brackets, no default port), so a header is checked by plain string
equality. Only https, except on loopback, where a developer's http://localhost:3000 is normal.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from urllib.parse import urlsplit

import idna

from rapidly import db
from rapidly.errors import InputInvalid, OriginNotAllowed
from rapidly.tenants.models import Tenant

log = logging.getLogger(__name__)

#: Origins one tenant may list: its websites, not a directory of them.
MAX_ORIGINS = 20
MAX_ORIGIN_LENGTH = 300
_DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def clean_origin(value: str, field: str = "origin") -> str:
    """`value` as the browser's `Origin` header writes it; `InputInvalid` for anything that is not an
    origin (a path, a wildcard, `null`, credentials, http outside loopback)."""

    def refuse(code: str, message: str) -> InputInvalid:
        return InputInvalid.one(field, code, message)

    text = value.strip()
    if not text or len(text) > MAX_ORIGIN_LENGTH:
        raise refuse("invalid_origin", f"Give an origin such as https://www.example.fi (at most {MAX_ORIGIN_LENGTH}).")
    if "*" in text:
        raise refuse("wildcard", "List each website's origin; wildcards are not allowed.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise refuse("invalid_origin", "This is not an origin such as https://www.example.fi.") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise refuse("invalid_origin", "An origin is https://host or https://host:port, e.g. https://www.example.fi.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise refuse("not_an_origin", "An origin has no path, query or fragment: https://www.example.fi.")
    if parts.username is not None or parts.password is not None:
        raise refuse("not_an_origin", "An origin has no user name or password.")
    host = _host(parts.hostname)
    if host is None:
        raise refuse("invalid_origin", "The host name is not valid.")
    if scheme == "http" and not is_loopback(host):
        raise refuse("https_required", "Use https:// (http:// only for localhost and 127.0.0.1).")
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown_port}"


def _host(hostname: str) -> str | None:
    """The host as a browser serialises it (the WHATWG URL standard): an IP address, or lower-case
    labels with international names in punycode by UTS #46, non-transitional, as browsers map them
    ("faß.de" is xn--fa-hia.de, not fass.de). A host that ends in a number is not a name: it must be
    a plain IPv4 address (browsers would read "127.1" as 127.0.0.1)."""
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    try:
        ascii_host = idna.encode(hostname.rstrip("."), uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1]):
        return None
    return ascii_host


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    return False


def allows(tenant: Tenant, origin: str | None) -> bool:
    """A request from `origin` may act for this tenant (None: not a cross-origin browser request)."""
    return origin is None or origin in (tenant.allowed_origins or ())


def require(tenant: Tenant, origin: str | None) -> None:
    if not allows(tenant, origin):
        raise OriginNotAllowed()


# Every origin any tenant lists: one short read across tenants that returns origins only.
_ALL_LISTED = "SELECT DISTINCT jsonb_array_elements_text(allowed_origins) FROM tenant"


class ListedOrigins:
    """Every origin some tenant lists, for the CORS layer, so that a preflight costs no query.

    Kept in memory and read again at most every `ttl` seconds: operators change origins from another
    process (`rapidly tenant origins`). The first read, and the first after a change made in this
    process (`forget`), is awaited; later ones happen in the background while the previous set
    answers. While the database is unreachable the last set known keeps answering, so a form that is
    open keeps working through an outage. This only decides which browsers may read answers: each
    operation still checks its own tenant's list (`require`).
    """

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._origins: frozenset[str] | None = None
        self._must_read = True
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def contains(self, origin: str) -> bool | None:
        """Whether some tenant lists `origin`; None while no list could be read at all (the database
        has been unreachable since this process started)."""
        if self._must_read:
            if self._reading is None:  # one read, however many requests wait for it
                self._reading = asyncio.create_task(self._read())
            await asyncio.shield(self._reading)
        elif time.monotonic() - self._read_at > self.ttl and self._reading is None:
            self._reading = asyncio.create_task(self._read())
        return None if self._origins is None else origin in self._origins

    def knows(self, origin: str) -> bool:
        """`contains` without reading: from the set as last read."""
        return self._origins is not None and origin in self._origins

    def forget(self) -> None:
        """Read again before answering the next request (after a change made in this process)."""
        self._must_read = True

    async def _read(self) -> None:
        try:
            async with db.connection() as conn:
                rows = await conn.fetch(_ALL_LISTED)
            self._origins = frozenset(row[0] for row in rows)
        except Exception as exc:  # unreachable: keep answering from what we knew
            log.warning("could not read the allowed origins (%s); using the last ones read", type(exc).__name__)
        finally:
            self._must_read = self._origins is None
            self._read_at = time.monotonic()
            self._reading = None


#: This process's copy; `rapidly.tenants.service` makes it read again after a change.
listed = ListedOrigins()
