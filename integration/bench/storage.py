"""Storage benchmark: pulling a Debian rootfs image into a fresh store, ours beside podman.

The image is a real Debian 12 root filesystem made with ``debootstrap
--variant=minbase bookworm`` (needs Debian's package archive, as apt does;
built once and cached under ``$PALLET_BENCH_CACHE``, default
``/var/cache/pallet-bench``), trimmed as Debian's container images are (no
apt lists, no locales), tarred in name order with numeric owners, gzip -6, as
one layer of an OCI image pushed to a loopback registry. Timed, for ours and
podman (root, overlay driver, a fresh store per run, interleaved):

1. ``pull``: registry → store. Ours: ``pallet-transfer copy docker://…
   containers-storage:[overlay@ROOT+RUNROOT]…``; podman: ``podman --root
   --runroot --storage-driver overlay pull``.
2. ``pull-local``: the same image from an ``oci:`` layout on disk (the layer
   from a local file): ``pallet-transfer copy oci:… containers-storage:…`` and
   ``podman pull oci:…``.
3. ``remove``: removing the pulled image from the store (ours through
   pallet.storage's ``Store`` in a fresh Python process; podman ``rmi``).

It also applies the layer file in-process with ``pallet.storage.tarengine``
(MB/s of uncompressed tar and files/s) and reports the peak RSS of our pull
processes (GNU time's ``%M``; Debian package ``time``).

    .venv/bin/python integration/bench/storage.py [--runs 5] [--only pull,remove]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pallet_testing.images import Layer, OCI_LAYER, make_image, write_oci_layout
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

BIN = Path(sys.executable).parent
OURS = str(BIN / "pallet-transfer")
CACHE = Path(os.environ.get("PALLET_BENCH_CACHE", "/var/cache/pallet-bench"))
REPOSITORY, TAG = "bench/debian", "12"
TRIMMED = ("var/lib/apt/lists", "var/cache/apt", "usr/share/locale")
MiB = 1 << 20


# --- the image ---------------------------------------------------------------------------------

def debian_rootfs() -> Path:
    """The debootstrapped rootfs (built once; needs root and Debian's package archive)."""
    rootfs = CACHE / "rootfs"
    done = CACHE / "rootfs.done"
    if not done.exists():
        if shutil.which("debootstrap") is None:
            raise SystemExit("debootstrap is missing: apt-get install debootstrap")
        shutil.rmtree(rootfs, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building {rootfs} with debootstrap (a minute or two)...", file=sys.stderr)
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs)], check=True,
                       stdout=subprocess.DEVNULL)
        done.touch()
    return rootfs


def layer_file() -> tuple[Path, str]:
    """The gzip layer (cached) and its diff_id."""
    layer = CACHE / "debian-layer.tar.gz"
    diff_id_file = CACHE / "debian-layer.diffid"
    if not layer.exists() or not diff_id_file.exists():
        rootfs = debian_rootfs()
        staging = CACHE / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(["cp", "-a", str(rootfs), str(staging)], check=True)
        for trimmed in TRIMMED:
            target = staging / trimmed
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        tar = subprocess.run(["tar", "--sort=name", "--numeric-owner", "--xattrs", "-C", str(staging), "-cf", "-", "."],
                             check=True, stdout=subprocess.PIPE).stdout
        shutil.rmtree(staging)
        diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
        layer.write_bytes(gzip.compress(tar, compresslevel=6, mtime=0))
        diff_id_file.write_text(diff_id)
    return layer, diff_id_file.read_text()


def tar_facts(layer: Path) -> tuple[int, int]:
    """(uncompressed bytes, entries) of the layer."""
    import tarfile

    size = 0
    entries = 0
    with gzip.open(layer) as raw:
        while chunk := raw.read(MiB):
            size += len(chunk)
    with tarfile.open(layer, "r:gz") as tar:
        for _ in tar:
            entries += 1
    return size, entries


# --- running -----------------------------------------------------------------------------------

@dataclass
class Run:
    seconds: float
    max_rss_kib: int


def run_timed(command: list[str], env: dict[str, str]) -> Run:
    """Wall time and peak RSS of ``command``. The RSS is GNU time's: a child forked from this
    (large) process would start its high-water mark at this process's size."""
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *command], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, check=False)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr.decode(errors='replace')}")
        return Run(elapsed, int(rss.read().split()[-1]))


@dataclass(frozen=True)
class Store:
    root: Path
    run_root: Path

    def spec(self) -> str:
        return f"[overlay@{self.root}+{self.run_root}]"

    def podman(self) -> list[str]:
        return ["podman", "--root", str(self.root), "--runroot", str(self.run_root), "--storage-driver", "overlay"]

    def wipe(self) -> None:
        subprocess.run(["podman", *self.podman()[1:], "system", "reset", "--force"], capture_output=True, check=False)
        for path in (self.root, self.run_root):
            subprocess.run(["umount", "-R", str(path / "overlay")], capture_output=True, check=False)
            shutil.rmtree(path, ignore_errors=True)


