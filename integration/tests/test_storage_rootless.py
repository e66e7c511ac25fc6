"""containers-storage: as the unprivileged test user (and as root), beside the real podman and skopeo.

pallet-transfer, run as ``pallet-test``, runs itself again in podman's user
namespace (the user's uid -> 0, its /etc/subuid and /etc/subgid ranges -> 1..)
before touching a store, so the layer files it extracts get the owners podman
gives them. The image used has files owned by container uids 1 and 1000.

Each test runs once as the test user and once as root (explicit stores only:
root's default store is the host's), with a private HOME and XDG_RUNTIME_DIR
(so the default rootless store, podman's pause process and its pause.pid are
the test's own); the pause process is killed by its pid at the end.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet_testing import images
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer
from pallet_testing.users import RootlessUser, make_private_home, end_pause_process

pytestmark = [pytest.mark.rootless, pytest.mark.interop]

PALLET_TRANSFER = str(Path(sys.executable).parent / "pallet-transfer")
NAME = "localhost/rootless/owned:v1"


def _owned_layer() -> images.Layer:
    """A layer whose files belong to container uids/gids 0, 1 and 1000 (modes that hide them from others), and a device."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, uid, gid, mode, data in [
            ("home", tarfile.DIRTYPE, 0, 0, 0o755, b""),
            ("home/daemon", tarfile.DIRTYPE, 1, 1, 0o700, b""),
            ("home/daemon/secret", tarfile.REGTYPE, 1, 1, 0o600, b"uid 1 only\n"),
            ("srv", tarfile.DIRTYPE, 0, 0, 0o755, b""),
            ("srv/app.conf", tarfile.REGTYPE, 1000, 1000, 0o640, b"owner 1000\n"),
            ("srv/shared", tarfile.REGTYPE, 1, 1000, 0o644, b"mixed\n"),
            ("dev", tarfile.DIRTYPE, 0, 0, 0o755, b""),
            ("dev/null", tarfile.CHRTYPE, 0, 0, 0o666, b""),  # cannot be made in a user namespace: skipped
        ]:
            info = tarfile.TarInfo(path)
            info.type, info.uid, info.gid, info.mode, info.mtime = kind, uid, gid, mode, images.EPOCH
            info.devmajor, info.devminor = (1, 3) if kind == tarfile.CHRTYPE else (0, 0)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    raw = out.getvalue()
    return images.Layer(images.OCI_LAYER["gzip"], images.compress(raw, "gzip"), diff_id=images.sha256(raw))


@pytest.fixture(scope="module")
def owned_image(test_images: Any) -> images.TestImage:
    """Busybox and the owned layer; the manifest in compact JSON, as c/image writes one (so a copy back can match it)."""
    image = images.make_image((test_images.single_layer.layers[0], _owned_layer()))
    compact = json.dumps(json.loads(image.manifest.data), separators=(",", ":")).encode()
    return images.TestImage(images.Blob(image.manifest.media_type, compact), image.config, image.layers)


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, owned_image: images.TestImage) -> str:
    push_image(registry, "rootless/owned", owned_image, "v1")
    return f"{registry.host}/rootless/owned:v1"


