"""One worker of test_storage_concurrency.py: a seeded random sequence of store operations, logged as JSON.

    python storage_concurrency_worker.py PLAN.json INDEX

PLAN.json (written by the test) names the store (driver, graph root, run
root), the source images (OCI layouts, the name each is pulled to, its
image ID), the extra tag names, the seed, each worker's number of
operations, the barrier files and the mean pause of our workers between
operations (podman's commands are slower: ours are spread over its run). Worker INDEX is ours (pallet.oci's
copy_image into the containers-storage transport, pallet.storage's Store
for the rest), or podman's when the plan gives it the ``podman`` path.

An ``rm`` or ``mount`` planned while the worker has no container of its
own becomes a ``create``, an ``unmount`` with nothing of its own mounted a
``mount`` (so every operation works on the store; ``planned`` in the log).

A fifth of our mounts are of another worker's container (podman's too):
mount counts shared across processes and tools; unmounting one that its
owner removed meanwhile is a refusal.

After each successful operation, a worker of ours checks under the read
locks that every image's layer chain and every container's layer exist.

The worker writes ``ready-INDEX``, waits for the ``go`` file, runs its
operations and writes ``log-INDEX.json``: one entry per operation (kind,
arguments, outcome ``ok``/``refused``/``failed``, the error, times).
Expected refusals (NotFound, InUse, DuplicateName; podman's "image not
known", "in use", ...) are outcomes; anything else is ``failed``, and the
worker exits 1 after writing the log.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

KINDS = ("pull", "tag", "untag", "rmi", "create", "rm", "mount", "unmount")
WEIGHTS = (4, 3, 2, 4, 2, 3, 2, 2)  # rm above create: containers do not pin every image for long

# podman's messages for the refusals our lib raises as NotFound / InUse / DuplicateName. "layer not known"
# is c/image 5.23's own race: its commit finds the layers in one store call and creates the image in
# another, with no lock held between them, so another process's rmi can delete the chain in between
# (podman against podman does the same); "identifier is not a layer, image, or container" the same race
# when the image was there at CreateImage (ErrDuplicateID) and gone when its big data is saved.
# "please force removal": podman refuses rmi by ID of an image with more than one name.
PODMAN_REFUSALS = ("image not known", "tag not known", "in use", "no such container", "no container with name",
                   "layer not known", "identifier is not a layer, image, or container", "please force removal")


def plan_operations(seed: int, index: int, count: int, images: int, tags: int) -> list[dict[str, Any]]:
    """The worker's operations, drawn from ``seed`` and its index (the same plan replays the same list)."""
    rng = random.Random(f"{seed}/{index}")
    ops = []
    for _ in range(count):
        kind = rng.choices(KINDS, WEIGHTS)[0]
        op: dict[str, Any] = {"kind": kind, "image": rng.randrange(images), "tag": rng.randrange(tags),
                              "pick": rng.random(), "by_id": rng.random() < 0.3, "name_too": rng.random() < 0.2}
        ops.append(op)
    return ops


class Refused(Exception):
    """An expected refusal (the target is gone, in use, ...)."""


