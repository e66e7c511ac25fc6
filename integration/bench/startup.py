"""Start-up benchmark: each tool's --version and --help beside its peer's.

Runs ours and, when installed, the real tool on the same arguments in the same
run, interleaved so that both see the same machine load, and prints the median
wall time of each and the ratio ours/peer.

    .venv/bin/python integration/bench/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PAIRS = [("pallet-transfer", "skopeo"), ("pallet-run", "podman"), ("pallet-build", "buildah"), ("pallet-runtime", "crun")]
ARGUMENTS = (["--version"], ["--help"])


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def medians(ours: list[str], peer: list[str] | None, runs: int) -> tuple[float, float | None]:
    for command in (ours, peer):  # warm the page cache once
        if command:
            wall_time(command)
    ours_times, peer_times = [], []
    for _ in range(runs):
        ours_times.append(wall_time(ours))
        if peer:
            peer_times.append(wall_time(peer))
    return statistics.median(ours_times), statistics.median(peer_times) if peer_times else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"{'command':<32} {'ours ms':>8} {'peer ms':>8} {'ratio':>6}")
    for ours, peer in PAIRS:
        peer_path = shutil.which(peer)
        for arguments in ARGUMENTS:
            ours_ms, peer_ms = medians([str(BIN / ours), *arguments], [peer_path, *arguments] if peer_path else None, args.runs)
            label = f"{ours} {' '.join(arguments)}"
            if peer_ms is None:
                print(f"{label:<32} {ours_ms * 1000:8.1f} {'-':>8} {'-':>6}  ({peer} not installed)")
            else:
                print(f"{label:<32} {ours_ms * 1000:8.1f} {peer_ms * 1000:8.1f} {ours_ms / peer_ms:6.2f}  vs {peer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
