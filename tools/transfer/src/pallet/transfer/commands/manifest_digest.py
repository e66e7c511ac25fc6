"""pallet-transfer manifest-digest MANIFEST-FILE: print the digest of a manifest file."""

from __future__ import annotations

import argparse
from pathlib import Path

from pallet.transfer.cli.options import GlobalOptions

USAGE = "[OPTIONS] MANIFEST-FILE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest_file", metavar="MANIFEST-FILE", type=Path, help="the manifest to digest")


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """Compute a manifest digest of a file (the sha256 of its bytes, exactly as stored)."""
    from pallet.oci.manifest import manifest_digest

    manifest_file: Path = args.manifest_file
    try:
        raw = manifest_file.read_bytes()
    except OSError as exc:
        raise OSError(f"reading manifest {manifest_file}: {exc.strerror}") from exc
    print(manifest_digest(raw))