class Ours:
    """Operations through pallet.oci and pallet.storage."""

    def __init__(self, plan: dict[str, Any]) -> None:
        from pallet.oci.copy import Policy
        from pallet.oci.transports import default_transports
        from pallet.storage import errors
        from pallet.storage.config import StoreOptions
        from pallet.storage.store import Store

        self.plan = plan
        self.transports = default_transports()
        self.policy = Policy.accept_anything()
        self.store = Store.open(StoreOptions(graph_root=plan["root"], run_root=plan["run"], driver=plan["driver"]))
        self.refusals = (errors.NotFound, errors.InUse, errors.DuplicateName)

    def spec(self, name: str) -> str:
        plan = self.plan
        return f"containers-storage:[{plan['driver']}@{plan['root']}+{plan['run']}]{name}"

    def call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self.refusals as error:
            raise Refused(f"{type(error).__name__}: {error}") from error

    def pull(self, image: dict[str, str]) -> None:
        from pallet.oci.copy import copy_image

        source = self.transports.parse_image_name(f"oci:{image['layout']}:latest")
        dest = self.transports.parse_image_name(self.spec(image["name"]))
        self.call(lambda: copy_image(source, dest, policy=self.policy))

    def tag(self, target: str, tag: str) -> None:
        def run() -> None:
            with self.store.writing() as view:
                view.add_names(target, [tag])
        self.call(run)

    def untag(self, target: str, tag: str) -> None:
        def run() -> None:
            with self.store.writing() as view:
                image = view.lookup_image(target)
                if tag not in image.names:
                    raise Refused(f"{target} does not have the name {tag}")
                view.remove_names(image.id, [tag])
        self.call(run)

    def rmi(self, target: str) -> None:
        def run() -> None:
            with self.store.writing() as view:
                view.delete_image(target)
        self.call(run)

    def create(self, target: str, name: str) -> None:
        def run() -> None:
            with self.store.writing() as view:
                view.create_container(target, names=[name])
        self.call(run)

    def rm(self, name: str) -> None:
        def run() -> None:
            with self.store.writing() as view:
                view.delete_container(name)
        self.call(run)

    def check(self) -> None:
        """What must hold whenever the read locks are held: every image's layer chain and every container's
        layer are there, and each layer's parent (raises AssertionError: the worker fails)."""
        with self.store.reading() as view:
            layers = {layer.id: layer for layer in view.layers()}
            for layer in layers.values():
                assert not layer.parent or layer.parent in layers, f"layer {layer.id}: parent {layer.parent} missing"
            for image in view.images():
                assert not image.top_layer or image.top_layer in layers, f"image {image.id}: no layer {image.top_layer}"
            for container in view.containers():
                assert container.layer in layers, f"container {container.names}: no layer {container.layer}"

    def foreign_containers(self, mine: list[str]) -> list[str]:
        """The names of the other workers' containers (podman's too), sorted."""
        return sorted(name for container in self.store.containers() for name in container.names if name not in mine)

    def mount(self, name: str) -> str:
        return str(self.call(self.store.mount, name))

    def unmount(self, name: str) -> None:
        self.call(self.store.unmount, name)


