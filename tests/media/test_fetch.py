"""Loading raw input bytes from base64, paths and URLs, and every way that is refused."""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path

import pytest

from wan_worker.errors import WanWorkerError
from wan_worker.media import InputSource, load_input
from wan_worker.media.limits import MediaKind

from .conftest import Server
from .helpers import MapResolver, leftovers, png_bytes, small_limits

PNG = png_bytes()
PNG_B64 = base64.b64encode(PNG).decode()


def assert_refused(
    error: WanWorkerError, *, code: str, field: str, dest: Path, rule: str | None = None
) -> None:
    """The error has the expected code, names the field, and the job folder stayed empty."""
    assert error.code == code
    assert error.problems and error.problems[0].field == field
    assert str(error).startswith(f"{code}: {field} ")
    if rule is not None:
        assert error.problems[0].rule == rule
    assert leftovers(dest) == []


# ---------------------------------------------------------------------------- base64


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (PNG_B64, "image"),
        (f"data:image/png;base64,{PNG_B64}", "image"),
        (f"DATA:Image/PNG;BASE64,{PNG_B64}", "image"),
        (f"data:application/octet-stream;base64,{PNG_B64}", "image"),
        ("\n".join(PNG_B64[i : i + 76] for i in range(0, len(PNG_B64), 76)), "image"),
        (base64.urlsafe_b64encode(PNG).decode().rstrip("="), "image"),
        (f"data:audio/wav;base64,{PNG_B64}", "audio"),
        (f"data:application/ogg;base64,{PNG_B64}", "audio"),
    ],
)
async def test_base64_forms_decode_to_the_same_bytes(
    value: str, kind: MediaKind, dest: Path
) -> None:
    path = await load_input(
        InputSource("base64", value), field="f", kind=kind, limits=small_limits(), dest_dir=dest
    )
    assert path.read_bytes() == PNG
    assert path.parent == dest
    assert leftovers(dest) == [path.name]


@pytest.mark.parametrize(
    ("value", "kind", "rule"),
    [
        ("not base64 at all!", "image", "base64"),
        ("a", "image", "base64"),
        ("QUJD$RA==", "image", "base64"),
        ("====", "image", "base64"),
        ("", "image", "base64"),
        ("   \n ", "image", "base64"),
        ("data:image/png;base64", "image", "data_uri"),
        ("data:image/png,plain-text-not-base64", "image", "data_uri"),
        ("data:image/png;base64,", "image", "base64"),
        ("data:image/png;base64,%%%%", "image", "base64"),
        (f"data:text/plain;base64,{PNG_B64}", "image", "type"),
        (f"data:;base64,{PNG_B64}", "image", "type"),
        (f"data:audio/wav;base64,{PNG_B64}", "image", "type"),
        (f"data:video/mp4;base64,{PNG_B64}", "image", "type"),
        (f"data:image/png;base64,{PNG_B64}", "audio", "type"),
        ("https://example.com/cat.png", "image", "base64"),
    ],
)
async def test_malformed_base64_is_invalid_input(
    value: str, kind: MediaKind, rule: str, dest: Path
) -> None:
    with pytest.raises(WanWorkerError) as caught:
        await load_input(
            InputSource("base64", value),
            field="image_base64",
            kind=kind,
            limits=small_limits(),
            dest_dir=dest,
        )
    assert_refused(caught.value, code="invalid_input", field="image_base64", dest=dest, rule=rule)


def test_a_url_in_a_base64_field_points_to_the_url_field() -> None:
    from wan_worker.media.fetch import decode_base64

    with pytest.raises(WanWorkerError, match="send it as image_url"):
        decode_base64("http://x/a.png", field="image_base64", kind="image", limits=small_limits())


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(b"\0" * 300_000).decode(),
        "!" * 400_000,  # not even base64: proves the cap is applied before decoding
        "data:image/png;base64," + "A" * 400_000,
    ],
)
async def test_oversize_base64_is_refused_before_decoding(value: str, dest: Path) -> None:
    with pytest.raises(WanWorkerError) as caught:
        await load_input(
            InputSource("base64", value),
            field="image_base64",
            kind="image",
            limits=small_limits(),
            dest_dir=dest,
        )
    assert_refused(caught.value, code="input_too_large", field="image_base64", dest=dest)
    assert caught.value.details["max_bytes"] == 200_000