REMOVE_SCRIPT = (
    "import sys\n"
    "from pallet.storage.config import StoreOptions\n"
    "from pallet.storage.store import Store\n"
    "store = Store.open(StoreOptions(graph_root=sys.argv[1], run_root=sys.argv[2], driver='overlay'))\n"
    "with store.writing() as view:\n"
    "    view.delete_image(sys.argv[3])\n"
)


def tasks(registry: RegistryServer, layout: Path) -> dict[str, tuple[Callable[[Store], list[str]], Callable[[Store], list[str]], bool]]:
    """name -> (our command, podman's command, whether the image must be in the store first)."""
    remote = f"{registry.host}/{REPOSITORY}:{TAG}"
    local_name = f"localhost/{REPOSITORY}:{TAG}"
    return {
        "pull": (
            lambda s: [OURS, "--insecure-policy", "copy", "-q", "--src-tls-verify=false", f"docker://{remote}",
                       f"containers-storage:{s.spec()}{remote}"],
            lambda s: [*s.podman(), "pull", "-q", "--tls-verify=false", remote],
            False,
        ),
        "pull-local": (
            lambda s: [OURS, "--insecure-policy", "copy", "-q", f"oci:{layout}:{TAG}",
                       f"containers-storage:{s.spec()}{local_name}"],
            lambda s: [*s.podman(), "pull", "-q", f"oci:{layout}:{TAG}"],
            False,
        ),
        "remove": (
            lambda s: [sys.executable, "-c", REMOVE_SCRIPT, str(s.root), str(s.run_root), remote],
            lambda s: [*s.podman(), "rmi", remote],
            True,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated task names")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: podman's and our overlay stores need it here")
    peer = shutil.which("podman")
    layer_path, diff_id = layer_file()
    size, entries = tar_facts(layer_path)
    layer = Layer(OCI_LAYER["gzip"], layer_path.read_bytes(), diff_id=diff_id)
    image = make_image((layer,))
    print(f"image: Debian 12 minbase, one layer: {len(layer.data) / MiB:.1f} MiB gzip, "
          f"{size / MiB:.1f} MiB tar, {entries} entries")
    scratch = Path(tempfile.mkdtemp(prefix="pb-", dir="/var/tmp"))  # podman refuses run roots of 50+ characters
    registry = RegistryServer.start(scratch / "registry")
    env = {"HOME": str(scratch / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL": "C.UTF-8"}
    (scratch / "home").mkdir()
    try:
        push_image(registry, REPOSITORY, image, TAG)
        layout = scratch / "layout"
        write_oci_layout(layout, {TAG: image})
        wanted = [name for name in args.only.split(",") if name] or list(tasks(registry, layout))
        print(f"{'benchmark':<14} {'ours s':>8} {'podman s':>9} {'ratio':>6}  ours peak RSS (median of {args.runs})")
        for name in wanted:
            ours_cmd, peer_cmd, needs_image = tasks(registry, layout)[name]
            ours_runs: list[Run] = []
            peer_runs: list[Run] = []
            for round_ in range(args.runs + 1):  # round 0 warms the page cache, not counted
                for tool, command, runs in (("ours", ours_cmd, ours_runs), ("podman", peer_cmd, peer_runs)):
                    if tool == "podman" and peer is None:
                        continue
                    short = f"{name[:6]}-{tool[0]}{round_}"
                    store = Store(scratch / short, scratch / f"{short}-r")
                    try:
                        if needs_image:  # the same pull for both: what is timed is the removal
                            run_timed(tasks(registry, layout)["pull"][1 if tool == "podman" else 0](store), env)
                        result = run_timed(command(store), env)
                    finally:
                        store.wipe()
                    if round_:
                        runs.append(result)
            ours = statistics.median(r.seconds for r in ours_runs)
            theirs = statistics.median(r.seconds for r in peer_runs) if peer_runs else None
            rss = statistics.median(r.max_rss_kib for r in ours_runs) / 1024
            ratio = f"{ours / theirs:6.2f}" if theirs else "     -"
            print(f"{name:<14} {ours:8.3f} {theirs if theirs is not None else float('nan'):9.3f} {ratio}  {rss:.1f} MiB")
        apply_throughput(layer_path, scratch, size, entries)
    finally:
        registry.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def apply_throughput(layer_path: Path, scratch: Path, size: int, entries: int) -> None:
    """The tar engine alone: the layer file applied into an empty directory, in this process."""
    from pallet.storage.tarengine import apply_layer

    times = []
    for attempt in range(3):
        target = scratch / f"apply-{attempt}"
        target.mkdir()
        with open(layer_path, "rb") as source, open(scratch / f"apply-{attempt}.tar-split", "wb") as split:
            start = time.perf_counter()
            apply_layer(source, target, tar_split=split)
            times.append(time.perf_counter() - start)
        shutil.rmtree(target)
    best = statistics.median(times)
    print(f"tar engine: apply of the layer file {best:.3f} s: {size / MiB / best:.1f} MiB/s of tar, "
          f"{entries / best:.0f} entries/s (median of 3, with tar-split)")


if __name__ == "__main__":
    main()
