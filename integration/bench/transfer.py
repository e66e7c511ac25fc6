"""Transfer benchmark: pallet-transfer beside skopeo on the same images and registries.

Starts loopback registries (``pallet_testing.registry.RegistryServer``, not
pytest), pushes deterministic images into a source registry, and times each
task for ours and, when installed, the real skopeo, interleaved (ours, then
skopeo, run after run) so both see the same machine load. Prints the median
wall time of each and the ratio ours/skopeo:

1. ``inspect`` of a remote image (busybox, one layer);
2. ``copy`` of a ~35 MB single-layer image registry → another registry;
3. the same into ``oci:`` and into ``dir:``;
4. ``copy`` of a 24-layer image registry → registry;
5. ``sync`` of a repository of 3 images to 2 registries: one ``sync --src
   docker --dest docker`` per destination registry, for both tools (ours
   copies the images of one sync concurrently; skopeo one after another).

Every copy goes into an empty destination: a fresh registry (or directory)
per run and per tool, and a repository name not used before, so no blob is
reused, and skopeo's blob-info cache (``/var/lib/containers/cache`` for
root) cannot turn an upload into a cross-repository mount. Starting and
removing those registries is outside the timings. Both tools run with
``--insecure-policy``, plain HTTP (``--*tls-verify=false``) and an empty
``HOME``.

    .venv/bin/python integration/bench/transfer.py [--runs 5] [--only copy-registry,sync]
    .venv/bin/python integration/bench/transfer.py --profile /tmp/prof   # + where ours spends its time

``--profile DIR`` runs ours once more per task under cProfile (every thread,
merged) after the timings, writes ``DIR/<task>.prof`` and prints the top
functions by cumulative time.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pallet_testing import images
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

BIN = Path(sys.executable).parent
OURS = str(BIN / "pallet-transfer")
MiB = 1 << 20
SOURCE_REPOSITORIES = {"inspect": "bench/busybox", "big": "bench/big", "layered": "bench/layered", "sync": "bench/sync"}
TLS_OFF = ("--src-tls-verify=false", "--dest-tls-verify=false")


# --- the images -----------------------------------------------------------------------------

def noise_layer(size: int, seed: int) -> images.Layer:
    """A layer holding one file of ``size`` pseudo-random (incompressible) bytes."""
    return images.make_layer([images.Entry(f"data-{seed}.bin", data=random.Random(seed).randbytes(size))])


def build_images() -> dict[str, list[tuple[str, images.TestImage]]]:
    """Per source repository, its (tag, image) pairs; the same bytes on every run."""
    big = images.make_image((noise_layer(35 * MiB, 35),))
    layered = images.make_image(tuple(noise_layer(256 * 1024, 100 + n) for n in range(24)))
    synced = [(tag, images.make_image((noise_layer(4 * MiB, 200 + n), noise_layer(4 * MiB, 300 + n)), labels={"tag": tag}))
              for n, tag in enumerate(("a", "b", "c"))]
    return {
        SOURCE_REPOSITORIES["inspect"]: [("v1", images.single_layer("gzip"))],
        SOURCE_REPOSITORIES["big"]: [("v1", big)],
        SOURCE_REPOSITORIES["layered"]: [("v1", layered)],
        SOURCE_REPOSITORIES["sync"]: synced,
    }


# --- running the tools ------------------------------------------------------------------------

@dataclass
class Workspace:
    """Where a run may write: a fresh temp dir; fresh registries are started on demand and stopped after."""

    root: Path
    registries: list[RegistryServer]
    counter: int = 0

    def fresh_registry(self) -> RegistryServer:
        self.counter += 1
        server = RegistryServer.start(self.root / f"registry-{self.counter}")
        self.registries.append(server)
        return server

    def fresh_path(self, name: str) -> Path:
        self.counter += 1
        return self.root / f"{name}-{self.counter}"

    def unique(self, name: str) -> str:
        self.counter += 1
        return f"{name}-{self.counter}"


@contextmanager
def workspace(parent: Path) -> Iterator[Workspace]:
    space = Workspace(Path(tempfile.mkdtemp(dir=parent, prefix="run-")), [])
    try:
        yield space
    finally:
        for server in space.registries:
            server.stop()
        shutil.rmtree(space.root, ignore_errors=True)


# A task turns (tool binary, workspace) into the command lines to time, run one after another.
Task = Callable[[str, Workspace], list[list[str]]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    label: str
    task: Task
    runs_factor: int = 1  # inspect is quick: more runs


def make_benchmarks(source: RegistryServer) -> list[Benchmark]:
    def src(key: str, tag: str = "v1") -> str:
        return f"docker://{source.host}/{SOURCE_REPOSITORIES[key]}:{tag}"

    def copy(tool: str, source_image: str, destination: str) -> list[str]:
        return [tool, "--insecure-policy", "copy", *TLS_OFF, source_image, destination]

    def inspect(tool: str, space: Workspace) -> list[list[str]]:
        return [[tool, "inspect", "--tls-verify=false", src("inspect")]]

    def copy_registry(key: str) -> Task:
        def task(tool: str, space: Workspace) -> list[list[str]]:
            destination = space.fresh_registry()
            return [copy(tool, src(key), f"docker://{destination.host}/{space.unique('copy')}/image:v1")]
        return task

    def copy_oci(tool: str, space: Workspace) -> list[list[str]]:
        return [copy(tool, src("big"), f"oci:{space.fresh_path('oci')}:v1")]

    def copy_dir(tool: str, space: Workspace) -> list[list[str]]:
        return [copy(tool, src("big"), f"dir:{space.fresh_path('dir')}")]

    def sync(tool: str, space: Workspace) -> list[list[str]]:
        repository = f"{source.host}/{SOURCE_REPOSITORIES['sync']}"
        return [[tool, "--insecure-policy", "sync", "--src", "docker", "--dest", "docker", *TLS_OFF, repository,
                 f"{space.fresh_registry().host}/{space.unique('mirror')}"] for _ in range(2)]

    return [
        Benchmark("inspect", "inspect (busybox, remote)", inspect, runs_factor=3),
        Benchmark("copy-registry", "copy 35 MB 1 layer reg→reg", copy_registry("big")),
        Benchmark("copy-oci", "copy 35 MB 1 layer reg→oci:", copy_oci),
        Benchmark("copy-dir", "copy 35 MB 1 layer reg→dir:", copy_dir),
        Benchmark("copy-layers", "copy 24 layers (6 MB) reg→reg", copy_registry("layered")),
        Benchmark("sync", "sync 3 images → 2 registries", sync),
    ]


def timed(commands: list[list[str]], home: Path) -> float:
    """Wall time of ``commands`` run one after another; a failing command ends the benchmark."""
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    start = time.perf_counter()
    for command in commands:
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        if result.returncode != 0:
            raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


def measure(benchmark: Benchmark, peer: str | None, runs: int, scratch: Path, home: Path) -> tuple[list[float], list[float]]:
    ours_times: list[float] = []
    peer_times: list[float] = []
    tools = [(OURS, ours_times)] + ([(peer, peer_times)] if peer else [])
    for run in range(runs + 1):  # the first round warms the page cache and is not counted
        for tool, times in tools:
            with workspace(scratch) as space:
                commands = benchmark.task(tool, space)
                elapsed = timed(commands, home)
            if run:
                times.append(elapsed)
    return ours_times, peer_times


# --- profiling ours ----------------------------------------------------------------------------

PROFILE_RUNNER = textwrap.dedent("""\
    import cProfile, pstats, sys, threading
    out, argv = sys.argv[1], sys.argv[2:]
    profiles = []
    thread_run = threading.Thread.run
    def profiled_run(self):
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.runcall(thread_run, self)
    threading.Thread.run = profiled_run
    main = cProfile.Profile()
    profiles.insert(0, main)
    sys.argv = ["pallet-transfer", *argv]
    from pallet.transfer.cli import main as pallet_transfer
    try:
        code = main.runcall(pallet_transfer)
    finally:
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(out)
    sys.exit(code)
