"""8 processes on one store at once: 7 of ours and a real podman (issue 4, acceptance 2).

Where podman is not installed, 8 of ours, and the podman checks are left out
(under PALLET_REQUIRE_ALL=1 a missing podman fails the test instead).

Five small images share a base layer (two also share a second layer); each
is an OCI layout on disk, pulled as ``oci:LAYOUT:latest`` to the name podman
gives it (``localhost/<layout path>:latest``). 8 worker processes
(``storage_concurrency_worker.py``), started together behind a barrier, do
200 operations in all: pull, tag, untag, remove image, create and remove
container, mount and unmount; 7 through pallet.oci/pallet.storage, one with
podman commands (ours are paced over podman's slower run, so that the two
interleave). Expected refusals (not found, in use; podman's too, including
c/image's own commit race) are counted; anything else fails the test, as
does a broken invariant seen by a worker of ours under the read locks.

Afterwards, before anything else touches the store:

- every JSON file of the store parses, and ``podman images`` succeeds;
- every image's layer chain is in layers.json (with its config's diff_ids,
  in order), every container's layer and image too; no layer is orphaned
  (each is an image's top layer, a container's layer, or a parent of one);
  no layer is flagged (incomplete, or pending a container);
- each layer has its directory (overlay: and its ``l/`` link), and no layer
  directory or tar-split file is left that layers.json does not list;
- mountpoints.json lists exactly what is mounted (/proc/self/mountinfo);
- ``podman images --all --format json`` shows exactly our images (IDs and
  names).

Then everything is unmounted and removed (podman's containers by podman,
ours and the images by us), and the store must be empty with no mount left
(but the overlay home's own bind mount).

The seed is printed; PALLET_CONCURRENCY_SEED=N replays the same operation
lists (the interleaving is the scheduler's). PALLET_CONCURRENCY_OPERATIONS=N
runs N operations instead of 200 (a longer soak).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet.storage.config import StoreOptions
from pallet.storage.store import Store
from pallet_testing import images

pytestmark = pytest.mark.interop

WORKER = Path(__file__).with_name("storage_concurrency_worker.py")
OPERATIONS = int(os.environ.get("PALLET_CONCURRENCY_OPERATIONS") or 200)  # more for a longer soak
OURS = 7
TAGS = [f"localhost/cc/tag{j}:latest" for j in range(6)]


def source_images() -> list[images.TestImage]:
    """Five small images: all on one base layer; img2 also on img0's second layer; img3 is the base alone."""
    base = images.make_layer([images.Entry("etc", "dir"), images.Entry("etc/os-release", data=b"ID=pallet\n"),
                              images.Entry("bin", "dir"), images.Entry("bin/tool", data=b"#!/bin/sh\n" * 50, mode=0o755)])
    second = images.make_layer([images.Entry("srv", "dir"), images.Entry("srv/a.txt", data=b"a\n" * 100)])

    def own(k: int) -> images.Layer:
        return images.make_layer([images.Entry("srv", "dir"), images.Entry("srv/.wh.a.txt"),
                                  images.Entry(f"img{k}.txt", data=f"image {k}\n".encode() * 20)])

    return [images.make_image((base, second)), images.make_image((base, own(1))),
            images.make_image((base, second, own(2))), images.make_image((base,)),
            images.make_image((base, own(4)), labels={"k": "4"})]


