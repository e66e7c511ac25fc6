"""SIGKILL of ``pallet-transfer copy docker://… containers-storage:…`` at random points (issue 4, acceptance 3).

The pull of a four-layer image (busybox, 800 small files, 2 MiB of random
bytes, whiteouts) into a private overlay store is timed (the second of two
pulls, warm); then it is started again and SIGKILLed after a delay drawn
uniformly over that duration, 20 times. After each kill, in this order:

- every JSON file of the store parses;
- our reader opens the store and lists images and layers;
- our next write-mode open (the Store's ``writing()``, which deletes layers a
  killed process left incomplete, as c/storage's read-write load does) leaves
  no layer flagged ``incomplete``, no layer directory or tar-split without a
  record and no image on a missing layer;
- ``podman images`` on the store succeeds;
- a re-pull (in this process, through the same transports: no second Python
  start-up per point) succeeds and leaves the store's ``tmp`` empty (the
  killed pull's staging directory is removed by it).

At the end the command itself pulls once more and podman lists the image.

The image is then deleted, so that the next kill can land in layer creation.
The seed is printed in every failure; PALLET_CRASH_SEED=N replays a run.

A shorter rootless run (3 points, as the test user: the command and itself
again in the user namespace) checks that no process of a killed pull is left
and that our write-mode open (in the namespace), rootless podman and a re-pull
then work.
"""

from __future__ import annotations

import io
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet.oci.copy import CopyOptions, Policy, copy_image
from pallet.oci.transports import default_transports
from pallet.oci.transports.base import SystemContext
from pallet.storage.config import StoreOptions
from pallet.storage.errors import NotFound
from pallet.storage.store import Store
from pallet_testing import images
from pallet_testing.users import end_pause_process, make_private_home
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

pytestmark = pytest.mark.interop

PALLET_TRANSFER = str(Path(sys.executable).parent / "pallet-transfer")
POINTS = 20
NAME = "localhost/crash/image:v1"


