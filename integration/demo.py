"""The offline end-to-end demo: build a small image, store it, run it, copy it.

Runs with no network. It grows with the project: each issue that lands a
piece of the build -> store -> run -> copy path puts it here.

1. build: a busybox image from the static busybox binary, with pallet.oci's
   spec types (layer tar, config, manifest; digests from the raw bytes), in
   an OCI image layout, blobs verified while they stream
2. store: pallet-transfer copies it into a containers/storage store (vfs, in
   the work directory: the format podman uses), and pallet-run lists it
3. run:   a container of the image in that store (pallet.storage: a
   read-write layer on the image, mounted), run by pallet-runtime from an
   OCI bundle (crun's default config, the image's command replaced); as an
   unprivileged user, the image is unpacked into the bundle instead and run
   in a rootless user namespace
4. copy:  pallet-transfer copies it into a second layout, recompressing the
   layer to zstd (every blob verified while it streams), and inspects it
5. peer:  when skopeo is installed, it reads our layout (interoperability)

    .venv/bin/python integration/demo.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from pallet.oci import mediatypes
from pallet.oci.digest import Digest
from pallet.oci.layout import OciLayout
from pallet.oci.manifest import ParsedConfig, ParsedManifest
from pallet.oci.platform import host_platform
from pallet.oci.spec.image import Descriptor, ExecutionConfig, History, ImageConfig, ImageManifest, RootFS

BUSYBOX = Path("/bin/busybox")
CREATED = "2024-01-01T00:00:00Z"


def busybox_layer() -> tuple[bytes, Digest]:
    """A gzip layer holding busybox and a few applet links; returns it and its diff_id."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in [("bin", tarfile.DIRTYPE), ("bin/busybox", tarfile.REGTYPE)]:
            info = tarfile.TarInfo(name)
            info.type, info.mtime, info.mode = kind, 1_704_067_200, 0o755
            if kind == tarfile.REGTYPE:
                info.size = BUSYBOX.stat().st_size
                with BUSYBOX.open("rb") as binary:
                    tar.addfile(info, binary)
            else:
                tar.addfile(info)
        for applet in ("sh", "echo", "ls", "cat"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mtime, link.mode = tarfile.SYMTYPE, "busybox", 1_704_067_200, 0o777
            tar.addfile(link)
    uncompressed = tar_bytes.getvalue()
    return gzip.compress(uncompressed, mtime=0), Digest.from_bytes(uncompressed)


def build(layout: OciLayout, ref: str) -> ParsedManifest[ImageManifest]:
    layer, diff_id = busybox_layer()
    stored_layer = layout.put_blob(layer)
    host = host_platform()  # the busybox binary is this machine's
    config = ParsedConfig.from_model(ImageConfig(
        created=CREATED, architecture=host.architecture, os=host.os, variant=host.variant or None,
        config=ExecutionConfig(env=("PATH=/bin",), cmd=("/bin/sh", "-c", "echo hello from pallet")),
        rootfs=RootFS(type="layers", diff_ids=(diff_id,)),
        history=(History(created=CREATED, created_by="pallet demo: add busybox"),),
    ))
    layout.put_blob(config.raw, config.digest)
    manifest = ParsedManifest.from_model(ImageManifest(
        schema_version=2, media_type=mediatypes.OCI_MANIFEST,
        config=config.descriptor(),
        layers=(Descriptor(media_type=mediatypes.OCI_LAYER_GZIP, digest=stored_layer.digest, size=stored_layer.size),),
    ))
    layout.put_blob(manifest.raw, manifest.digest)
    layout.add_manifest(manifest.descriptor(), ref)
    return manifest


def tool(name: str, *args: str) -> str:
    """Run the Pallet command ``name`` installed beside this Python; its stdout."""
    command = [str(Path(sys.executable).parent / name), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"Error: {name} {args[0] if args else ''}: {result.stderr.strip()}")
    return result.stdout


def bundle_config(bundle: Path, rootfs: Path, *, rootless: bool) -> None:
    """crun's default config.json (pallet-runtime spec), running ``echo`` with the image's rootfs."""
    from pallet.runtime.default_spec import default_spec

    spec = default_spec(rootless=rootless)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/echo", "hello from a pallet container"]
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["hostname"] = "pallet-demo"
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))


