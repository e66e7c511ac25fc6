"""Runtime benchmark: create+start+wait of a ``true`` container, pallet-runtime beside crun.

One bundle (``pallet_testing.bundles``: a busybox-static rootfs and crun's
default config, terminal off, read-write, no cgroup mount, running
``/bin/true``) is run again and again, a fresh container ID each time and
``--root`` in a temp dir, interleaved (ours, then crun, run after run) so both
see the same machine load:

1. ``crun run --bundle B ID`` and ``pallet-runtime run --bundle B ID``, each a
   new process (what conmon or a shell pays);
2. ``Runtime.at(root).run(ID, CreateOptions(bundle=B))`` in this process (the
   Python API: no interpreter start, no imports), beside the same crun runs;
3. with ``--rootless``: the same as the rootless test user
   (``pallet_testing.users``), with crun's ``spec --rootless`` config, the bundle
   owned by that user; the API runs in one child interpreter of that user.

The first run of each is a warm-up and is not counted. Prints the median wall
time of each and the ratio ours/crun (below 1: ours is faster), then where our
time goes (``--profile``, on by default; ``--no-profile`` skips it):

- ``-X importtime`` of ``pallet-runtime run``: the import total and the heaviest
  modules (cumulative);
- cProfile of one ``pallet-runtime run`` in a new interpreter: its steps (imports,
  config.json through pydantic, launch, start, wait, delete);
- cProfile of the in-process ``Runtime.run`` over the runs: the top functions by
  cumulative and by own time (the parent's side only: the forked processes are
  not profiled, their time shows as the parent waiting on them);
- ``strace -f -c`` of one run of each tool: the top system calls by time, and
  the processes each spawns (clone/fork, execve; newuidmap when rootless).

    .venv/bin/python integration/bench/runtime.py [--runs 30] [--rootless] [--no-profile] [--top 12]

Run as root. Nothing is left behind: a container still present after a run is
deleted with ``--force``, outside the timings, and the temp dir removed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pallet_testing.users import RootlessUser

BIN = Path(sys.executable).parent
OURS = str(BIN / "pallet-runtime")
ARGS = ["/bin/true"]


# --- one timed run ----------------------------------------------------------------------------

class Runner:
    """Runs one tool's ``run`` as a new process, as root or as the rootless user."""

    def __init__(self, tool: str, root: Path, bundle: Path, user: RootlessUser | None = None) -> None:
        self.tool, self.root, self.bundle, self.user = tool, root, bundle, user
        self.counter = 0

    def command(self, container_id: str) -> list[str]:
        return [self.tool, "--root", str(self.root), "run", "--bundle", str(self.bundle), container_id]

    def _spawn(self, command: list[str], as_user: bool = True) -> subprocess.CompletedProcess[bytes]:
        if self.user is None:
            return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                              env=self.user.environment(), cwd=self.user.home,
                              user=self.user.uid if as_user else None, group=self.user.gid if as_user else None,
                              extra_groups=[] if as_user else None)

    def traced(self, strace: list[str], container_id: str) -> None:
        """``run`` under strace, started as root with ``-u`` for the rootless user (newuidmap keeps its setuid bit)."""
        user = ["-u", self.user.name] if self.user is not None else []
        result = self._spawn([*strace, *user, *self.command(container_id)], as_user=False)
        self._cleanup(container_id)
        if result.returncode != 0:
            print(f"  (traced run failed: {result.stderr.decode(errors='replace').strip()[-300:]})")

    def once(self) -> float:
        self.counter += 1
        container_id = f"bench-{os.getpid()}-{self.counter}"
        start = time.perf_counter()
        result = self._spawn(self.command(container_id))
        elapsed = time.perf_counter() - start
        self._cleanup(container_id)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(self.command(container_id))}: status {result.returncode}: "
                             f"{result.stderr.decode(errors='replace').strip()}")
        return elapsed

    def _cleanup(self, container_id: str) -> None:
        if (self.root / container_id).exists():
            self._spawn([self.tool, "--root", str(self.root), "delete", "--force", container_id])


class ApiRunner:
    """``Runtime.at(root).run`` in this process."""

    def __init__(self, root: Path, bundle: Path) -> None:
        from pallet.runtime.containers import CreateOptions, Runtime
        self.runtime = Runtime.at(root)
        self.options = CreateOptions(bundle=bundle)
        self.root = root
        self.counter = 0

    def run_one(self) -> int:
        self.counter += 1
        container_id = f"api-{os.getpid()}-{self.counter}"
        status = self.runtime.run(container_id, self.options)
        if (self.root / container_id).exists():
            self.runtime.delete(container_id, force=True)
        return status

    def once(self) -> float:
        start = time.perf_counter()
        status = self.run_one()
        elapsed = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"Runtime.run: status {status}")
        return elapsed


def interleaved(timers: Sequence[Callable[[], float]], runs: int) -> list[list[float]]:
    for timer in timers:  # warm-up: page cache, the API's imports
        timer()
    times: list[list[float]] = [[] for _ in timers]
    for _ in range(runs):
        for timer, bucket in zip(timers, times):
            bucket.append(timer())
    return times