def _layer(entries: list[tuple[str, bytes | None]]) -> images.Layer:
    """A gzip layer of directories (data None) and files, owned by 0:0."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.mtime = images.EPOCH
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return images.Layer(images.OCI_LAYER["gzip"], images.compress(raw, "gzip"), diff_id=images.sha256(raw))


def crash_image() -> images.TestImage:
    noise = random.Random(4).randbytes(2 << 20)
    many: list[tuple[str, bytes | None]] = [("data", None)]
    for d in range(20):
        many.append((f"data/d{d:02}", None))
        many += [(f"data/d{d:02}/f{f:02}.txt", f"file {d}/{f}\n".encode() * 8) for f in range(40)]
    base, _, whiteouts = images.multi_layer().layers
    return images.make_image((base, _layer(many), _layer([("blob", None), ("blob/noise.bin", noise)]), whiteouts))


class CrashStore:
    """The private store, checked from outside after each kill."""

    def __init__(self, top: Path) -> None:
        self.root = top / "root"
        self.run = top / "run"
        self.options = StoreOptions(graph_root=str(self.root), run_root=str(self.run), driver="overlay")

    @property
    def spec(self) -> str:
        return f"containers-storage:[overlay@{self.root}+{self.run}]{NAME}"

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = ["podman", "--root", str(self.root), "--runroot", str(self.run), "--tmpdir", str(self.run / "libpod"),
                "--storage-driver", "overlay", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def json_files_parse(self) -> list[str]:
        """The JSON files of the store that do not parse (empty when all do)."""
        bad = []
        for top in (self.root, self.run):
            for path in top.glob("overlay-*/*.json"):
                try:
                    json.loads(path.read_bytes())
                except ValueError as error:
                    bad.append(f"{path}: {error}")
        return bad

    def layers_on_disk(self) -> tuple[list[dict[str, Any]], set[str], set[str]]:
        """(layers.json records, layer dirs under overlay/, layer ids with a tar-split file)."""
        records = json.loads((self.root / "overlay-layers" / "layers.json").read_bytes() or b"[]") \
            if (self.root / "overlay-layers" / "layers.json").exists() else []
        dirs = {p.name for p in (self.root / "overlay").iterdir() if p.is_dir() and p.name != "l"} if (self.root / "overlay").exists() else set()
        splits = {p.name.split(".", 1)[0] for p in (self.root / "overlay-layers").glob("*.tar-split.gz")}
        return records, dirs, splits

    def delete_image(self) -> None:
        with Store.open(self.options).writing() as view:
            try:
                view.delete_image(NAME)
            except NotFound:
                pass


@pytest.fixture
def crash_store() -> Iterator[CrashStore]:
    top = Path(tempfile.mkdtemp(prefix="pallet-crash-", dir="/tmp"))  # podman wants a short run root
    yield CrashStore(top)
    for mount in [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if line.split()[4].startswith(str(top))]:
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(top, ignore_errors=True)


def _phase(store: CrashStore) -> str:
    """Where the kill landed, read from the store before anything else touches it."""
    records, _, _ = store.layers_on_disk()
    if any((r.get("flags") or {}).get("incomplete") for r in records):
        return f"layer {len(records)} being created"
    images_json = store.root / "overlay-images" / "images.json"
    if images_json.exists() and json.loads(images_json.read_bytes() or b"[]"):
        return "image written"
    if records:
        return f"{len(records)} layers done"
    return "downloading" if list((store.root / "tmp").glob("*/blob-*")) else "starting"


def _repull(registry: RegistryServer, store: CrashStore) -> None:
    transports = default_transports()
    copy_image(transports.parse_image_name(f"docker://{registry.host}/crash/image:v1"),
               transports.parse_image_name(store.spec), CopyOptions(source_context=SystemContext(tls_verify=False)),
               policy=Policy.accept_anything())


def _check_after_kill(store: CrashStore, registry: RegistryServer, image_id: str, where: str) -> None:
    assert store.json_files_parse() == [], where
    with Store.open(store.options).reading() as view:
        view.images()
        view.layers()
    with Store.open(store.options).writing() as view:
        kept = {layer.id for layer in view.layers()}
        tops = {image.top_layer for image in view.images()}
    records, dirs, splits = store.layers_on_disk()
    incomplete = [r["id"] for r in records if (r.get("flags") or {}).get("incomplete")]
    assert incomplete == [], f"{where}: layers left incomplete after our write-mode open: {incomplete}"
    recorded = {r["id"] for r in records}
    assert recorded == kept, where
    assert dirs <= recorded, f"{where}: layer dirs without a record: {sorted(dirs - recorded)}"
    assert splits <= recorded, f"{where}: tar-split files without a record: {sorted(splits - recorded)}"
    assert tops <= recorded, f"{where}: an image on a missing layer"
    listed = store.podman("images", "--format", "json")
    assert listed.returncode == 0, f"{where}: podman images: {listed.stderr}"
    try:
        _repull(registry, store)
    except Exception as error:  # noqa: BLE001 - reported with the seed
        pytest.fail(f"{where}: re-pull: {error!r}")
    with Store.open(store.options).reading() as view:
        assert view.lookup_image(NAME).id == image_id, where
    left = list((store.root / "tmp").iterdir())
    assert left == [], f"{where}: temp files left after the re-pull (the killed pull's are removed by it): {left}"


def test_sigkill_of_a_pull_at_random_points(registry: RegistryServer, podman: str, crash_store: CrashStore) -> None:
    seed = int(os.environ.get("PALLET_CRASH_SEED") or secrets.randbits(32))
    image = crash_image()
    push_image(registry, "crash/image", image, "v1")
    image_id = image.config.digest.split(":", 1)[1]
    argv = [PALLET_TRANSFER, "copy", "--quiet", "--src-tls-verify=false", f"docker://{registry.host}/crash/image:v1",
            crash_store.spec]
    durations = []
    for _ in range(2):  # the second, warm pull is the one measured (the first also compiles and caches)
        started = time.monotonic()
        pulled = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        durations.append(time.monotonic() - started)
        assert pulled.returncode == 0, pulled.stderr
        crash_store.delete_image()
    duration = durations[-1]

    rng = random.Random(seed)
    phases = []
    for point in range(POINTS):
        delay = rng.uniform(0, duration)
        where = f"seed={seed} (PALLET_CRASH_SEED to replay), point {point}, SIGKILL after {delay:.3f}s of {duration:.3f}s"
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        status = proc.wait()
        phases.append(_phase(crash_store) if status == -signal.SIGKILL else f"exited {status}")
        _check_after_kill(crash_store, registry, image_id, where)
        crash_store.delete_image()

    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)  # the command itself, once more
    assert again.returncode == 0, f"seed={seed}: {again.stderr}"
    listed = crash_store.podman("images", "--format", "json")
    assert [i["Id"] for i in json.loads(listed.stdout)] == [image_id], f"seed={seed}: {listed.stdout} {listed.stderr}"
    print(f"seed={seed} pull={duration:.3f}s phases={phases}")


ROOTLESS_POINTS = 3
ROOTLESS_CHECK = r"""
import json, sys
from pallet.storage.userns.unshare import run_in_userns

