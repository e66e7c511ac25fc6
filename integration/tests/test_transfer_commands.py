"""pallet-transfer's commands beside the real skopeo 1.9.3 (issue 3, point 1: commands).

``inspect`` and ``list-tags`` print what skopeo prints, byte for byte;
``delete``, ``login``/``logout`` (auth.json 0600, the password never shown,
the stored credentials then used by ``copy`` and ``inspect``),
``manifest-digest``, the error contract (one ``Error:`` line, exit 2 for a
missing image, a traceback only with ``--debug``) and skopeo's Go-style
booleans. Repositories are named per test: the registry is shared by the
session.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

pytestmark = pytest.mark.interop


def one_error_line(result) -> None:
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("Error: "), result.describe()


@pytest.fixture(scope="session")
def images_in_registry(registry: RegistryServer, test_images) -> str:
    """``cmd/busybox`` (tags v1, v2), ``cmd/index`` (two platforms) and ``cmd/schema2``; returns the host."""
    push_image(registry, "cmd/busybox", test_images.single_layer, "v1")
    push_image(registry, "cmd/busybox", test_images.single_layer, "v2")
    push_image(registry, "cmd/index", test_images.two_platform_index, "v1")
    push_image(registry, "cmd/schema2", test_images.docker_schema2, "v1")
    return registry.host


# --- inspect: skopeo's output, byte for byte ------------------------------------------------------


INSPECT_CASES = [
    pytest.param((), ("docker://{host}/cmd/busybox:v1",), id="plain"),
    pytest.param((), ("docker://{host}/cmd/schema2:v1",), id="docker-schema2"),
    pytest.param((), ("docker://{host}/cmd/index:v1",), id="index-this-host"),
    pytest.param(("--override-arch", "arm64"), ("docker://{host}/cmd/index:v1",), id="index-override-arch-arm64"),
    pytest.param(("--override-arch", "arm64", "--override-variant", "v8"), ("docker://{host}/cmd/index:v1",),
                 id="index-override-arch-and-variant"),
    pytest.param((), ("--config", "docker://{host}/cmd/busybox:v1"), id="config"),
    pytest.param((), ("--config", "docker://{host}/cmd/index:v1"), id="config-of-index"),
    pytest.param(("--override-arch", "arm64"), ("--config", "docker://{host}/cmd/index:v1"), id="config-arm64"),
    pytest.param((), ("--config", "--raw", "docker://{host}/cmd/busybox:v1"), id="config-raw"),
    pytest.param((), ("--raw", "docker://{host}/cmd/index:v1"), id="raw-index"),
    pytest.param((), ("--no-tags", "docker://{host}/cmd/busybox:v1"), id="no-tags"),
    pytest.param((), ("-n", "docker://{host}/cmd/busybox:v2"), id="no-tags-short"),
    pytest.param((), ("--format", "{{.Digest}}", "docker://{host}/cmd/busybox:v1"), id="format-digest"),
    pytest.param((), ("--format", "{{.Name}} {{.Architecture}}/{{.Os}} {{len .Layers}} {{.Labels}}",
                      "docker://{host}/cmd/busybox:v1"), id="format-fields"),
    pytest.param((), ("--format", "{{range .RepoTags}}{{.}},{{end}}", "docker://{host}/cmd/busybox:v1"),
                 id="format-range"),
    pytest.param((), ("--raw=true", "docker://{host}/cmd/busybox:v1"), id="go-bool-raw-true"),
    pytest.param((), ("--raw=false", "docker://{host}/cmd/busybox:v1"), id="go-bool-raw-false"),
    pytest.param((), ("--no-tags=true", "--config=false", "docker://{host}/cmd/busybox:v1"), id="go-bool-mixed"),
]


@pytest.mark.parametrize(("global_flags", "args"), INSPECT_CASES)
def test_inspect_prints_what_skopeo_prints(global_flags: tuple[str, ...], args: tuple[str, ...], images_in_registry: str,
                                           pallet_transfer, skopeo_cli) -> None:
    argv = [*global_flags, "inspect", "--tls-verify=false", *(a.format(host=images_in_registry) for a in args)]
    theirs = skopeo_cli(*argv)
    ours = pallet_transfer(*argv)
    assert ours.out == theirs.out
    assert ours.raw == theirs.raw
    assert ours.err == ""


def test_inspect_raw_is_the_pushed_manifest(images_in_registry: str, test_images, pallet_transfer) -> None:
    for repository, image in (("cmd/busybox", test_images.single_layer), ("cmd/index", test_images.two_platform_index),
                              ("cmd/schema2", test_images.docker_schema2)):
        ours = pallet_transfer("inspect", "--raw", "--tls-verify=false", f"docker://{images_in_registry}/{repository}:v1")
        assert ours.raw == image.manifest.data


@pytest.mark.parametrize("reference", ["cmd/busybox:no-such-tag", "cmd/no-such-repo:v1"])
def test_inspect_of_a_missing_image_exits_2_with_one_line(reference: str, images_in_registry: str,
                                                          pallet_transfer, skopeo_cli) -> None:
    target = f"docker://{images_in_registry}/{reference}"
    ours = pallet_transfer("inspect", "--tls-verify=false", target, check=False)
    assert ours.returncode == 2, ours.describe()
    one_error_line(ours)
    assert ours.out == ""
    assert "manifest unknown" in ours.err
    # skopeo 1.9.3 fails too (with exit status 1: the brief asks for skopeo's documented 2)
    assert skopeo_cli("inspect", "--tls-verify=false", target, check=False).returncode != 0


# --- list-tags ------------------------------------------------------------------------------------

def test_list_tags_prints_what_skopeo_prints(registry: RegistryServer, test_images, pallet_transfer, skopeo_cli) -> None:
    tags = [f"v{n}" for n in range(1, 13)] + ["latest", "1.36.1"]
    for tag in tags:
        push_image(registry, "cmd/tags", test_images.single_layer, tag)
    target = f"docker://{registry.host}/cmd/tags"
    ours = pallet_transfer("list-tags", "--tls-verify=false", target)
    assert ours.raw == skopeo_cli("list-tags", "--tls-verify=false", target).raw
    listing = ours.json()
    assert listing["Repository"] == f"{registry.host}/cmd/tags"
    assert sorted(listing["Tags"]) == sorted(tags)


# --- delete ---------------------------------------------------------------------------------------

def test_delete_then_inspect_exits_2(registry: RegistryServer, test_images, pallet_transfer, skopeo_cli,
                                     registry_digest) -> None:
    push_image(registry, "cmd/deleted", test_images.multi_layer, "v1")
    target = f"docker://{registry.host}/cmd/deleted:v1"
    deleted = pallet_transfer("delete", "--tls-verify=false", target)
    assert deleted.out == "" and deleted.err == ""
    assert registry_digest(registry, "cmd/deleted", test_images.multi_layer.digest) is None
    after = pallet_transfer("inspect", "--tls-verify=false", target, check=False)
    assert after.returncode == 2, after.describe()
    one_error_line(after)
    assert skopeo_cli("inspect", "--tls-verify=false", target, check=False).returncode != 0


# --- login, the stored credentials, logout ---------------------------------------------------------

@pytest.fixture(scope="session")
def tls_image(tls_registry: RegistryServer, test_images) -> str:
    push_image(tls_registry, "cmd/private", test_images.single_layer, "v1")
    return f"docker://{tls_registry.host}/cmd/private:v1"


def test_login_with_a_wrong_password_writes_nothing(tls_registry: RegistryServer, tmp_path: Path, pallet_transfer) -> None:
    authfile = tmp_path / "auth.json"
    wrong = "Wr0ng-" + tls_registry.password
    result = pallet_transfer("login", "--authfile", str(authfile), "--cert-dir", str(tls_registry.cert_dir),
                             "--username", tls_registry.username, "--password", wrong, tls_registry.host, check=False)
    assert result.returncode == 1, result.describe()
    one_error_line(result)
    assert wrong not in result.out + result.err
    assert not authfile.exists()
    debug = pallet_transfer("--debug", "login", "--authfile", str(authfile), "--cert-dir", str(tls_registry.cert_dir),
                            "-u", tls_registry.username, "-p", wrong, tls_registry.host, check=False)
    assert debug.returncode != 0 and "Traceback" in debug.err
    assert wrong not in debug.out + debug.err  # not even in the traceback
    assert not authfile.exists()


def test_login_stores_credentials_used_by_copy_and_inspect(tls_image: str, tls_registry: RegistryServer, tmp_path: Path,
                                                           test_images, pallet_transfer, skopeo_cli) -> None:
    authfile = tmp_path / "auth.json"
    cert_dir = str(tls_registry.cert_dir)
    password = tls_registry.password
    outputs: list[str] = []

    login = pallet_transfer("login", "--authfile", str(authfile), "--cert-dir", cert_dir,
                            "-u", tls_registry.username, "--password-stdin", tls_registry.host,
                            input=(password + "\n").encode())
    outputs += [login.out, login.err]
    assert login.out == "Login Succeeded!\n"
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    stored = json.loads(authfile.read_text())["auths"][tls_registry.host]["auth"]
    assert base64.b64decode(stored).decode() == tls_registry.creds

    got = pallet_transfer("login", "--authfile", str(authfile), "--get-login", tls_registry.host)
    assert got.out == f"{tls_registry.username}\n"

    ours = pallet_transfer("inspect", "--authfile", str(authfile), "--cert-dir", cert_dir, tls_image)
    theirs = skopeo_cli("inspect", "--authfile", str(authfile), "--cert-dir", cert_dir, tls_image)  # skopeo reads our file
    assert ours.raw == theirs.raw
    outputs += [ours.err]
    for flag in ("--authfile", "--src-authfile"):
        layout = tmp_path / f"layout{flag}"
        copied = pallet_transfer("copy", flag, str(authfile), "--src-cert-dir", cert_dir, tls_image, f"oci:{layout}:v1")
        outputs += [copied.out, copied.err]
        assert skopeo_cli.json("inspect", f"oci:{layout}:v1")["Digest"] == test_images.single_layer.digest
    assert not any(password in text for text in outputs)


def test_credentials_from_skopeo_login_are_used(tls_image: str, tls_registry: RegistryServer, tmp_path: Path,
                                                test_images, pallet_transfer, skopeo_cli) -> None:
    authfile = tmp_path / "auth.json"
    skopeo_cli("login", "--authfile", str(authfile), "--cert-dir", str(tls_registry.cert_dir),
               "-u", tls_registry.username, "-p", tls_registry.password, tls_registry.host)
    ours = pallet_transfer.json("inspect", "--authfile", str(authfile), "--cert-dir", str(tls_registry.cert_dir), tls_image)
    assert ours["Digest"] == test_images.single_layer.digest


def test_logout_removes_the_credentials(tls_image: str, tls_registry: RegistryServer, tmp_path: Path, pallet_transfer) -> None:
    authfile = tmp_path / "auth.json"
    cert_dir = str(tls_registry.cert_dir)
    pallet_transfer("login", "--authfile", str(authfile), "--cert-dir", cert_dir,
                    "-u", tls_registry.username, "-p", tls_registry.password, tls_registry.host)
    out = pallet_transfer("logout", "--authfile", str(authfile), tls_registry.host)
    assert out.out == f"Removed login credentials for {tls_registry.host}\n"
    assert tls_registry.host not in json.loads(authfile.read_text()).get("auths", {})

    denied = pallet_transfer("inspect", "--authfile", str(authfile), "--cert-dir", cert_dir, tls_image, check=False)
    assert denied.returncode == 1, denied.describe()
    one_error_line(denied)
    assert "authentication required" in denied.err

    again = pallet_transfer("logout", "--authfile", str(authfile), tls_registry.host, check=False)
    assert again.returncode == 1, again.describe()
    one_error_line(again)
    assert f"not logged into {tls_registry.host}" in again.err


# --- manifest-digest ------------------------------------------------------------------------------

def signed_schema1_manifest() -> bytes:
    """A Docker schema1 manifest with a JWS signature in libtrust's "pretty" form.

    The key is P-256's generator point (private key 1), so no crypto library is
    needed; skopeo does not verify the signature to compute the digest, it only
    strips it: the digest is that of the payload (formatLength bytes + formatTail).
    """
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    x = bytes.fromhex("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296")
    y = bytes.fromhex("4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5")
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" + x + y
    fingerprint = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
    kid = ":".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))
    body = json.dumps({
        "schemaVersion": 1, "name": "library/busybox", "tag": "v1", "architecture": "amd64",
        "fsLayers": [{"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
        "history": [{"v1Compatibility": json.dumps({"id": "0" * 64, "created": "2023-11-14T22:13:20Z"})}],
    }, indent=3)
    head, tail = body[:-2], body[-2:]  # tail is "\n}"
    protected = b64(json.dumps({"formatLength": len(head), "formatTail": b64(tail.encode()),
                                "time": "2023-11-14T22:13:20Z"}).encode())
    signature = {"header": {"jwk": {"crv": "P-256", "kid": kid, "kty": "EC", "x": b64(x), "y": b64(y)}, "alg": "ES256"},
                 "signature": b64(b"\x01" * 64), "protected": protected}
    signatures = json.dumps([signature], indent=3).replace("\n", "\n   ")
    return (head + ',\n   "signatures": ' + signatures + tail).encode()


@pytest.mark.parametrize("name", [
    "oci-manifest", "oci-index", "docker-schema2", "compact-json",
    "signed-schema1",
])
def test_manifest_digest_is_skopeos(name: str, tmp_path: Path, test_images, pallet_transfer, skopeo_cli) -> None:
    data = {
        "oci-manifest": lambda: test_images.single_layer.manifest.data,
        "oci-index": lambda: test_images.two_platform_index.index.data,
        "docker-schema2": lambda: test_images.docker_schema2.manifest.data,
        "compact-json": lambda: json.dumps(json.loads(test_images.single_layer.manifest.data), separators=(",", ":")).encode(),
        "signed-schema1": signed_schema1_manifest,
    }[name]()
    path = tmp_path / "manifest.json"
    path.write_bytes(data)
    theirs = skopeo_cli("manifest-digest", str(path))
    whole_file = "sha256:" + hashlib.sha256(data).hexdigest() + "\n"
    assert (theirs.out == whole_file) is (name != "signed-schema1")  # skopeo strips a JWS signature
    ours = pallet_transfer("manifest-digest", str(path))
    assert ours.out == theirs.out


# --- errors: one line, or a traceback with --debug --------------------------------------------------

def test_one_stderr_line_without_debug_and_a_traceback_with_it(images_in_registry: str, pallet_transfer) -> None:
    target = f"docker://{images_in_registry}/cmd/busybox:no-such-tag"
    plain = pallet_transfer("inspect", "--tls-verify=false", target, check=False)
    one_error_line(plain)
    assert "Traceback" not in plain.err
    debug = pallet_transfer("--debug", "inspect", "--tls-verify=false", target, check=False)
    assert debug.returncode != 0
    assert "Traceback (most recent call last):" in debug.err
    assert len(debug.err_lines) > 1
    assert "manifest unknown" in debug.err_lines[-1]


def test_debug_keeps_the_exit_status(images_in_registry: str, pallet_transfer) -> None:
    target = f"docker://{images_in_registry}/cmd/busybox:no-such-tag"
    debug = pallet_transfer("--debug", "inspect", "--tls-verify=false", target, check=False)
    assert debug.returncode == 2, debug.describe()


def test_an_unreachable_registry_is_one_line(pallet_transfer, tmp_path: Path) -> None:
    from pallet_testing.registry import free_loopback_port

    result = pallet_transfer("copy", "--quiet", "--src-tls-verify=false",
                             f"docker://127.0.0.1:{free_loopback_port()}/nothing:v1", f"oci:{tmp_path / 'x'}:v1",
                             check=False)
    assert result.returncode == 1, result.describe()
    one_error_line(result)
    assert result.out == ""


# --- skopeo's Go-style booleans ---------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "works"), [
    (("--tls-verify=false",), True),
    (("--tls-verify=0",), True),
    (("--tls-verify=true",), False),
    (("--tls-verify",), False),
    (("--tls-verify=false", "--raw=true"), True),
])
def test_go_style_booleans_as_skopeo_takes_them(flags: tuple[str, ...], works: bool, images_in_registry: str,
                                                pallet_transfer, skopeo_cli) -> None:
    """A plain-HTTP registry works only with TLS verification off, for both tools alike."""
    target = f"docker://{images_in_registry}/cmd/busybox:v1"
    ours = pallet_transfer("inspect", *flags, target, check=False)
    theirs = skopeo_cli("inspect", *flags, target, check=False)
    assert (ours.returncode == 0) is works, ours.describe()
    assert (theirs.returncode == 0) is works, theirs.describe()
    if works:
        assert ours.raw == theirs.raw
    else:
        one_error_line(ours)


def test_a_bad_boolean_value_is_a_usage_error(images_in_registry: str, pallet_transfer, skopeo_cli) -> None:
    target = f"docker://{images_in_registry}/cmd/busybox:v1"
    ours = pallet_transfer("inspect", "--tls-verify=maybe", target, check=False)
    assert ours.returncode == skopeo_cli("inspect", "--tls-verify=maybe", target, check=False).returncode == 1
    one_error_line(ours)