@dataclass
class SharedStore:
    top: Path
    driver: str
    podman_path: str | None  # None: podman is not installed

    @property
    def root(self) -> Path:
        return self.top / "root"

    @property
    def run(self) -> Path:
        return self.top / "run"

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.podman_path is not None
        argv = [self.podman_path, "--root", str(self.root), "--runroot", str(self.run), "--tmpdir",
                str(self.run / "libpod"), "--storage-driver", self.driver, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check:
            assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
        return done

    def open(self) -> Store:
        return Store.open(StoreOptions(graph_root=str(self.root), run_root=str(self.run), driver=self.driver))

    def records(self, name: str, run: bool = False) -> list[dict[str, Any]]:
        path = (self.run if run else self.root) / name
        return json.loads(path.read_bytes() or b"[]") if path.exists() else []


def _mounts_below(top: Path) -> list[str]:
    """Mount points at or below ``top`` (/proc/self/mountinfo field 5), innermost last."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(top) or point.startswith(str(top) + "/"):
            found.append(point)
    return found


@pytest.fixture(params=["overlay", "vfs"])
def shared_store(request: pytest.FixtureRequest) -> Iterator[SharedStore]:
    if os.geteuid() != 0:
        pytest.skip("the shared store test runs as root (overlay mounts; podman's root store)")
    podman = shutil.which("podman")
    if podman is None and os.environ.get("PALLET_REQUIRE_ALL") == "1":
        pytest.fail("podman is required but not installed (PALLET_REQUIRE_ALL=1)", pytrace=False)
    top = Path("/tmp") / f"pallet-cc-{secrets.token_hex(4)}"  # short: podman refuses run roots of 50+ characters
    top.mkdir(mode=0o700)
    store = SharedStore(top, request.param, podman)
    try:
        yield store
    finally:
        if podman:
            store.podman("rm", "--all", "--force", check=False)
        for point in reversed(_mounts_below(top)):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def _run_workers(store: SharedStore, plan: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """Start every worker, open the barrier when all are ready, wait; (their logs, seconds of the run)."""
    barrier = Path(plan["barrier"])
    plan_path = barrier / "plan.json"
    plan_path.write_text(json.dumps(plan))
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(plan_path), str(index)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for index in range(len(plan["workers"]))]
    try:
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("ready-*"))) < len(procs):
            assert time.monotonic() < deadline, "workers not ready in 60 s"
            assert all(proc.poll() is None for proc in procs), [proc.communicate()[0] for proc in procs if proc.poll()]
            time.sleep(0.01)
        started = time.monotonic()
        (barrier / "go").touch()
        limit = started + 60 + OPERATIONS * (0.3 + plan["pause"])
        while time.monotonic() < limit and any(proc.poll() is None for proc in procs):
            time.sleep(0.05)
        hung = [index for index, proc in enumerate(procs) if proc.poll() is None]
        for index in hung:
            os.kill(procs[index].pid, signal.SIGUSR1)  # faulthandler: the worker's stacks on its output
        if hung:
            time.sleep(1)
            for index in hung:
                procs[index].kill()
        outputs = [proc.communicate()[0] for proc in procs]
        elapsed = time.monotonic() - started
        if hung:
            report = []
            for index in hung:
                progress = (barrier / f"progress-{index}.jsonl").read_text().splitlines()
                report.append(f"worker {index} hung in {progress[-1] if progress else 'its start'}:\n{outputs[index]}")
            pytest.fail(f"seed={plan['seed']}: workers still running after {elapsed:.0f}s:\n" + "\n".join(report))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = []
    for index, (proc, output) in enumerate(zip(procs, outputs, strict=True)):
        path = barrier / f"log-{index}.json"
        assert path.exists(), f"seed={plan['seed']}: worker {index} exited {proc.returncode} without a log:\n{output}"
        logs.append(json.loads(path.read_text()))
    return logs, elapsed


def _describe(logs: list[dict[str, Any]]) -> str:
    lines = []
    for log in logs:
        who = "podman" if log["podman"] else "ours"
        for entry in log["log"]:
            lines.append(f"w{log['index']}({who}) #{entry['n']} {entry['kind']} {entry.get('args')} -> "
                         f"{entry['outcome']} {entry.get('error', '')}".rstrip())
    return "\n".join(lines)


def _check_store(store: SharedStore, where: str) -> dict[str, int]:
    """The acceptance checks on the store as the workers left it; returns what was found."""
    root, run, driver = store.root, store.run, store.driver
    bad = []
    parsed = 0
    for top in (root, run):
        for path in sorted(top.glob(f"{driver}-*/**/*.json")):
            try:
                json.loads(path.read_bytes())
                parsed += 1
            except ValueError as error:
                bad.append(f"{path}: {error}")
    assert bad == [], f"{where}: JSON files that do not parse: {bad}"
    if store.podman_path:
        store.podman("images")

    layers = store.records(f"{driver}-layers/layers.json")
    images_ = store.records(f"{driver}-images/images.json")
    containers = store.records(f"{driver}-containers/containers.json")
    mountpoints = store.records(f"{driver}-layers/mountpoints.json", run=True)
    by_id = {layer["id"]: layer for layer in layers}
    assert len(by_id) == len(layers), f"{where}: duplicate layer IDs"
    flagged = {layer["id"]: layer["flags"] for layer in layers if layer.get("flags")}
    assert flagged == {}, f"{where}: flagged layers (incomplete or pending) left: {flagged}"

    def chain(layer_id: str, whose: str) -> list[str]:
        out = []
        while layer_id:
            assert layer_id in by_id, f"{where}: {whose}: layer {layer_id} missing from layers.json"
            out.append(layer_id)
            layer_id = by_id[layer_id].get("parent", "")
        return out

    reachable: set[str] = set()
    with store.open().reading() as view:
        configs = {image["id"]: json.loads(view.image_big_data(image["id"], "sha256:" + image["id"]))
                   for image in images_}
    for image in images_:
        layer_chain = chain(image.get("layer", ""), f"image {image['id']} {image.get('names')}")
        reachable.update(layer_chain)
        diff_ids = [by_id[layer_id].get("diff-digest") for layer_id in reversed(layer_chain)]
        assert diff_ids == configs[image["id"]]["rootfs"]["diff_ids"], \
            f"{where}: image {image['id']}: its layers' diffs are not its config's diff_ids"
        assert (root / f"{driver}-images" / image["id"] / "manifest").exists(), f"{where}: image {image['id']}: no manifest"
    image_ids = {image["id"] for image in images_}
    for container in containers:
        reachable.update(chain(container["layer"], f"container {container['id']} {container.get('names')}"))
        assert container["image"] == "" or container["image"] in image_ids, \
            f"{where}: container {container['names']} on a missing image {container['image']}"
    orphans = set(by_id) - reachable
    assert orphans == set(), f"{where}: orphaned layers: {sorted(orphans)}"

    if driver == "overlay":
        dirs = {p.name for p in (root / "overlay").iterdir() if p.is_dir() and p.name != "l"}
        for layer_id in by_id:
            assert (root / "overlay" / layer_id / "link").is_file(), f"{where}: layer {layer_id}: no link file"
            link = (root / "overlay" / layer_id / "link").read_text()
            assert (root / "overlay" / "l" / link).resolve() == (root / "overlay" / layer_id / "diff"), \
                f"{where}: layer {layer_id}: l/{link} does not lead to its diff"
        links = {p.name for p in (root / "overlay" / "l").iterdir()}
        assert len(links) == len(by_id), f"{where}: {len(links)} short links for {len(by_id)} layers"
    else:
        dirs = {p.name for p in (root / "vfs" / "dir").iterdir()} if (root / "vfs" / "dir").exists() else set()
    assert dirs == set(by_id), f"{where}: layer dirs without a record {sorted(dirs - set(by_id))}, " \
                               f"records without a dir {sorted(set(by_id) - dirs)}"
    splits = {p.name.split(".", 1)[0] for p in (root / f"{driver}-layers").glob("*.tar-split.gz")}
    assert splits <= set(by_id), f"{where}: tar-split files without a layer: {sorted(splits - set(by_id))}"

    counted = {m["id"]: m for m in mountpoints if m.get("count", 0) > 0}
    assert set(counted) <= set(by_id), f"{where}: mountpoints.json names layers that do not exist"
    if driver == "overlay":
        merged = {point.split("/")[-2] for point in _mounts_below(root / "overlay") if point.endswith("/merged")}
        assert merged == set(counted), f"{where}: mounted {sorted(merged)} but mountpoints.json counts {sorted(counted)}"
        for layer_id, entry in counted.items():
            assert entry["path"] == str(root / "overlay" / layer_id / "merged"), where

    if store.podman_path:
        # --all: without it podman hides "intermediate" images (nameless, with images on top of their top layer)
        listed = json.loads(store.podman("images", "--all", "--format", "json").stdout or "[]")
        theirs = {item["Id"]: sorted(item.get("Names") or []) for item in listed}
        ours = {image.id: sorted(image.names) for image in store.open().images()}
        assert theirs == ours, f"{where}: podman lists {theirs}, we list {ours}"
    return {"json files": parsed, "images": len(images_), "layers": len(layers), "containers": len(containers),
            "mounted layers": len(counted), "mounts": sum(m["count"] for m in counted.values())}


def _empty_the_store(store: SharedStore, where: str) -> None:
    if store.podman_path:
        store.podman("rm", "--all", "--force")  # podman's containers (ours are not in its database)
    opened = store.open()
    with opened.writing() as view:
        for container in view.containers():
            view.delete_container(container.id)  # unmounted first
        for image in view.images():
            view.delete_image(image.id)
        assert view.layers() == [], f"{where}: layers left after every image and container went"
    driver = store.driver
    for name in ("layers.json",):
        assert store.records(f"{driver}-layers/{name}") == [], where
    assert store.records(f"{driver}-images/images.json") == [], where
    assert store.records(f"{driver}-containers/containers.json") == [], where
    assert store.records(f"{driver}-layers/mountpoints.json", run=True) == [], where
    if store.podman_path:
        assert json.loads(store.podman("images", "--all", "--format", "json").stdout or "[]") == [], where
    if driver == "overlay":
        assert [p.name for p in (store.root / "overlay").iterdir() if p.is_dir() and p.name != "l"] == [], where
        assert list((store.root / "overlay" / "l").iterdir()) == [], where
    else:
        assert list((store.root / "vfs" / "dir").iterdir()) == [], where
    assert list((store.root / f"{driver}-layers").glob("*.tar-split.gz")) == [], where
    # The driver home's private bind mount (overlay) may stay (podman 4.3 leaves it after a pull, seen
    # by hand); nothing may be mounted below it.
    left = [point for point in _mounts_below(store.top) if point != str(store.root / driver)]
    assert left == [], f"{where}: mounts left: {left}"
    print(f"{where}: store emptied; mounts left: {_mounts_below(store.top) or 'none'}")


def test_eight_processes_on_one_store(shared_store: SharedStore) -> None:
    seed = int(os.environ.get("PALLET_CONCURRENCY_SEED") or secrets.randbits(32))
    where = f"seed={seed} (PALLET_CONCURRENCY_SEED to replay), driver {shared_store.driver}"
    print(where)
    top = shared_store.top
    sources = []
    for k, image in enumerate(source_images()):
        layout = images.write_oci_layout(top / "src" / f"img{k}", {"latest": image})
        sources.append({"layout": str(layout), "name": f"localhost{layout}:latest", "id": image.config.digest[7:]})
    barrier = top / "barrier"
    barrier.mkdir()
    workers = OURS + 1
    podman_index = OURS if shared_store.podman_path else None  # the last worker is podman's, where installed
    per_worker = [OPERATIONS // workers + (1 if index < OPERATIONS % workers else 0) for index in range(workers)]
    plan = {"seed": seed, "driver": shared_store.driver, "root": str(shared_store.root), "run": str(shared_store.run),
            "podman": shared_store.podman_path, "images": sources, "tags": TAGS, "barrier": str(barrier), "pause": 0.0,
            "workers": [{"podman": index == podman_index, "operations": count} for index, count in enumerate(per_worker)]}
    shared_store.open()  # the layout made once, before the race
    if podman_index is not None:
        shared_store.podman("images")  # podman's database made before the race
        started = time.monotonic()
        shared_store.podman("images")  # a command's time, measured
        podman_run = 6 * (time.monotonic() - started) * per_worker[podman_index]  # a pull or create: ~6 listings
        plan["pause"] = min(0.3, max(0.0, podman_run / max(per_worker[:OURS]) - 0.05))  # minus our own op's time
    logs, elapsed = _run_workers(shared_store, plan)

    entries = [entry for log in logs for entry in log["log"]]
    assert len(entries) == OPERATIONS
    failed = [f"w{log['index']} #{e['n']} {e['kind']} {e.get('args')}: {e['error']}\n{e.get('traceback', '')}"
              for log in logs for e in log["log"] if e["outcome"] == "failed"]
    assert failed == [], f"{where}: operations failed:\n" + "\n".join(failed) + "\n\nall operations:\n" + _describe(logs)
    outcomes = Counter(f"{entry['kind']}:{entry['outcome']}" for entry in entries)
    podman_note = "no podman"
    if podman_index is not None:
        podman_outcomes = Counter(f"{e['kind']}:{e['outcome']}" for e in logs[podman_index]["log"])
        ours_until = max(e["ended"] for log in logs[:OURS] for e in log["log"])
        overlapping = sum(1 for e in logs[podman_index]["log"] if e["started"] < ours_until)
        podman_note = f"podman's {dict(sorted(podman_outcomes.items()))} ({overlapping} started while ours ran)"
    try:
        found = _check_store(shared_store, where)
    except AssertionError as error:
        raise AssertionError(f"{error}\n\nall operations:\n{_describe(logs)}") from None
    print(f"{where}: {OPERATIONS} operations in {elapsed:.1f}s; outcomes {dict(sorted(outcomes.items()))}; "
          f"{podman_note}; store afterwards {found}")
    print(_describe(logs))
    _empty_the_store(shared_store, where)
