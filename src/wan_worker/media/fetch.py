"""Turn one user input (base64, URL or path) into a file of raw bytes in the job's folder.

Every form is capped in size, every failure names the request field, and a file appears under
its final name only once it is complete. URLs are fetched under the SSRF policy in
``addresses``: each hop's host is resolved once, every address vetted, and the connection pinned
to exactly those addresses, so a second DNS answer can never send it elsewhere.
"""

from __future__ import annotations

import asyncio
import binascii
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from wan_worker.errors import InputFetchFailed, InputTooLarge, InvalidInput, Problem
from wan_worker.media.addresses import (
    HostResolver,
    IPAddress,
    SystemResolver,
    address_allowed,
    classify_address,
    host_problem,
    parse_ip,
)
from wan_worker.media.files import PartFile, new_name
from wan_worker.media.limits import InputLimits, MediaKind

InputForm = Literal["base64", "url", "path"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
USER_AGENT = "wan-worker (input fetch)"

_DATA_URI_TYPES: dict[MediaKind, tuple[str, ...]] = {
    "image": ("image/", "application/octet-stream"),
    "audio": ("audio/", "application/ogg", "application/octet-stream"),
}
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class InputSource:
    """One user input and the form it came in (``image_base64`` → ``base64``, and so on)."""

    form: InputForm
    value: str = field(repr=False)


async def load_input(
    source: InputSource,
    *,
    field: str,
    kind: MediaKind,
    limits: InputLimits,
    dest_dir: Path,
    resolver: HostResolver | None = None,
) -> Path:
    """Write the input's raw bytes to a new file in ``dest_dir`` and return its path.

    Raises InvalidInput, InputFetchFailed or InputTooLarge naming ``field``; nothing is left in
    ``dest_dir`` when it does. ``resolver`` replaces the system DNS (tests map names to addresses).
    """
    final = new_name(dest_dir, field, ".input")
    if source.form == "base64":
        return await asyncio.to_thread(
            _write_base64, source.value, field=field, kind=kind, limits=limits, final=final
        )
    if source.form == "path":
        return await asyncio.to_thread(
            _copy_path, source.value, field=field, kind=kind, limits=limits, final=final
        )
    return await _download(
        source.value,
        field=field,
        limits=limits,
        max_bytes=limits.max_bytes(kind),
        final=final,
        resolver=resolver or SystemResolver(),
    )


def _problem(field: str, message: str, rule: str) -> list[Problem]:
    return [Problem(message=message, field=field, rule=rule)]


def _invalid(field: str, message: str, rule: str) -> InvalidInput:
    return InvalidInput(f"{field} {message}", problems=_problem(field, message, rule))


def _fetch_failed(field: str, message: str, rule: str) -> InputFetchFailed:
    return InputFetchFailed(f"{field} {message}", problems=_problem(field, message, rule))


def _too_large(field: str, size: str, max_bytes: int) -> InputTooLarge:
    message = f"is {size}; the limit is {max_bytes} bytes"
    return InputTooLarge(
        f"{field} {message}",
        problems=_problem(field, message, "max_bytes"),
        details={"max_bytes": max_bytes},
    )


# ---------------------------------------------------------------------------- base64


def decode_base64(text: str, *, field: str, kind: MediaKind, limits: InputLimits) -> bytes:
    """Decode plain base64 or a base64 data URI, refusing oversize payloads before decoding."""
    payload = text
    if text[:5].lower() == "data:":
        header, comma, payload = text.partition(",")
        if not comma:
            raise _invalid(field, "is a data URI without a comma before its data", "data_uri")
        mime, *params = (part.strip().lower() for part in header[5:].split(";"))
        if "base64" not in params:
            raise _invalid(field, "must be a base64 data URI (';base64,')", "data_uri")
        if not mime.startswith(_DATA_URI_TYPES[kind]):
            expected = f"{kind}/*"
            raise _invalid(field, f"declares type {mime or 'none'!r}; expected {expected}", "type")
    elif text.lstrip()[:8].lower().startswith(("http://", "https://")):
        stem = field.removesuffix("_base64")
        raise _invalid(field, f"looks like a URL; send it as {stem}_url", "base64")
    payload = _WHITESPACE.sub("", payload)
    if not payload:
        raise _invalid(field, "is empty", "base64")
    max_bytes = limits.max_bytes(kind)
    least_decoded = len(payload) * 3 // 4 - 2
    if least_decoded > max_bytes:
        raise _too_large(field, f"about {least_decoded} bytes", max_bytes)
    if "-" in payload or "_" in payload:
        payload = payload.replace("-", "+").replace("_", "/")
    payload += "=" * (-len(payload) % 4)
    try:
        data = binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error:
        raise _invalid(field, "is not valid base64", "base64") from None
    if not data:
        raise _invalid(field, "is empty", "base64")
    if len(data) > max_bytes:
        raise _too_large(field, f"{len(data)} bytes", max_bytes)
    return data


def _write_base64(
    text: str, *, field: str, kind: MediaKind, limits: InputLimits, final: Path
) -> Path:
    data = decode_base64(text, field=field, kind=kind, limits=limits)
    with PartFile(final) as part:
        part.write(data)
        return part.commit()


# ---------------------------------------------------------------------------- paths


def _copy_path(
    value: str, *, field: str, kind: MediaKind, limits: InputLimits, final: Path
) -> Path:
    """Copy a file from inside the allowed roots; symlinks are followed, then checked."""
    if not limits.allowed_path_roots:
        raise _invalid(field, "is not accepted: no input folders are configured", "path_roots")
    if not value or "\x00" in value:
        raise _invalid(field, "is not a usable path", "path")
    roots = [root.resolve() for root in limits.allowed_path_roots]
    given = Path(value)
    candidate = given if given.is_absolute() else roots[0] / given
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        raise _fetch_failed(field, "could not be resolved (a symlink loop?)", "path") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        raise _invalid(field, "is outside the allowed input folders", "path_roots")
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _fetch_failed(field, "does not exist", "path") from None
    except OSError as exc:
        raise _fetch_failed(field, f"could not be opened ({exc.strerror})", "path") from None
    max_bytes = limits.max_bytes(kind)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _invalid(field, "is not a regular file", "path")
        if info.st_size > max_bytes:
            raise _too_large(field, f"{info.st_size} bytes", max_bytes)
        with PartFile(final) as part:
            while chunk := os.read(fd, CHUNK_BYTES):
                if part.size + len(chunk) > max_bytes:
                    raise _too_large(field, f"more than {max_bytes} bytes", max_bytes)
                part.write(chunk)
            return part.commit()
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- URLs


def redact_url(url: URL) -> str:
    """The URL as it may appear in messages: no credentials, query string or fragment."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.explicit_port}" if url.explicit_port is not None else ""
    return f"{url.scheme}://{host}{port}{url.raw_path}"


def _origin(url: URL) -> str:
    host = (url.raw_host or "").rstrip(".").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{url.scheme}://{host}:{url.port}"


def parse_url(text: str, *, field: str, where: str) -> URL:
    """Parse and check a URL's shape (scheme, host); ``where`` says which hop it is."""
    try:
        url = URL(text.strip())
    except (ValueError, TypeError):
        raise _invalid(field, f"{where}is not a valid URL", "url") from None
    if url.scheme not in ("http", "https"):
        scheme = url.scheme or "none"
        raise _invalid(field, f"{where}uses scheme {scheme!r}; only http and https", "url_scheme")
    if not url.raw_host:
        raise _invalid(field, f"{where}has no host", "url")
    return url


def _trusted(url: URL, limits: InputLimits) -> bool:
    return _origin(url) in {_origin(URL(o)) for o in limits.allowed_origins}


def _refuse_disallowed(
    addresses: list[IPAddress], *, field: str, limits: InputLimits, where: str
) -> None:
    for address in addresses:
        if not address_allowed(address, allow_private_networks=limits.allow_private_networks):
            kind = classify_address(address)
            raise _invalid(
                field,
                f"{where}reaches a {kind} address; only public addresses are allowed",
                "url_policy",
            )


def check_url_host(url: URL, *, field: str, limits: InputLimits, where: str = "") -> None:
    """Refuse a URL whose host text alone breaks the policy (a refused name or IP literal).

    No lookup happens here; :func:`vetted_addresses` also vets what a name resolves to.
    """
    if _trusted(url, limits):
        return
    host = url.raw_host or ""
    literal = parse_ip(host)
    if literal is not None:
        _refuse_disallowed([literal], field=field, limits=limits, where=where)
        return
    reason = host_problem(host, allow_private_networks=limits.allow_private_networks)
    if reason is not None:
        raise _invalid(field, f"{where}{reason}", "url_policy")


async def vetted_addresses(
    url: URL, *, field: str, limits: InputLimits, resolver: HostResolver, where: str
) -> list[IPAddress]:
    """Resolve the hop's host once and return its addresses, refusing if any is not allowed."""
    check_url_host(url, field=field, limits=limits, where=where)
    host = url.raw_host or ""
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    try:
        addresses = await resolver.resolve(host, url.port or 0)
    except OSError:
        addresses = []
    if not addresses:
        raise _fetch_failed(field, f"{where}has a host that could not be resolved", "dns")
    if not _trusted(url, limits):
        _refuse_disallowed(addresses, field=field, limits=limits, where=where)
    return addresses


class PinnedResolver(AbstractResolver):
    """An aiohttp resolver that knows exactly one host and answers with its vetted addresses."""

    def __init__(self, host: str, addresses: list[IPAddress]) -> None:
        self._host = host
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"refusing to resolve {host!r}: not the vetted host")
        wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET if address.version == 4 else socket.AF_INET6,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._addresses
            if wanted is None or address.version == wanted
        ]

    async def close(self) -> None:
        return None