@dataclass
class Side:
    """Who runs the tools (the test user, or root when ``user`` is None) with a private HOME and
    XDG_RUNTIME_DIR, and where the explicit stores go."""

    user: RootlessUser | None
    top: Path

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.top / "home"), "XDG_RUNTIME_DIR": str(self.top / "run")}

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        if self.user is None:
            done = subprocess.run(list(argv), env={**os.environ, **self.env}, cwd=self.top, capture_output=True,
                                  timeout=180)
        else:
            done = self.user.run(list(argv), env=self.env, cwd=self.top, timeout=180)
        if check:
            assert done.returncode == 0, f"{argv} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
        return done

    def transfer(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return self.run(PALLET_TRANSFER, *args, check=check)

    def podman(self, *args: str, store: str | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        flags: list[str] = []
        if store is not None:
            flags = ["--root", str(self.top / store), "--runroot", str(self.top / f"{store}-run"),
                     "--storage-driver", "overlay"]
            if self.user is None:  # root: keep podman's own state (else /run/libpod) private too
                flags += ["--tmpdir", str(self.top / f"{store}-run" / "libpod")]
        return self.run("podman", *flags, *args, check=check)

    @property
    def kind(self) -> str:
        return "root" if self.user is None else "rootless"

    def spec(self, store: str, name: str = NAME) -> str:
        return f"containers-storage:[overlay@{self.top / store}+{self.top / f'{store}-run'}]{name}"


@pytest.fixture(params=["rootless", "root"])
def side(request: pytest.FixtureRequest, rootless_tmp_path: Path, podman: str) -> Iterator[Side]:
    user: RootlessUser | None = None
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("the root side needs root")
    else:
        user = request.getfixturevalue("rootless_user")
    make_private_home(rootless_tmp_path, user)
    yield Side(user, rootless_tmp_path)
    end_pause_process(rootless_tmp_path / "run")  # the one the test's podman started (private XDG_RUNTIME_DIR)


def _owners(diff: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (uid, gid, mode) as the host sees the files of a layer's diff directory."""
    seen = {}
    for path in sorted(diff.rglob("*")):
        info = path.lstat()
        seen[str(path.relative_to(diff))] = (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))
    return seen


def _top_layer(graph_root: Path, image_id: str) -> str:
    (image,) = [i for i in json.loads((graph_root / "overlay-images" / "images.json").read_text()) if i["id"] == image_id]
    return str(image["layer"])


def _listed(side: Side, store: str | None) -> dict[str, Any]:
    (listed,) = json.loads(side.podman("images", "--format", "json", store=store).stdout)
    return dict(listed)


def test_copy_into_a_rootless_overlay_store_matches_podmans_own_pull(
        side: Side, pushed: str, owned_image: images.TestImage, registry: RegistryServer) -> None:
    side.transfer("copy", "--quiet", "--src-tls-verify=false", f"docker://{pushed}", side.spec("ours"))
    listed = _listed(side, "ours")
    assert listed["Id"] == owned_image.config.digest.split(":", 1)[1]
    assert listed["Digest"] == owned_image.digest
    assert listed["Names"] == [NAME]
    assert side.podman("run", "--rm", NAME, "echo", "ok", store="ours").stdout == b"ok\n"

    side.podman("pull", "--quiet", "--tls-verify=false", pushed, store="podman")
    layer_id = _top_layer(side.top / "ours", listed["Id"])
    ours = _owners(side.top / "ours" / "overlay" / layer_id / "diff")
    theirs = _owners(side.top / "podman" / "overlay" / _top_layer(side.top / "podman", listed["Id"]) / "diff")
    assert ours == theirs
    if side.user is None:  # root: the ids as they are, and the device node made
        assert (ours["home/daemon/secret"][:2], ours["srv/app.conf"][:2], ours["home"][:2]) == ((1, 1), (1000, 1000), (0, 0))
        diff = side.top / "ours" / "overlay" / layer_id / "diff"
        assert stat.S_ISCHR((diff / "dev" / "null").lstat().st_mode)
        return
    assert "dev" in ours and "dev/null" not in ours  # the device node skipped, as c/storage does in the namespace
    subuid = next(int(line.split(":")[1]) for line in Path("/etc/subuid").read_text().splitlines()
                  if line.split(":")[0] in (side.user.name, str(side.user.uid)))
    subgid = next(int(line.split(":")[1]) for line in Path("/etc/subgid").read_text().splitlines()
                  if line.split(":")[0] in (side.user.name, str(side.user.uid)))
    assert ours["home/daemon/secret"][:2] == (subuid, subgid)  # container 1 -> the first subordinate ids
    assert ours["srv/app.conf"][:2] == (subuid + 999, subgid + 999)
    assert ours["home"][:2] == (side.user.uid, side.user.gid)  # container root -> the user


@pytest.mark.parametrize("side", ["rootless"], indirect=True)  # root's default store is the host's own
def test_copy_into_the_default_rootless_store(side: Side, pushed: str, owned_image: images.TestImage) -> None:
    side.transfer("copy", "--quiet", "--src-tls-verify=false", f"docker://{pushed}", f"containers-storage:{NAME}")
    assert (side.top / "home" / ".local" / "share" / "containers" / "storage").is_dir()
    listed = _listed(side, None)
    assert (listed["Id"], listed["Digest"], listed["Names"]) == (
        owned_image.config.digest.split(":", 1)[1], owned_image.digest, [NAME])
    assert side.podman("run", "--rm", NAME, "echo", "ok").stdout == b"ok\n"
    inspected = json.loads(side.transfer("inspect", f"containers-storage:{NAME}").stdout)
    assert inspected["Name"] == NAME.rsplit(":", 1)[0]
    # the manifest as stored, as skopeo inspect shows it (the copy engine is told the layers are held uncompressed)
    assert (inspected["Digest"], inspected["Layers"]) == (owned_image.digest, [layer.digest for layer in owned_image.layers])


def test_podman_pulled_image_is_read_and_pushed_back(
        side: Side, pushed: str, owned_image: images.TestImage, registry: RegistryServer, skopeo: str) -> None:
    store = "podman" if side.user is None else None  # rootless: the default store, under the private HOME
    source = side.spec("podman", pushed) if store else f"containers-storage:{pushed}"
    side.podman("pull", "--quiet", "--tls-verify=false", pushed, store=store)
    back = f"{registry.host}/{side.kind}/back"
    side.transfer("copy", "--quiet", "--dest-tls-verify=false", source, f"docker://{back}:v1")
    side.run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", source, f"docker://{back}-skopeo:v1")
    ours = _registry_digest(registry, back.split("/", 1)[1], "v1")
    theirs = _registry_digest(registry, back.split("/", 1)[1] + "-skopeo", "v1")
    assert ours == theirs == owned_image.digest


def test_skopeo_copies_a_pallet_pulled_image_to_a_registry(
        side: Side, pushed: str, owned_image: images.TestImage, registry: RegistryServer, skopeo: str) -> None:
    side.transfer("copy", "--quiet", "--src-tls-verify=false", f"docker://{pushed}", side.spec("ours"))
    repository = f"{side.kind}/from-pallet"
    side.run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", side.spec("ours"), f"docker://{registry.host}/{repository}:v1")
    status, _, body = registry.request("GET", f"/v2/{repository}/manifests/v1", headers={"Accept": images.OCI_MANIFEST})
    assert status == 200
    assert json.loads(body)["config"]["digest"] == owned_image.config.digest


def test_without_subordinate_ids_one_clear_error(tmp_path: Path, test_images: Any) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as nobody")
    layout = images.write_oci_layout(tmp_path / "oci", {"v1": test_images.single_layer})
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    store = tmp_path / "store"
    done = subprocess.run([PALLET_TRANSFER, "copy", f"oci:{layout}:v1", f"containers-storage:[vfs@{store}+{store}-run]x:1"],
                          capture_output=True, text=True, user=65534, group=65534, extra_groups=[],
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, timeout=60)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: no subordinate ids found for user 'nobody'") and "usermod --add-subuids" in line
    assert not store.exists()


def _registry_digest(registry: RegistryServer, repository: str, tag: str) -> str:
    accept = ", ".join([images.OCI_MANIFEST, images.DOCKER_MANIFEST, images.OCI_INDEX, images.DOCKER_LIST])
    status, headers, _ = registry.request("HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
    assert status == 200, f"{repository}:{tag}: HTTP {status}"
    return str(headers["docker-content-digest"])


def _high_id_image(test_images: Any) -> images.TestImage:
    """Busybox and a file owned by uid 70000, outside a 65536-id subordinate range."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("high")
        info.uid, info.gid, info.size, info.mtime = 70000, 0, 3, images.EPOCH
        tar.addfile(info, io.BytesIO(b"hi\n"))
    raw = out.getvalue()
    layer = images.Layer(images.OCI_LAYER["gzip"], images.compress(raw, "gzip"), diff_id=images.sha256(raw))
    image = images.make_image((test_images.single_layer.layers[0], layer))
    compact = json.dumps(json.loads(image.manifest.data), separators=(",", ":")).encode()
    return images.TestImage(images.Blob(image.manifest.media_type, compact), image.config, image.layers)


@pytest.mark.parametrize("side", ["rootless"], indirect=True)  # root maps every id
def test_ids_outside_the_mapping_fail_clearly_or_are_squashed_with_ignore_chown_errors(
        side: Side, registry: RegistryServer, test_images: Any) -> None:
    ranges = [line.split(":") for line in Path("/etc/subuid").read_text().splitlines()]
    if sum(int(r[2]) for r in ranges if r[0] in (side.user.name, str(side.user.uid))) >= 70000:
        pytest.skip("the test user's ranges cover uid 70000")
    push_image(registry, "rootless/high", _high_id_image(test_images), "v1")
    source = f"docker://{registry.host}/rootless/high:v1"
    failed = side.transfer("copy", "--quiet", "--src-tls-verify=false", source, side.spec("ours", "localhost/high:v1"),
                           check=False)
    assert failed.returncode == 1
    (line,) = failed.stderr.decode().splitlines()
    assert "potentially insufficient UIDs or GIDs available in user namespace (requested 70000:0)" in line, line
    layers = json.loads((side.top / "ours" / "overlay-layers" / "layers.json").read_bytes())
    assert [r["diff-digest"] for r in layers] == [test_images.single_layer.layers[0].diff_id]  # the base stays, as in c/storage
    assert not (layers[0].get("flags") or {}).get("incomplete")
    images_json = side.top / "ours" / "overlay-images" / "images.json"
    assert not images_json.exists() or json.loads(images_json.read_bytes() or b"[]") == []

    squash = {"STORAGE_DRIVER": "overlay", "STORAGE_OPTS": "overlay.ignore_chown_errors=true"}
    squashed_env = {**side.env, **squash}
    done = side.user.run([PALLET_TRANSFER, "copy", "--quiet", "--src-tls-verify=false", source,
                          "containers-storage:localhost/high:v1"], env=squashed_env, cwd=side.top, timeout=180)
    assert done.returncode == 0, done.stderr.decode()
    listed = side.user.run(["podman", "images", "--format", "{{.Repository}}"], env=squashed_env, cwd=side.top)
    assert listed.stdout.decode().split() == ["localhost/high"], listed.stderr.decode()
    graph = side.top / "home" / ".local" / "share" / "containers" / "storage"
    (high,) = list((graph / "overlay").glob("*/diff/high"))
    assert (high.stat().st_uid, high.stat().st_gid) == (side.user.uid, side.user.gid)  # the namespace's root