class Podman:
    """The same operations with podman commands on the same store."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.argv = [plan["podman"], "--root", plan["root"], "--runroot", plan["run"], "--tmpdir",
                     os.path.join(plan["run"], "libpod"), "--storage-driver", plan["driver"]]

    def run(self, *args: str) -> str:
        done = subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            if any(text in done.stderr for text in PODMAN_REFUSALS):
                raise Refused(f"podman {args[0]} exited {done.returncode}: {done.stderr.strip()}")
            raise RuntimeError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def pull(self, image: dict[str, str]) -> None:
        self.run("pull", "--quiet", f"oci:{image['layout']}:latest")

    def tag(self, target: str, tag: str) -> None:
        self.run("tag", target, tag)

    def untag(self, target: str, tag: str) -> None:
        self.run("untag", target, tag)

    def rmi(self, target: str) -> None:
        self.run("rmi", target)

    def create(self, target: str, name: str) -> None:
        self.run("create", "--quiet", "--name", name, "--network", "none", "--pull", "never", target, "/bin/true")

    def rm(self, name: str) -> None:
        self.run("rm", name)

    def foreign_containers(self, mine: list[str]) -> list[str]:
        """None: podman mounts only its own containers (ours are not in its database)."""
        return []

    def mount(self, name: str) -> str:
        return self.run("mount", name).strip()

    def unmount(self, name: str) -> None:
        self.run("unmount", name)


def main() -> int:
    plan_path, index = Path(sys.argv[1]), int(sys.argv[2])
    plan = json.loads(plan_path.read_text())
    worker = plan["workers"][index]
    is_podman = worker["podman"]
    images, tags = plan["images"], plan["tags"]
    ops = plan_operations(plan["seed"], index, worker["operations"], len(images), len(tags))
    doer: Ours | Podman = Podman(plan) if is_podman else Ours(plan)  # imports done before the barrier
    base = Path(plan["barrier"])
    (base / f"ready-{index}").touch()
    deadline = time.monotonic() + 60
    while not (base / "go").exists():
        if time.monotonic() > deadline:
            print("no go signal within 60 s", file=sys.stderr)
            return 2
        time.sleep(0.005)

    progress = base / f"progress-{index}.jsonl"
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for the stacks of a hung worker
    prefix = f"pm{index}" if is_podman else f"w{index}"
    mine: list[str] = []       # my containers
    mounted: list[str] = []    # one entry per mount of mine not yet undone
    created = 0
    log: list[dict[str, Any]] = []
    failed = False
    pace = random.Random(f"{plan['seed']}/{index}/pace")
    for number, op in enumerate(ops):
        if not is_podman and number:  # spread over podman's (slower) run, so that the two interleave
            time.sleep(pace.uniform(0, 2 * plan["pause"]))
        kind, image = op["kind"], images[op["image"]]
        tag = tags[op["tag"]]
        target = image["id"] if op["by_id"] else image["name"]
        entry: dict[str, Any] = {"n": number, "kind": kind}
        if kind == "unmount" and not mounted:  # nothing of mine to work on: a store operation instead
            kind = "mount"
        if kind in ("rm", "mount") and not mine:
            kind = "create"
        if kind != entry["kind"]:
            entry["planned"], entry["kind"] = entry["kind"], kind
        entry["started"] = time.time()
        with progress.open("a") as out:  # where a hung worker is: the test shows this file's last line
            out.write(json.dumps({"n": number, "kind": kind, "started": entry["started"]}) + "\n")
        try:
            if kind == "pull":
                entry["args"] = [image["name"]]
                doer.pull(image)
            elif kind == "tag":
                entry["args"] = [target, tag]
                doer.tag(target, tag)
            elif kind == "untag":
                name = image["name"] if op["name_too"] else tag
                entry["args"] = [target if name == image["name"] else tag, name]
                doer.untag(entry["args"][0], name)
            elif kind == "rmi":
                entry["args"] = [target]
                doer.rmi(target)
            elif kind == "create":
                created += 1
                name = f"{prefix}-c{created}"
                entry["args"] = [target, name]
                doer.create(target, name)
                mine.append(name)
            elif kind == "rm":
                name = mine[int(op["pick"] * len(mine))]
                entry["args"] = [name]
                doer.rm(name)
                mine.remove(name)
                mounted[:] = [item for item in mounted if item != name]
            elif kind == "mount":
                foreign = doer.foreign_containers(mine) if op["name_too"] else []
                name = foreign[int(op["pick"] * len(foreign))] if foreign else mine[int(op["pick"] * len(mine))]
                entry["args"] = [name]
                entry["path"] = doer.mount(name)
                mounted.append(name)
            elif kind == "unmount":
                name = mounted[int(op["pick"] * len(mounted))]
                entry["args"] = [name]
                doer.unmount(name)
                mounted.remove(name)
            entry["outcome"] = "ok"
            if isinstance(doer, Ours):
                doer.check()
        except Refused as refusal:
            entry["outcome"], entry["error"] = "refused", str(refusal)
        except Exception as error:  # noqa: BLE001 - logged; the test fails on it
            entry["outcome"], entry["error"] = "failed", f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()
            failed = True
        entry["ended"] = time.time()
        log.append(entry)
    summary = {"index": index, "podman": is_podman, "pid": os.getpid(), "containers": mine, "mounted": mounted,
               "log": log}
    (base / f"log-{index}.json").write_text(json.dumps(summary, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