def check(root, run, uid):
    from pallet.storage.config import StoreOptions
    from pallet.storage.store import Store
    store = Store.open(StoreOptions(graph_root=root, run_root=run, driver="overlay", rootless=True, rootless_uid=uid))
    with store.reading() as view:
        view.images()
        view.layers()
    with store.writing() as view:  # our next write-mode open, in the namespace as the tool does it
        return sorted(layer.id for layer in view.layers())

print(json.dumps(run_in_userns(check, sys.argv[1], sys.argv[2], int(sys.argv[3]))))
"""


def _processes_naming(text: str) -> list[int]:
    """Pids of processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.rootless
def test_sigkill_of_a_rootless_pull_leaves_no_process_and_a_usable_store(
        registry: RegistryServer, podman: str, rootless_user: Any, rootless_tmp_path: Path) -> None:
    """The rootless pull is two processes (the command waiting, and itself again in the user namespace):
    killing the first kills the second too (PR_SET_PDEATHSIG), and the store stays usable for both tools."""
    seed = int(os.environ.get("PALLET_CRASH_SEED") or secrets.randbits(32))
    image = crash_image()
    push_image(registry, "crash/image", image, "v1")
    image_id = image.config.digest.split(":", 1)[1]
    env = rootless_user.environment(make_private_home(rootless_tmp_path, rootless_user))
    root, run = rootless_tmp_path / "root", rootless_tmp_path / "rr"
    spec = f"containers-storage:[overlay@{root}+{run}]{NAME}"
    argv = [PALLET_TRANSFER, "copy", "--quiet", "--src-tls-verify=false", f"docker://{registry.host}/crash/image:v1", spec]
    podman_argv = [podman, "--root", str(root), "--runroot", str(run), "--storage-driver", "overlay"]
    as_user = {"user": rootless_user.uid, "group": rootless_user.gid, "extra_groups": []} if os.geteuid() == 0 else {}

    def run_as_user(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, env=env, cwd=rootless_tmp_path, timeout=120, **as_user)

    try:
        started = time.monotonic()
        pulled = run_as_user(argv)
        duration = time.monotonic() - started
        assert pulled.returncode == 0, pulled.stderr
        removed = run_as_user([*podman_argv, "rmi", NAME])
        assert removed.returncode == 0, removed.stderr
        rng = random.Random(seed)
        for point in range(ROOTLESS_POINTS):
            delay = rng.uniform(0, duration)
            where = f"seed={seed} (PALLET_CRASH_SEED to replay), rootless point {point}, SIGKILL after {delay:.3f}s"
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                    cwd=rootless_tmp_path, **as_user)  # type: ignore[call-overload]
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            deadline = time.monotonic() + 5
            while _processes_naming(str(root)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _processes_naming(str(root)) == [], f"{where}: a process of the killed pull is still running"
            checked = run_as_user([sys.executable, "-c", ROOTLESS_CHECK, str(root), str(run), str(rootless_user.uid)])
            assert checked.returncode == 0, f"{where}: our write-mode open: {checked.stderr}"
            records = json.loads((root / "overlay-layers" / "layers.json").read_bytes() or b"[]")
            assert [r["id"] for r in records if (r.get("flags") or {}).get("incomplete")] == [], where
            assert sorted(r["id"] for r in records) == json.loads(checked.stdout.splitlines()[-1]), where
            listed = run_as_user([*podman_argv, "images", "--format", "json"])
            assert listed.returncode == 0, f"{where}: podman images: {listed.stderr}"
            again = run_as_user(argv)
            assert again.returncode == 0, f"{where}: re-pull: {again.stderr}"
            removed = run_as_user([*podman_argv, "rmi", NAME])  # podman finds the re-pulled image and removes it
            assert removed.returncode == 0 and image_id in removed.stdout, f"{where}: podman rmi: {removed.stderr}"
    finally:
        end_pause_process(rootless_tmp_path / "run")  # the one the test's podman started (private XDG_RUNTIME_DIR)