def report(label: str, ours: list[float], peer: list[float]) -> None:
    ours_ms, peer_ms = statistics.median(ours) * 1000, statistics.median(peer) * 1000
    print(f"{label:<40} {ours_ms:8.1f} {peer_ms:8.1f} {ours_ms / peer_ms:7.1f}")


# --- rootless: the API in a child interpreter of the rootless user --------------------------------

def api_worker(root: str, bundle: str, runs: int) -> int:
    """(``--api-worker``) warm up, then time ``runs`` in-process runs; print the times as JSON."""
    runner = ApiRunner(Path(root), Path(bundle))
    runner.once()
    print(json.dumps([runner.once() for _ in range(runs)]))
    return 0


# --- where the time goes ------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(runner: Runner, top: int) -> None:
    command = [sys.executable, "-X", "importtime", "-m", "pallet.runtime", *runner.command("importtime")[1:]]
    start = time.perf_counter()
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    runner._cleanup("importtime")
    rows = [(int(m[1]), int(m[2]), len(m[3]), m[4]) for m in map(IMPORT_LINE.match, result.stderr.splitlines()) if m]
    total = sum(cumulative for _, cumulative, depth, _ in rows if depth == 1)
    print(f"\n-X importtime of `pallet-runtime run` ({wall * 1000:.0f} ms wall): "
          f"{total / 1000:.0f} ms of imports, {len(rows)} modules; heaviest (cumulative ms, self ms):")
    interesting = sorted(rows, key=lambda row: -row[1])
    shown = 0
    for own, cumulative, _, name in interesting:
        if name.startswith(("pallet", "pydantic", "annotated_types", "typing", "logging", "importlib", "json")):
            print(f"  {cumulative / 1000:7.1f} {own / 1000:7.1f}  {name}")
            shown += 1
            if shown == top:
                break
    pydantic_ms = sum(own for own, _, _, name in rows if name.split(".")[0] in ("pydantic", "pydantic_core", "annotated_types"))
    oci_ms = sum(own for own, _, _, name in rows if name.startswith("pallet.oci"))
    runtime_ms = sum(own for own, _, _, name in rows if name.startswith("pallet.runtime"))
    print(f"  own time by package: pydantic* {pydantic_ms / 1000:.0f} ms, pallet.oci {oci_ms / 1000:.0f} ms "
          f"(its models built at import), pallet.runtime {runtime_ms / 1000:.0f} ms")


CLI_STEPS = (
    ("cli/main.py", "main", "main(): the whole command"),
    ("cli/commands/_create_options.py", "<module>", "  import of the run command (containers, pallet.oci.spec.runtime, pydantic)"),
    ("pallet/runtime/bundle.py", "load_bundle", "  load_bundle: config.json through pydantic"),
    ("_model_construction.py", "complete_model_class", "    of which building the deferred validators on first use"),
    ("pallet/runtime/launch.py", "launch", "  launch: fork, namespaces, mounts, until the container is created"),
    ("pallet/runtime/containers.py", "start", "  start"),
    ("pallet/runtime/containers.py", "_wait_forwarding_signals", "  waiting for /bin/true"),
    ("pallet/runtime/containers.py", "delete", "  delete"),
)


def cli_profile(runner: Runner) -> None:
    with tempfile.NamedTemporaryFile(suffix=".prof") as output:
        command = [sys.executable, "-m", "cProfile", "-o", output.name, "-m", "pallet.runtime",
                   *runner.command("cprofile")[1:]]
        start = time.perf_counter()
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        wall = time.perf_counter() - start
        runner._cleanup("cprofile")
        stats = pstats.Stats(output.name).stats  # type: ignore[attr-defined]
    print(f"\ncProfile of one `pallet-runtime run` in a new interpreter ({wall * 1000:.0f} ms wall under the profiler; "
          f"cumulative ms):")
    for file_part, function, label in CLI_STEPS:
        seconds = sum(entry[3] for (filename, _, name), entry in stats.items() if name == function and file_part in filename)
        print(f"  {seconds * 1000:7.1f}  {label}")


def api_profile(runner: ApiRunner, runs: int, top: int) -> None:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(runs):
        runner.run_one()
    profile.disable()
    for key, what in (("cumulative", "cumulative"), ("tottime", "own time")):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(key).print_stats(top)
        lines = out.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        print(f"\ncProfile of Runtime.run in-process, {runs} runs, top {top} by {what} (seconds are totals over the runs):")
        for line in lines[start:start + top + 1]:
            print("  " + _shorten(line))


def _shorten(line: str) -> str:
    return re.sub(r"\S*/site-packages/|\S*/libs/\w+/src/|\S*/lib/python3\.\d+/", "", line)


SPAWNS = ("clone", "clone3", "fork", "vfork", "execve", "mount", "pivot_root", "unshare", "setns", "wait4")