""")


def profile(benchmark: Benchmark, directory: Path, scratch: Path, home: Path, top: int) -> None:
    """Run ours once under cProfile (all threads merged) and print the top functions."""
    import pstats

    with workspace(scratch) as space:
        commands = benchmark.task(OURS, space)
        for number, command in enumerate(commands):
            out = directory / f"{benchmark.name}{'-' + str(number) if len(commands) > 1 else ''}.prof"
            timed([[sys.executable, "-c", PROFILE_RUNNER, str(out), *command[1:]]], home)
            print(f"\n--- {benchmark.label}: {out} (cumulative; threads merged, so totals can exceed wall time)")
            pstats.Stats(str(out)).sort_stats("cumulative").print_stats(top)


# --- main ---------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (inspect: 3x as many)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="also profile ours once per benchmark into DIR")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile")
    args = parser.parse_args()
    peer = shutil.which("skopeo")
    scratch = Path(tempfile.mkdtemp(prefix="pallet-bench-transfer-"))
    home = scratch / "home"
    home.mkdir()
    source = RegistryServer.start(scratch / "source")
    try:
        for repository, tagged in build_images().items():
            for tag, image in tagged:
                push_image(source, repository, image, tag)
        benchmarks = make_benchmarks(source)
        wanted = {name for name in args.only.split(",") if name}
        unknown = wanted - {b.name for b in benchmarks}
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        chosen = [b for b in benchmarks if not wanted or b.name in wanted]
        print(f"{'benchmark':<32} {'ours s':>8} {'skopeo s':>9} {'ratio':>6}   (median of {args.runs} runs; inspect x3)")
        for benchmark in chosen:
            ours, theirs = measure(benchmark, peer, args.runs * benchmark.runs_factor, scratch, home)
            ours_s = statistics.median(ours)
            if theirs:
                peer_s = statistics.median(theirs)
                print(f"{benchmark.label:<32} {ours_s:8.3f} {peer_s:9.3f} {ours_s / peer_s:6.2f}", flush=True)
            else:
                print(f"{benchmark.label:<32} {ours_s:8.3f} {'-':>9} {'-':>6}  (skopeo not installed)", flush=True)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            for benchmark in chosen:
                profile(benchmark, args.profile, scratch, home, args.top)
    finally:
        source.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
