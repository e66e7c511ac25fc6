"""auth.json lookup order and key matching, credential helpers, and writing for login/logout."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from pallet.oci.errors import CredentialsError
from pallet.oci.registry import Credentials, lookup_credentials, remove_credentials, set_credentials
from pallet.oci.registry.credentials import auth_file_paths, default_auth_file


def entry(user: str, password: str = "secret") -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def write(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def env(home: Path, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "run").mkdir()
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "PATH": "/usr/bin:/bin"}


def test_auth_files_are_searched_in_the_containers_order(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    host = "reg.example:5000"
    files = [
        write(tmp_path / "run" / "containers" / "auth.json", {"auths": {host: entry("runtime")}}),
        write(home / ".config" / "containers" / "auth.json", {"auths": {host: entry("xdg-config")}}),
        write(home / ".docker" / "config.json", {"auths": {host: entry("docker")}}),
        write(home / ".dockercfg", {host: entry("legacy")}),
    ]
    for expected, path in zip(["runtime", "xdg-config", "docker", "legacy"], files):
        found = lookup_credentials(host, env=env, home=home)
        assert found is not None and found.username == expected
        path.unlink()
    assert lookup_credentials(host, env=env, home=home) is None


def test_an_explicit_auth_file_takes_the_place_of_the_runtime_one(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "run" / "containers" / "auth.json", {"auths": {"r.example": entry("runtime")}})
    write(home / ".config" / "containers" / "auth.json", {"auths": {"r.example": entry("xdg-config")}})
    explicit = write(tmp_path / "mine.json", {"auths": {"other.example": entry("someone")}})
    found = lookup_credentials("r.example", auth_file=explicit, env=env, home=home)
    assert found is not None and found.username == "xdg-config"
    by_env = {**env, "REGISTRY_AUTH_FILE": str(explicit)}
    assert lookup_credentials("other.example", env=by_env, home=home) == Credentials("someone", "secret")
    assert [p.path for p in auth_file_paths(env=by_env, home=home)][0] == explicit


def test_xdg_config_home_and_docker_config_move_their_files(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "cfg" / "containers" / "auth.json", {"auths": {"a.example": entry("from-xdg")}})
    write(tmp_path / "dockercfg" / "config.json", {"auths": {"b.example": entry("from-docker-config")}})
    moved = {**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "DOCKER_CONFIG": str(tmp_path / "dockercfg")}
    assert lookup_credentials("a.example", env=moved, home=home).username == "from-xdg"  # type: ignore[union-attr]
    assert lookup_credentials("b.example", env=moved, home=home).username == "from-docker-config"  # type: ignore[union-attr]


def test_without_xdg_runtime_dir_the_per_uid_file_is_the_default(home: Path) -> None:
    assert default_auth_file(env={"HOME": str(home)}, uid=1234) == Path("/run/containers/1234/auth.json")


def test_the_longest_repository_key_wins(home: Path, env: dict[str, str]) -> None:
    write(home / ".config" / "containers" / "auth.json", {"auths": {
        "quay.example": entry("host"),
        "quay.example/team": entry("team"),
        "quay.example/team/app": entry("app"),
    }})
    def user(name: str) -> str | None:
        found = lookup_credentials(name, env=env, home=home)
        return found.username if found else None

    assert user("quay.example/team/app") == "app"
    assert user("quay.example/team/app/sub") == "app"
    assert user("quay.example/team/other") == "team"
    assert user("quay.example/teams") == "host"  # a key matches whole path components only
    assert user("quay.example") == "host"
    assert user("quay.example.evil") is None


def test_url_keys_match_their_host_and_docker_hub_has_its_v1_key(home: Path, env: dict[str, str]) -> None:
    write(home / ".docker" / "config.json", {"auths": {
        "https://index.docker.io/v1/": entry("hub-user"),
        "http://old.example:5000/v1/": entry("old-user"),
    }})
    assert lookup_credentials("docker.io/library/busybox", env=env, home=home).username == "hub-user"  # type: ignore[union-attr]
    assert lookup_credentials("old.example:5000/x", env=env, home=home).username == "old-user"  # type: ignore[union-attr]
    assert lookup_credentials("old.example/x", env=env, home=home) is None


def test_identity_tokens_are_credentials_too(home: Path, env: dict[str, str]) -> None:
    write(home / ".docker" / "config.json", {"auths": {"t.example": {"identitytoken": "refresh-me"}}})
    found = lookup_credentials("t.example", env=env, home=home)
    assert found is not None and found.identity_token == "refresh-me" and not found.has_password
    assert "refresh-me" not in repr(found)


def test_broken_auth_files_raise_without_showing_their_secrets(home: Path, env: dict[str, str]) -> None:
    path = write(home / ".docker" / "config.json", {"auths": {"b.example": {"auth": "!!not base64 hunter2!!"}}})
    with pytest.raises(CredentialsError) as caught:
        lookup_credentials("b.example", env=env, home=home)
    assert str(path) in str(caught.value) and "hunter2" not in str(caught.value)
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        lookup_credentials("b.example", env=env, home=home)


def helper_script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return directory


def test_cred_helpers_and_creds_store_are_run_with_the_host_on_stdin(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    bin_dir = helper_script(tmp_path / "bin", "pallettest", (
        'read server\n'
        'case "$server" in\n'
        '  helper.example) echo \'{"ServerURL":"helper.example","Username":"h-user","Secret":"h-pass"}\' ;;\n'
        '  token.example) echo \'{"ServerURL":"token.example","Username":"<token>","Secret":"ident"}\' ;;\n'
        '  *) echo "credentials not found in native keychain"; exit 1 ;;\n'
        'esac\n'
    ))
    env = {**env, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    write(home / ".docker" / "config.json", {
        "credHelpers": {"helper.example": "pallettest"},
        "credsStore": "pallettest",
        "auths": {"stored.example": entry("in-file")},
    })
    assert lookup_credentials("helper.example/x", env=env, home=home) == Credentials("h-user", "h-pass")
    assert lookup_credentials("token.example", env=env, home=home) == Credentials(identity_token="ident")
    assert lookup_credentials("stored.example", env=env, home=home).username == "in-file"  # type: ignore[union-attr]
    assert lookup_credentials("nowhere.example", env=env, home=home) is None


def test_a_failing_helper_is_an_error_that_keeps_its_output_private(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    bin_dir = helper_script(tmp_path / "bin", "broken", "echo 'token hunter2 leaked'; exit 3\n")
    write(home / ".docker" / "config.json", {"credHelpers": {"x.example": "broken"}})
    with pytest.raises(CredentialsError) as caught:
        lookup_credentials("x.example", env={**env, "PATH": str(bin_dir)}, home=home)
    assert "exit status 3" in str(caught.value) and "hunter2" not in str(caught.value)


def test_login_writes_a_private_file_atomically_keeping_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "containers" / "auth.json"
    set_credentials(path, "reg.example", "alice", "pa:ss")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert lookup_credentials("reg.example", auth_file=path, env={"HOME": str(tmp_path)}) == Credentials("alice", "pa:ss")

    document = json.loads(path.read_text())
    document["credHelpers"] = {"h.example": "x"}
    document["auths"]["other.example"] = {**entry("bob"), "email": "bob@example.com"}
    document["auths"]["reg.example"]["email"] = "alice@example.com"
    document["auths"]["reg.example"]["identitytoken"] = "stale"
    path.write_text(json.dumps(document))

    set_credentials(path, "reg.example", "alice", "new")
    after = json.loads(path.read_text())
    assert after["credHelpers"] == {"h.example": "x"}
    assert after["auths"]["other.example"]["email"] == "bob@example.com"
    assert after["auths"]["reg.example"] == {**entry("alice", "new"), "email": "alice@example.com"}
    assert [p.name for p in path.parent.iterdir()] == ["auth.json"]  # no temp file left behind


def test_logout_removes_only_the_entry(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.json", {"auths": {
        "a.example": entry("a"), "https://b.example/v1/": entry("b"), "c.example/team": entry("c")}, "other": 1})
    assert remove_credentials(path, "a.example") is True
    assert remove_credentials(path, "b.example") is True  # its URL-form key
    assert remove_credentials(path, "a.example") is False
    assert json.loads(path.read_text()) == {"auths": {"c.example/team": entry("c")}, "other": 1}
    assert remove_credentials(tmp_path / "missing.json", "a.example") is False


def test_creds_flag_parsing() -> None:
    assert Credentials.parse("user:pa:ss") == Credentials("user", "pa:ss")
    with pytest.raises(CredentialsError):
        Credentials.parse("no-password-given")
    assert "pa:ss" not in repr(Credentials.parse("user:pa:ss"))
