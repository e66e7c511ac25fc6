"""The TLS registry fixture (its own CA, htpasswd basic auth): cert dirs, credentials, failures."""

from __future__ import annotations

import io
import json
import secrets
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import CredentialsError, RegistryUnreachable, Unauthorized
from pallet.oci.registry import Credentials, RegistryClient, RegistryOptions
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer


@pytest.fixture
def tls_options(tls_registry: RegistryServer, isolated_env: dict[str, str], tmp_path: Path) -> RegistryOptions:
    assert tls_registry.username and tls_registry.password
    return RegistryOptions(cert_dir=tls_registry.cert_dir, env=isolated_env, home=tmp_path / "home",
                           credentials=Credentials(tls_registry.username, tls_registry.password))


def test_the_fixture_ca_in_cert_dir_makes_tls_work(tls_registry, tls_options, test_images) -> None:
    name = f"tls/{secrets.token_hex(4)}"
    push_image(tls_registry, name, test_images.single_layer, "v1")
    with RegistryClient(tls_registry.host, tls_options) as client:
        client.ping()
        assert client.session.base_url().scheme == "https"
        assert str(client.get_manifest(name, "v1").digest) == test_images.single_layer.digest
        data = secrets.token_bytes(70_000)
        client.push_blob(name, io.BytesIO(data), digest=Digest.from_bytes(data), size=len(data))
        with client.get_blob(name, Digest.from_bytes(data)) as stream:
            assert stream.read() == data


def test_the_per_host_certs_d_directory_is_found_under_home(tls_registry, tls_options, tmp_path) -> None:
    home = tmp_path / "home"
    certs = home / ".config" / "containers" / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    shutil.copy(tls_registry.cert_dir / "ca.crt", certs / "ca.crt")
    with RegistryClient(tls_registry.host, replace(tls_options, cert_dir=None)) as client:
        client.ping()


def test_without_the_ca_verification_fails_for_good_with_an_x509_message(tls_registry, tls_options) -> None:
    with RegistryClient(tls_registry.host, replace(tls_options, cert_dir=None)) as client:
        with pytest.raises(RegistryUnreachable) as caught:
            client.ping()
    assert caught.value.temporary is False
    message = str(caught.value)
    assert message.startswith(f"pinging container registry {tls_registry.host}: x509: certificate signed by unknown authority")
    assert "cert" in message and tls_registry.password not in message


def test_tls_verify_false_reaches_the_registry_without_its_ca(tls_registry, tls_options) -> None:
    with RegistryClient(tls_registry.host, replace(tls_options, cert_dir=None, tls_verify=False)) as client:
        client.ping()
        assert client.session.base_url().scheme == "https"


def test_a_wrong_password_is_unauthorized_and_never_shown(tls_registry, tls_options) -> None:
    wrong = "not-the-password-" + secrets.token_hex(6)
    with RegistryClient(tls_registry.host, replace(tls_options, credentials=Credentials("pallet", wrong))) as client:
        with pytest.raises(Unauthorized) as caught:
            client.ping()
        with pytest.raises(Unauthorized) as reading:
            client.get_manifest("tls/anything", "v1")
    for error in (caught.value, reading.value):
        assert error.status == 401
        assert "invalid username/password" in str(error)
        assert wrong not in str(error) and wrong not in repr(error) and wrong not in repr(error.args)
    assert str(reading.value).startswith(f"reading manifest v1 in {tls_registry.host}/tls/anything: ")
    assert wrong not in repr(client) and wrong not in repr(Credentials("pallet", wrong))


def test_no_credentials_is_unauthorized(tls_registry, tls_options) -> None:
    with RegistryClient(tls_registry.host, replace(tls_options, credentials=None, no_creds=True)) as client:
        with pytest.raises(Unauthorized) as caught:
            client.ping()
    assert "invalid username/password" not in str(caught.value)


def test_credentials_come_from_the_auth_file_of_xdg_runtime_dir(tls_registry, tls_options, isolated_env, tmp_path) -> None:
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    auth = f"{tls_registry.username}:{tls_registry.password}".encode()
    import base64

    entry = {"auths": {tls_registry.host: {"auth": base64.b64encode(auth).decode()}}}
    (runtime / "containers" / "auth.json").write_text(json.dumps(entry))
    env = {**isolated_env, "XDG_RUNTIME_DIR": str(runtime)}
    with RegistryClient(tls_registry.host, replace(tls_options, credentials=None, env=env)) as client:
        client.ping()


def test_credentials_from_a_credential_helper(tls_registry, tls_options, isolated_env, tmp_path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-pallettest"
    answer = json.dumps({"ServerURL": tls_registry.host, "Username": tls_registry.username,
                         "Secret": tls_registry.password})
    helper.write_text(f"#!/bin/sh\nread server\n[ \"$server\" = '{tls_registry.host}' ] || exit 1\n"
                      f"[ \"$1\" = get ] && echo '{answer}'\n")
    helper.chmod(0o755)
    config = tmp_path / "home" / ".docker" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"credHelpers": {tls_registry.host: "pallettest"}}))
    env = {**isolated_env, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    with RegistryClient(tls_registry.host, replace(tls_options, credentials=None, env=env)) as client:
        client.ping()
    broken = {**isolated_env, "PATH": "/usr/bin:/bin"}  # the helper is not found: say so, do not go anonymous
    with pytest.raises(CredentialsError, match="docker-credential-pallettest"):
        RegistryClient(tls_registry.host, replace(tls_options, credentials=None, env=broken))