def run_from_store(workdir: Path, name: str) -> str:
    """As root: a container on the stored image, mounted, run by pallet-runtime; then removed."""
    from pallet.storage.config import StoreOptions
    from pallet.storage.store import Store

    store = Store.open(StoreOptions(graph_root=str(workdir / "store"), run_root=str(workdir / "run"), driver="vfs"))
    with store.writing() as view:
        container = view.create_container(name, names=["pallet-demo"])
    try:
        rootfs = Path(store.mount(container.id))
        bundle = workdir / "bundle"
        bundle.mkdir(exist_ok=True)
        bundle_config(bundle, rootfs, rootless=False)
        return tool("pallet-runtime", "--root", str(workdir / "runtime"), "run", "--bundle", str(bundle), "pallet-demo")
    finally:
        store.unmount(container.id, force=True)
        with store.writing() as view:
            view.delete_container(container.id)


def run_unpacked(workdir: Path, layout: OciLayout, manifest: ParsedManifest[ImageManifest]) -> str:
    """Unprivileged: the layer unpacked into a bundle's rootfs, run in a rootless user namespace."""
    from pallet.storage.tarengine import ApplyOptions, WhiteoutFormat, apply_layer

    bundle = workdir / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    for layer in manifest.model.layers:
        with layout.open_blob(layer.digest) as blob:
            apply_layer(blob, rootfs, options=ApplyOptions(whiteouts=WhiteoutFormat.VFS, skip_devices=True))
    bundle_config(bundle, rootfs, rootless=True)
    return tool("pallet-runtime", "--root", str(workdir / "runtime"), "run", "--bundle", str(bundle), "pallet-demo")


def main() -> int:
    parser = argparse.ArgumentParser(description="Pallet's offline end-to-end demo")
    parser.add_argument("--workdir", type=Path, help="where to write the layouts (default: a temporary directory)")
    args = parser.parse_args()
    if not BUSYBOX.exists():
        print(f"Error: demo: {BUSYBOX} is missing (Debian package: busybox-static)", file=sys.stderr)
        return 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pallet-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)

    built = OciLayout.create(workdir / "built")
    manifest = build(built, "hello")
    print(f"1. build  busybox image {manifest.digest} ({len(manifest.model.layers)} layer) in oci:{built.root}:hello")
    policy = workdir / "policy.json"  # accept anything: the demo's images are its own
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    name = "localhost/pallet/hello:latest"
    if os.geteuid() == 0:
        store = f"[vfs@{workdir / 'store'}+{workdir / 'run'}]"
        tool("pallet-transfer", "--policy", str(policy), "copy", "-q", f"oci:{built.root}:hello",
             f"containers-storage:{store}{name}")
        listed = tool("pallet-run", "--root", str(workdir / "store"), "--runroot", str(workdir / "run"),
                      "--storage-driver", "vfs", "images", "--format", "json")
        (image,) = json.loads(listed)
        print(f"2. store  containers-storage:{store}{name}  pallet-run images: {image['Names']} {image['Id'][:12]}")
        said = run_from_store(workdir, name)
        print(f"3. run    pallet-runtime ran a container of it (vfs mount of the store): {said.strip()}")
    else:
        print("2. store  (containers-storage as an unprivileged user needs /etc/subuid ranges: kept in the layout)")
        said = run_unpacked(workdir, built, manifest)
        print(f"3. run    pallet-runtime ran it rootless from an unpacked bundle: {said.strip()}")
    copied_dir = workdir / "copied"
    tool("pallet-transfer", "--policy", str(policy), "copy", "-q", "--dest-compress-format", "zstd",
                    f"oci:{built.root}:hello", f"oci:{copied_dir}:hello")
    inspected = json.loads(tool("pallet-transfer", "inspect", f"oci:{copied_dir}:hello"))
    print(f"4. copy   pallet-transfer copy -> oci:{copied_dir}:hello  {inspected['Digest']} (layer now zstd)")
    skopeo = shutil.which("skopeo")
    if skopeo:
        out = subprocess.run([skopeo, "inspect", f"oci:{copied_dir}:hello"], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"Error: skopeo inspect: {out.stderr.strip()}", file=sys.stderr)
            return 1
        inspected = json.loads(out.stdout)
        print(f"5. peer   skopeo inspect oci:...:hello -> {inspected['Digest']} {inspected['Os']}/{inspected['Architecture']}")
    else:
        print("5. peer   skopeo is not installed: interoperability check skipped")
    print(f"done: {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
