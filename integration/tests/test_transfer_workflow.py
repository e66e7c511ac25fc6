"""A skopeo user's seed script, with skopeo replaced by pallet-transfer (issue 3, point 5).

One bash script under ``set -euo pipefail``: inspect, copy registry to
registry, copy into a relative ``oci:`` path, ``copy --all`` of an index,
delete (then inspect exits 2), and a loop that copies three images into two
more registries. Afterwards every expected tag is checked for its digest
with plain HTTP, and the OCI layout with skopeo. Plus the rootless case: the
unprivileged user copies from the registry into a layout it owns.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

pytestmark = pytest.mark.interop

SEED = r"""
set -euo pipefail
T="$PALLET_TRANSFER"

# what is there?
digest=$("$T" inspect --tls-verify=false --format '{{.Digest}}' "docker://$SRC/seed/busybox:1.36")
test "$digest" = "$BUSYBOX_DIGEST"
"$T" inspect --tls-verify=false "docker://$SRC/seed/busybox:1.36" > inspect.json

# registry to registry, and into a local OCI layout (a relative path)
"$T" copy --src-tls-verify=false --dest-tls-verify=false \
    "docker://$SRC/seed/busybox:1.36" "docker://$SRC/seed/busybox-mirror:1.36"
"$T" copy --src-tls-verify=false "docker://$SRC/seed/busybox:1.36" oci:./busybox-oci:latest
test -f busybox-oci/index.json

# a multi-platform image, every platform
"$T" copy --all --src-tls-verify=false --dest-tls-verify=false \
    "docker://$SRC/seed/multi:v1" "docker://$SRC/seed/multi-mirror:v1"

# delete the mirror again; inspecting it then exits 2
"$T" delete --tls-verify=false "docker://$SRC/seed/busybox-mirror:1.36"
status=0
"$T" inspect --tls-verify=false "docker://$SRC/seed/busybox-mirror:1.36" > /dev/null 2> deleted.err || status=$?
test "$status" -eq 2
test "$(wc -l < deleted.err)" -eq 1

# seed every target registry with every image (insecure registries from registries.conf)
for image in busybox:1.36 app:2.0 tools:0.9; do
    for target in $TARGETS; do
        "$T" --registries-conf "$REGISTRIES_CONF" copy --quiet \
            "docker://$SRC/seed/$image" "docker://$target/mirror/$image"
    done
done
echo seeded
"""


@pytest.fixture
def seed_images(registry: RegistryServer, test_images) -> dict[str, str]:
    """The images the script seeds, in the session registry; name:tag -> digest."""
    images = {"busybox:1.36": test_images.single_layer, "app:2.0": test_images.multi_layer,
              "tools:0.9": test_images.docker_schema2, "multi:v1": test_images.two_platform_index}
    for name, image in images.items():
        repository, tag = name.split(":")
        push_image(registry, f"seed/{repository}", image, tag)
    return {name: image.digest for name, image in images.items()}


def test_seed_script(seed_images: dict[str, str], registry: RegistryServer, registry_factory, tmp_path: Path,
                     test_images, pallet_transfer, skopeo_cli, registry_digest) -> None:
    targets = [registry_factory(), registry_factory()]
    conf = tmp_path / "registries.conf"
    conf.write_text("".join(f'[[registry]]\nlocation = "{r.host}"\ninsecure = true\n\n' for r in (registry, *targets)))
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {**pallet_transfer.env, "PALLET_TRANSFER": pallet_transfer.path, "SRC": registry.host,
           "TARGETS": " ".join(r.host for r in targets), "REGISTRIES_CONF": str(conf),
           "BUSYBOX_DIGEST": seed_images["busybox:1.36"]}
    result = subprocess.run(["bash", "-c", SEED], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.stdout.splitlines()[-1] == "seeded"

    for target in targets:
        for name in ("busybox:1.36", "app:2.0", "tools:0.9"):
            repository, tag = name.split(":")
            assert registry_digest(target, f"mirror/{repository}", tag) == seed_images[name], (target.host, name)
    index = test_images.two_platform_index
    assert registry_digest(registry, "seed/multi-mirror", "v1") == index.digest
    for child in index.images:
        assert registry_digest(registry, "seed/multi-mirror", child.digest) == child.digest
    assert registry_digest(registry, "seed/busybox-mirror", "1.36") is None
    assert registry_digest(registry, "seed/busybox", "1.36") == seed_images["busybox:1.36"]  # the source stays
    assert skopeo_cli.json("inspect", f"oci:{workdir / 'busybox-oci'}:latest")["Digest"] == seed_images["busybox:1.36"]
    inspected = skopeo_cli("inspect", "--tls-verify=false", f"docker://{registry.host}/seed/busybox:1.36").raw
    assert (workdir / "inspect.json").read_bytes() == inspected


@pytest.mark.rootless
def test_rootless_copy_into_a_layout_the_user_owns(registry: RegistryServer, rootless_user, rootless_tmp_path: Path,
                                                   test_images, pallet_transfer, skopeo_cli) -> None:
    image = test_images.single_layer
    push_image(registry, "seed/rootless", image, "v1")
    layout = rootless_tmp_path / "layout"
    result = rootless_user.run([pallet_transfer.path, "copy", "--quiet", "--src-tls-verify=false",
                                f"docker://{registry.host}/seed/rootless:v1", f"oci:{layout}:v1"],
                               cwd=rootless_tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    paths = [layout, *layout.rglob("*")]
    assert len(paths) > 4
    assert {os.lstat(p).st_uid for p in paths} == {rootless_user.uid}
    assert {os.lstat(p).st_gid for p in paths} == {rootless_user.gid}
    seen = skopeo_cli.json("inspect", f"oci:{layout}:v1")
    assert seen["Digest"] == image.digest
    assert (layout / "blobs" / "sha256" / image.layers[0].digest.split(":")[1]).read_bytes() == image.layers[0].data