async def test_audio_base64_has_its_own_byte_cap(dest: Path) -> None:
    value = base64.b64encode(b"\0" * 300_000).decode()
    path = await load_input(
        InputSource("base64", value), field="a", kind="audio", limits=small_limits(), dest_dir=dest
    )
    assert path.stat().st_size == 300_000


def test_input_sources_do_not_print_their_payload() -> None:
    assert PNG_B64 not in repr(InputSource("base64", PNG_B64))


# ---------------------------------------------------------------------------- paths


async def load_path(value: str, dest: Path, volume: Path, **limits: object) -> Path:
    limits.setdefault("allowed_path_roots", (volume,))
    return await load_input(
        InputSource("path", value),
        field="image_path",
        kind="image",
        limits=small_limits(**limits),
        dest_dir=dest,
    )


async def test_relative_paths_are_read_from_the_first_root(dest: Path, volume: Path) -> None:
    (volume / "in").mkdir()
    (volume / "in" / "cat.png").write_bytes(PNG)
    path = await load_path("in/cat.png", dest, volume)
    assert path.read_bytes() == PNG
    assert path.parent == dest


async def test_absolute_paths_inside_any_root_are_read(
    dest: Path, volume: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-root"
    other.mkdir()
    (other / "cat.png").write_bytes(PNG)
    path = await load_path(str(other / "cat.png"), dest, volume, allowed_path_roots=(volume, other))
    assert path.read_bytes() == PNG


async def test_symlinks_that_stay_inside_the_root_are_followed(dest: Path, volume: Path) -> None:
    (volume / "real.png").write_bytes(PNG)
    (volume / "alias.png").symlink_to(volume / "real.png")
    path = await load_path("alias.png", dest, volume)
    assert path.read_bytes() == PNG


async def test_the_source_file_is_copied_not_moved(dest: Path, volume: Path) -> None:
    (volume / "cat.png").write_bytes(PNG)
    path = await load_path("cat.png", dest, volume)
    path.unlink()
    assert (volume / "cat.png").read_bytes() == PNG


def _prepare_escape(volume: Path, tmp_path: Path) -> dict[str, str]:
    """Lay out the files the path refusal cases point at; returns case name -> value."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG)
    (volume / "escape.png").symlink_to(secret)
    (volume / "escape-dir").symlink_to(tmp_path)
    (volume / "folder").mkdir()
    (volume / "big.png").write_bytes(b"\0" * 300_000)
    (volume / "loop-a").symlink_to(volume / "loop-b")
    (volume / "loop-b").symlink_to(volume / "loop-a")
    os.mkfifo(volume / "pipe")
    return {
        "traversal": "../secret.png",
        "deep traversal": "folder/../../secret.png",
        "absolute outside": str(secret),
        "symlink escape": "escape.png",
        "symlinked folder escape": "escape-dir/secret.png",
        "missing": "missing.png",
        "folder": "folder",
        "oversize": "big.png",
        "symlink loop": "loop-a",
        "fifo": "pipe",
        "nul byte": "cat\0.png",
        "empty": "",
    }


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("traversal", "invalid_input"),
        ("deep traversal", "invalid_input"),
        ("absolute outside", "invalid_input"),
        ("symlink escape", "invalid_input"),
        ("symlinked folder escape", "invalid_input"),
        ("missing", "input_fetch_failed"),
        ("folder", "invalid_input"),
        ("oversize", "input_too_large"),
        ("symlink loop", "input_fetch_failed"),
        ("fifo", "invalid_input"),
        ("nul byte", "invalid_input"),
        ("empty", "invalid_input"),
    ],
)
async def test_bad_paths_are_refused(
    case: str, code: str, dest: Path, volume: Path, tmp_path: Path
) -> None:
    value = _prepare_escape(volume, tmp_path)[case]
    with pytest.raises(WanWorkerError) as caught:
        await load_path(value, dest, volume)
    assert_refused(caught.value, code=code, field="image_path", dest=dest)


async def test_paths_are_refused_when_no_roots_are_configured(dest: Path, volume: Path) -> None:
    (volume / "cat.png").write_bytes(PNG)
    with pytest.raises(WanWorkerError) as caught:
        await load_path(str(volume / "cat.png"), dest, volume, allowed_path_roots=())
    assert_refused(caught.value, code="invalid_input", field="image_path", dest=dest)


# ---------------------------------------------------------------------------- URLs


async def fetch(
    url: str, dest: Path, resolver: MapResolver, *, kind: MediaKind = "image", **limits: object
) -> Path:
    return await load_input(
        InputSource("url", url),
        field="image_url",
        kind=kind,
        limits=small_limits(**limits),
        dest_dir=dest,
        resolver=resolver,
    )


async def test_an_allowed_origin_is_fetched(
    file_server: Server, dest: Path, resolver: MapResolver
) -> None:
    file_server.files["cat.png"] = PNG
    path = await fetch(
        file_server.url("/files/cat.png"),
        dest,
        resolver,
        allowed_origins=(file_server.origin,),
    )
    assert path.read_bytes() == PNG
    assert leftovers(dest) == [path.name]


async def test_private_networks_can_be_allowed_for_trusted_deployments(
    file_server: Server, dest: Path, resolver: MapResolver
) -> None:
    file_server.files["cat.png"] = PNG
    path = await fetch(
        file_server.url("/files/cat.png", host="loopback.test"),
        dest,
        resolver,
        allow_private_networks=True,
    )
    assert path.read_bytes() == PNG


async def test_the_connection_goes_to_the_vetted_address_without_a_second_lookup(
    file_server: Server, dest: Path, resolver: MapResolver
) -> None:
    # files.test exists only in the test resolver: the system resolver could not find it, so
    # a successful fetch proves the connection used the address vetted from one lookup.
    file_server.files["cat.png"] = PNG
    path = await fetch(
        file_server.url("/files/cat.png", host="files.test"),
        dest,
        resolver,
        allowed_origins=(f"http://files.test:{file_server.port}",),
    )
    assert path.read_bytes() == PNG
    assert resolver.asked == ["files.test"]


async def test_redirects_are_followed_up_to_the_limit(
    file_server: Server, dest: Path, resolver: MapResolver
) -> None:
    file_server.files["chain-end"] = PNG
    path = await fetch(
        file_server.url("/chain/5"), dest, resolver, allowed_origins=(file_server.origin,)
    )
    assert path.read_bytes() == PNG
    assert len(file_server.requests) == 6


SCHEME_REFUSALS = [
    "file:///etc/passwd",
    "ftp://127.0.0.1:{rec}/cat.png",
    "data:image/png;base64,AAAA",
    "gopher://127.0.0.1:{rec}/",
    "javascript:alert(1)",
    "ws://127.0.0.1:{rec}/",
    "//127.0.0.1:{rec}/cat.png",
    "127.0.0.1:{rec}/cat.png",
    "http:///cat.png",
    "http://[::1/cat.png",
]

ADDRESS_REFUSALS = [
    "http://127.0.0.1:{rec}/cat.png",
    "http://127.0.0.2:{rec}/cat.png",
    "http://[::1]:{rec}/cat.png",
    "http://[::ffff:127.0.0.1]:{rec}/cat.png",
    "http://0.0.0.0:{rec}/cat.png",
    "http://[::]:{rec}/cat.png",
    "http://10.0.0.5/cat.png",
    "http://172.16.0.1/cat.png",
    "http://192.168.1.1/cat.png",
    "http://100.64.0.1/cat.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/cat.png",
    "http://[fd12:3456::1]/cat.png",
    "http://224.0.0.1/cat.png",
    "http://255.255.255.255/cat.png",
]

NAME_REFUSALS = [
    "http://localhost:{rec}/cat.png",
    "http://LocalHost.:{rec}/cat.png",
    "http://app.localhost:{rec}/cat.png",
    "http://2130706433:{rec}/cat.png",
    "http://0x7f.1:{rec}/cat.png",
    "http://127.1:{rec}/cat.png",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://db.internal/cat.png",
]

RESOLVED_REFUSALS = [
    "http://loopback.test:{rec}/cat.png",
    "http://loopback6.test:{rec}/cat.png",
    "http://mapped.test:{rec}/cat.png",
    "http://mixed.test:{rec}/cat.png",
    "http://internal.test/cat.png",
    "http://router.test/cat.png",
    "http://corp.test/cat.png",
    "http://cgnat.test/cat.png",
    "http://ula.test/cat.png",
    "http://metadata.test/latest/meta-data/",
    "http://metadata6.test/latest/meta-data/",
    "http://linklocal.test/cat.png",
    "http://linklocal6.test/cat.png",
    "http://unspecified.test:{rec}/cat.png",
    "http://multicast.test/cat.png",
]


@pytest.mark.parametrize(
    "template", SCHEME_REFUSALS + ADDRESS_REFUSALS + NAME_REFUSALS + RESOLVED_REFUSALS
)
async def test_urls_outside_the_policy_are_refused_before_connecting(
    template: str, recorder: Server, dest: Path, resolver: MapResolver
) -> None:
    url = template.format(rec=recorder.port)
    with pytest.raises(WanWorkerError) as caught:
        await fetch(url, dest, resolver)
    assert_refused(caught.value, code="invalid_input", field="image_url", dest=dest)
    assert recorder.requests == []
    if template in NAME_REFUSALS or template in ADDRESS_REFUSALS:
        assert resolver.asked == []


@pytest.mark.parametrize(
    "template",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.test/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://0.0.0.0:{rec}/cat.png",
        "http://multicast.test/cat.png",
    ],
)
async def test_metadata_and_unroutable_addresses_stay_refused_on_trusted_deployments(
    template: str, recorder: Server, dest: Path, resolver: MapResolver
) -> None:
    url = template.format(rec=recorder.port)
    with pytest.raises(WanWorkerError) as caught:
        await fetch(url, dest, resolver, allow_private_networks=True)
    assert_refused(caught.value, code="invalid_input", field="image_url", dest=dest)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{rec}/cat.png",
        "http://loopback.test:{rec}/cat.png",
        "http://[::1]:{rec}/cat.png",
        "http://localhost:{rec}/cat.png",
        "http://internal.test/cat.png",
        "http://metadata.test/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "ftp://127.0.0.1:{rec}/cat.png",
    ],
)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_to_places_outside_the_policy_are_refused(
    *,
    target: str,
    status: int,
    file_server: Server,
    recorder: Server,
    dest: Path,
    resolver: MapResolver,
) -> None:
    # The first hop is allowed only because its exact origin is listed; the redirect is vetted.
    from urllib.parse import quote

    to = quote(target.format(rec=recorder.port), safe="")
    url = file_server.url(f"/redirect?status={status}&to={to}")
    with pytest.raises(WanWorkerError) as caught:
        await fetch(url, dest, resolver, allowed_origins=(file_server.origin,))
    assert_refused(caught.value, code="invalid_input", field="image_url", dest=dest)
    assert "redirect" in caught.value.message
    assert recorder.requests == []
    assert len(file_server.requests) == 1


async def test_a_redirect_to_another_port_of_an_allowed_host_is_vetted(
    file_server: Server, recorder: Server, dest: Path, resolver: MapResolver
) -> None:
    url = file_server.url(f"/redirect?to=http://127.0.0.1:{recorder.port}/cat.png")
    with pytest.raises(WanWorkerError) as caught:
        await fetch(url, dest, resolver, allowed_origins=(file_server.origin,))
    assert caught.value.code == "invalid_input"
    assert recorder.requests == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("path", "code", "rule"),
    [
        ("/status/404", "input_fetch_failed", "http_status"),
        ("/status/500", "input_fetch_failed", "http_status"),
        ("/status/204", "input_fetch_failed", "http_status"),
        ("/files/empty", "input_fetch_failed", "http"),
        ("/no-location", "input_fetch_failed", "http"),
        ("/chain/6", "input_fetch_failed", "redirects"),
        ("/redirect?to=/redirect%3Fto%3D/chain/9", "input_fetch_failed", "redirects"),
        ("/declared-huge", "input_too_large", "max_bytes"),
        ("/chunked-big?chunks=20", "input_too_large", "max_bytes"),
        ("/slow", "input_fetch_failed", "timeout"),
    ],
)
async def test_failed_downloads_leave_nothing_behind(
    *, path: str, code: str, rule: str, file_server: Server, dest: Path, resolver: MapResolver
) -> None:
    file_server.files["empty"] = b""
    with pytest.raises(WanWorkerError) as caught:
        await fetch(
            file_server.url(path),
            dest,
            resolver,
            allowed_origins=(file_server.origin,),
            url_timeout_s=0.5,
        )
    assert_refused(caught.value, code=code, field="image_url", dest=dest, rule=rule)


async def test_chunked_bodies_within_the_cap_are_kept(
    file_server: Server, dest: Path, resolver: MapResolver
) -> None:
    path = await fetch(
        file_server.url("/chunked-big?chunks=3"),
        dest,
        resolver,
        allowed_origins=(file_server.origin,),
    )
    assert path.stat().st_size == 3 * 65536


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://nowhere.test/cat.png", ()),
        ("http://127.0.0.1:{closed}/cat.png", ("http://127.0.0.1:{closed}",)),
    ],
)
async def test_unreachable_hosts_fail_to_fetch(
    url: str, allowed: tuple[str, ...], dest: Path, resolver: MapResolver
) -> None:
    closed = _closed_port()
    with pytest.raises(WanWorkerError) as caught:
        await fetch(
            url.format(closed=closed),
            dest,
            resolver,
            allowed_origins=tuple(a.format(closed=closed) for a in allowed),
        )
    assert_refused(caught.value, code="input_fetch_failed", field="image_url", dest=dest)


async def test_error_messages_carry_no_credentials_or_query(
    file_server: Server, dest: Path, resolver: MapResolver
) -> None:
    url = f"http://user:hunter2@127.0.0.1:{file_server.port}/slow?token=s3cret#frag"
    with pytest.raises(WanWorkerError) as caught:
        await fetch(url, dest, resolver, allowed_origins=(file_server.origin,), url_timeout_s=0.3)
    text = repr(caught.value.as_dict())
    assert f"http://127.0.0.1:{file_server.port}/slow" in text
    for secret in ("hunter2", "user", "s3cret", "token", "frag"):
        assert secret not in text


async def test_the_pinned_resolver_answers_only_for_its_vetted_host() -> None:
    import ipaddress

    from wan_worker.media.fetch import PinnedResolver

    pinned = PinnedResolver("files.test", [ipaddress.ip_address("127.0.0.1")])
    assert [r["host"] for r in await pinned.resolve("files.test", 80)] == ["127.0.0.1"]
    assert await pinned.resolve("files.test", 80, socket.AF_INET6) == []
    with pytest.raises(OSError):
        await pinned.resolve("elsewhere.test", 80)