def pinned_session(url: URL, addresses: list[IPAddress]) -> aiohttp.ClientSession:
    """A one-hop session that can connect only to the vetted addresses of ``url``'s host."""
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(url.raw_host or "", addresses),
        use_dns_cache=False,
        family=socket.AF_UNSPEC,
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
    )


async def _download(
    text: str,
    *,
    field: str,
    limits: InputLimits,
    max_bytes: int,
    final: Path,
    resolver: HostResolver,
) -> Path:
    url = parse_url(text, field=field, where="")
    shown = redact_url(url)
    try:
        async with asyncio.timeout(limits.url_timeout_s):
            for hop in range(limits.max_redirects + 1):
                where = "" if hop == 0 else f"redirect to {redact_url(url)} "
                addresses = await vetted_addresses(
                    url, field=field, limits=limits, resolver=resolver, where=where
                )
                async with (
                    pinned_session(url, addresses) as session,
                    session.get(url, allow_redirects=False) as response,
                ):
                    if response.status in REDIRECT_STATUSES:
                        location = response.headers.get("Location", "")
                        if not location:
                            raise _fetch_failed(
                                field, f"{where}redirected without a Location", "http"
                            )
                        url = parse_url(
                            str(url.join(URL(location))), field=field, where="redirect target "
                        )
                        continue
                    if response.status != 200:
                        raise _fetch_failed(
                            field, f"{where}answered HTTP {response.status}", "http_status"
                        )
                    return await _save_body(response, field=field, max_bytes=max_bytes, final=final)
            raise _fetch_failed(
                field, f"redirected more than {limits.max_redirects} times", "redirects"
            )
    except TimeoutError:
        raise _fetch_failed(
            field, f"{shown} did not finish within {limits.url_timeout_s:g}s", "timeout"
        ) from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        reason = type(exc).__name__
        raise _fetch_failed(field, f"{shown} could not be fetched ({reason})", "fetch") from None


async def _save_body(
    response: aiohttp.ClientResponse, *, field: str, max_bytes: int, final: Path
) -> Path:
    """Stream the body to ``final``: the declared length is checked first, then every byte."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise _too_large(field, f"{declared} bytes (Content-Length)", max_bytes)
    with PartFile(final) as part:
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            if part.size + len(chunk) > max_bytes:
                raise _too_large(field, f"more than {max_bytes} bytes", max_bytes)
            part.write(chunk)
        if part.size == 0:
            raise _fetch_failed(field, "answered with an empty body", "http")
        return part.commit()