def strace_profile(runners: Sequence[tuple[str, Runner]], top: int) -> None:
    strace = shutil.which("strace")
    if strace is None:
        print("\nstrace not installed: no system-call profile")
        return
    for label, runner in runners:
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as output, \
                tempfile.NamedTemporaryFile("r", suffix=".execve") as exec_out:
            runner.traced([strace, "-f", "-c", "-o", output.name], "strace")
            runner.traced([strace, "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", exec_out.name], "strace-x")
            rows = _strace_rows(output.read())
            programs = Counter(Path(m[1]).name for m in re.finditer(r'execve\("([^"]+)".* = 0$', exec_out.read(), re.M))
        total_calls = sum(calls for _, calls, _ in rows)
        total_seconds = sum(seconds for seconds, _, _ in rows)
        print(f"\nstrace -f -c of `{label} run` (one run; {total_calls} calls, {total_seconds * 1000:.1f} ms in the kernel "
              f"as strace counts it), top {top} by time:")
        for seconds, calls, name in rows[:top]:
            print(f"  {seconds * 1000:8.2f} ms {calls:6d}  {name}")
        counts = {name: calls for _, calls, name in rows}
        print("  " + ", ".join(f"{name} {counts[name]}" for name in SPAWNS if name in counts))
        print("  programs executed: " + ", ".join(f"{name} x{n}" for name, n in programs.most_common()))


def _strace_rows(text: str) -> list[tuple[float, int, str]]:
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.fullmatch(r"[\d.]+", fields[0]) and fields[-1] != "total":
            try:
                rows.append((float(fields[1]), int(fields[3]), fields[-1]))
            except ValueError:
                continue
    return sorted(rows, reverse=True)


# --- main ---------------------------------------------------------------------------------------

def make_bundle(path: Path, owner: tuple[int, int] | None = None) -> None:
    from pallet_testing import bundles
    bundles.write_bundle(path, "true", bundles.set_field("process.args", ARGS), owner=owner)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rootless", action="store_true", help="also as the rootless test user")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--api-worker", nargs=3, metavar=("ROOT", "BUNDLE", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.api_worker:
        return api_worker(args.api_worker[0], args.api_worker[1], int(args.api_worker[2]))
    crun = shutil.which("crun")
    if os.geteuid() != 0:
        raise SystemExit("run as root (the rootless runs switch to the rootless test user)")
    if crun is None:
        raise SystemExit("crun is not installed: nothing to compare with")
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[:3]
    print(f"{os.cpu_count()} CPUs, load average {' '.join(load)} at the start; {args.runs} runs each after a warm-up")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("PYTHONDONTWRITEBYTECODE is set: modules without a .pyc already are compiled on every start of ours")
    work = Path(tempfile.mkdtemp(prefix="pallet-bench-runtime-"))
    try:
        bundle = work / "bundle"
        make_bundle(bundle)
        ours = Runner(OURS, work / "root-ours", bundle)
        peer = Runner(crun, work / "root-crun", bundle)
        api = ApiRunner(work / "root-api", bundle)
        print(f"{'create+start+wait of /bin/true':<40} {'ours ms':>8} {'crun ms':>8} {'ratio':>7}")
        cli_times, peer_times, api_times = interleaved([ours.once, peer.once, api.once], args.runs)
        report("pallet-runtime run (CLI)", cli_times, peer_times)
        report("Runtime.run (API, in-process)", api_times, peer_times)
        rootless_runners: list[tuple[str, Runner]] = []
        if args.rootless:
            rootless_runners = rootless(work, args.runs, crun)
        if args.profile:
            import_profile(ours, args.top)
            cli_profile(ours)
            api_profile(api, min(args.runs, 10), args.top)
            strace_profile([("pallet-runtime", ours), ("crun", peer), *rootless_runners], args.top)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def rootless(work: Path, runs: int, crun: str) -> list[tuple[str, Runner]]:
    from pallet_testing.users import RootlessUnavailable, ensure_rootless_user
    try:
        user = ensure_rootless_user()
    except RootlessUnavailable as error:
        print(f"rootless: skipped ({error})")
        return []
    space = work / "rootless"
    space.mkdir()
    os.chown(space, user.uid, user.gid)
    work.chmod(0o755)
    bundle = space / "bundle"
    make_bundle(bundle, owner=(user.uid, user.gid))
    for name in ("root-ours", "root-crun", "root-api"):
        (space / name).mkdir()
        os.chown(space / name, user.uid, user.gid)
    ours = Runner(OURS, space / "root-ours", bundle, user)
    peer = Runner(crun, space / "root-crun", bundle, user)
    cli_times, peer_times = interleaved([ours.once, peer.once], runs)
    report(f"rootless ({user.name}): pallet-runtime run", cli_times, peer_times)
    worker = user.run([sys.executable, __file__, "--api-worker", str(space / "root-api"), str(bundle), str(runs)],
                      timeout=600)
    if worker.returncode != 0:
        print(f"rootless Runtime.run: failed: {worker.stderr.decode(errors='replace').strip()[-500:]}")
    else:
        # not interleaved with crun: compared with the crun runs just before
        report(f"rootless ({user.name}): Runtime.run (API)", json.loads(worker.stdout), peer_times)
    return [("pallet-runtime (rootless)", ours), ("crun (rootless)", peer)]


if __name__ == "__main__":
    raise SystemExit(main())
