# Shared steps of scripts/demo and scripts/test. Sourced, not run.
# Every step is idempotent: running a script twice does no harm.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"

# What the demo needs, and what the tests add: the real registry and the
# real peers (skopeo, podman, buildah, crun) so that interop tests run.
DEMO_DEBS=(python3 python3-venv busybox-static uidmap ca-certificates)
TEST_DEBS=(docker-registry libseccomp2 gcc libc6-dev golang-github-containers-common openssl apache2-utils skopeo podman buildah crun conmon catatonit fuse-overlayfs slirp4netns git)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing Debian packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Host facts of this machine kind (a VM without systemd, cgroup v1 plus a
# cgroup2 mount holding only hugetlb), found by running the real tools.
prepare_host() {
    [ "$(id -u)" -eq 0 ] || { echo "== not root: host preparation skipped"; return 0; }
    # Root lacks CAP_SYS_RESOURCE and the hard nofile limit is 20000 here:
    # podman's default ulimits would make crun's setrlimit fail.
    mkdir -p /etc/containers/containers.conf.d
    cat > /etc/containers/containers.conf.d/50-pallet-host-limits.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
CONF
    # crun refuses hybrid cgroups while hugetlb sits on the cgroup2 mount:
    # give hugetlb its own v1 hierarchy.
    if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers \
        && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
        mkdir -p /sys/fs/cgroup/hugetlb
        mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || echo "== warning: could not mount the hugetlb hierarchy"
    fi
    # No udev: these are root-only, which breaks rootless slirp4netns and fuse.
    for dev in /dev/net/tun /dev/fuse; do [ -e "$dev" ] && chmod 0666 "$dev"; done
    chmod 1777 /dev/shm
}

make_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "== creating $VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    if [ ! -x "$VENV/bin/uv" ]; then
        "$VENV/bin/python" -m pip install -q -c "$REPO/constraints.txt" uv
    fi
}

# install_python [extra requirements...]: the six distributions, editable.
install_python() {
    make_venv
    echo "== installing the Pallet packages into $VENV"
    (cd "$REPO" && "$VENV/bin/uv" pip install --python "$VENV" -q --compile-bytecode -c constraints.txt \
        -e libs/oci -e libs/storage -e libs/runtime -e tools/run -e tools/transfer -e tools/build "$@")
    # Editable sources get no bytecode where PYTHONDONTWRITEBYTECODE is set (this machine kind
    # sets it): compile them once, or every tool start compiles them again (~10% of a command).
    (cd "$REPO" && "$VENV/bin/python" -m compileall -q -j 0 libs tools testing integration > /dev/null)
}
