"""pytest fixtures shared by every package of the monorepo (a pytest11 plugin).

- ``registry``: the real registry on a free loopback port, plain HTTP
- ``tls_registry``: the same with TLS (a CA made by the fixture) and basic auth
- ``registry_factory``: more registries, stopped at the end of the test
- ``test_images``: the deterministic busybox images of pallet_testing.images
- ``rootless_user`` and ``rootless_tmp_path``: the unprivileged test user
- ``skopeo``, ``podman``, ``buildah``, ``crun``: the real peers' paths

A fixture whose requirement is missing skips with the reason. With
PALLET_REQUIRE_ALL=1 (set by .ci/run) it fails instead, so CI cannot pass by
skipping what it was meant to run.
"""

from __future__ import annotations

import os
import subprocess
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path

import pytest

from pallet_testing import images
from pallet_testing.registry import RegistryServer, RegistryUnavailable
from pallet_testing.users import RootlessUnavailable, RootlessUser, ensure_rootless_user


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``, or fail it when everything is required."""
    if os.environ.get("PALLET_REQUIRE_ALL") == "1":
        pytest.fail(f"required but unavailable (PALLET_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)


def _start(root: Path, **options: object) -> RegistryServer:
    try:
        return RegistryServer.start(root, **options)  # type: ignore[arg-type]
    except RegistryUnavailable as exc:
        unavailable(str(exc))
        raise


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = _start(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = _start(tmp_path_factory.mktemp("tls-registry"), tls=True, username="pallet", password=secrets.token_urlsafe(12))
    yield server
    server.stop()


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RegistryServer]]:
    started: list[RegistryServer] = []

    def start(**options: object) -> RegistryServer:
        server = _start(tmp_path / f"registry-{len(started)}", **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class TestImages:
    """The deterministic test images, built on first use."""

    __test__ = False

    @cached_property
    def single_layer(self) -> images.TestImage:
        return images.single_layer("gzip")

    @cached_property
    def single_layer_zstd(self) -> images.TestImage:
        return images.single_layer("zstd")

    @cached_property
    def single_layer_uncompressed(self) -> images.TestImage:
        return images.single_layer("none")

    @cached_property
    def multi_layer(self) -> images.TestImage:
        return images.multi_layer("gzip")

    @cached_property
    def docker_schema2(self) -> images.TestImage:
        return images.docker_schema2()

    @cached_property
    def two_platform_index(self) -> images.TestIndex:
        return images.two_platform_index()


@pytest.fixture(scope="session")
def test_images() -> TestImages:
    if not images.BUSYBOX.exists():
        unavailable(f"{images.BUSYBOX} is missing (Debian package: busybox-static)")
    return TestImages()


@pytest.fixture(scope="session")
def rootless_user() -> RootlessUser:
    try:
        return ensure_rootless_user()
    except RootlessUnavailable as exc:
        unavailable(str(exc))
        raise


@pytest.fixture
def rootless_tmp_path(rootless_user: RootlessUser) -> Iterator[Path]:
    """A temporary directory the rootless user owns (pytest's own is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pallet-rootless-"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(path, rootless_user.uid, rootless_user.gid)
    yield path
    unmount_below(path)
    shutil.rmtree(path, ignore_errors=True)


def unmount_below(path: Path) -> None:
    """Detach every mount at or below ``path`` in this mount namespace, deepest first.

    podman and buildah leave their overlay home bind-mounted on itself when
    they exit (containers/storage's driver init does it); a test's store
    under a temporary directory would otherwise keep a mount after the test.
    """
    if os.geteuid() != 0:
        return
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = [line.split()[4].encode().decode("unicode_escape") for line in mountinfo]
    below = [point for point in points if point == prefix or point.startswith(prefix + "/")]
    for point in sorted(set(below), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def _peer(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian package: {name})")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def skopeo() -> str:
    return _peer("skopeo")


@pytest.fixture(scope="session")
def podman() -> str:
    return _peer("podman")


@pytest.fixture(scope="session")
def buildah() -> str:
    return _peer("buildah")


@pytest.fixture(scope="session")
def crun() -> str:
    return _peer("crun")


# --- token auth: the registry behind a Bearer token server (pallet_testing.token_server)

from dataclasses import dataclass  # noqa: E402 - this section is appended to the fixtures above

from pallet_testing.token_server import TokenServer  # noqa: E402


@dataclass
class TokenRegistry:
    """A registry whose auth is ``auth: token`` with ``token_server`` as the issuer.

    ``username``/``password`` are accepted by the token server; anonymous
    clients may pull repositories under ``public/``.
    """

    registry: RegistryServer
    token_server: TokenServer
    username: str
    password: str

    @property
    def host(self) -> str:
        return self.registry.host


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed (Debian package: openssl)")
    root = tmp_path_factory.mktemp("token-registry")
    username, password = "pallet", secrets.token_urlsafe(12)
    token_server = TokenServer.start(root / "token-server", {username: password},
                                     refresh_tokens={"pallet-identity-" + secrets.token_hex(8): username})
    try:
        server = _start(root / "registry", auth_config=token_server.registry_auth_config())
    except BaseException:
        token_server.stop()
        raise
    yield TokenRegistry(server, token_server, username, password)
    server.stop()
    token_server.stop()


# --- a faulty proxy in front of a registry (pallet_testing.faulty_proxy)

from pallet_testing.faulty_proxy import FaultyProxy  # noqa: E402 - this section is appended to the fixtures above


@pytest.fixture
def faulty_proxy() -> Iterator[Callable[[RegistryServer], FaultyProxy]]:
    """``faulty_proxy(upstream)``: a FaultyProxy forwarding to ``upstream``, stopped at the end of the test."""
    started: list[FaultyProxy] = []

    def start(upstream: RegistryServer) -> FaultyProxy:
        proxy = FaultyProxy.start(upstream)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """At the very end of a run: end the pause processes rootless podman left for the test user.

    Rootless podman keeps a ``catatonit -P`` holding its user namespace, and
    one started by a test whose private directories are gone outlives the run.
    Under xdist only the controller does this, after every worker is done.
    """
    if hasattr(session.config, "workerinput") or os.geteuid() != 0:
        return
    from pallet_testing.users import USER_NAME

    subprocess.run(["pkill", "-KILL", "-u", USER_NAME, "-x", "catatonit"], capture_output=True, check=False)
