"""Registry credentials: explicit ones, auth.json files and credential helpers.

Reading (``lookup_credentials``) follows containers/image
(pkg/docker/config): the auth files are searched in this order, and the
first file holding an entry for the name wins:

1. ``auth_file`` given by the caller, else ``$REGISTRY_AUTH_FILE``, else
   ``$XDG_RUNTIME_DIR/containers/auth.json`` (``/run/containers/UID/auth.json``
   without ``XDG_RUNTIME_DIR``): an explicit file takes the place of the
   runtime one, as ``--authfile`` does in containers/image;
2. ``$XDG_CONFIG_HOME/containers/auth.json`` (default ``~/.config/...``);
3. ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``;
4. ``~/.dockercfg`` (the legacy format: the ``auths`` map at top level).

Within a file: a ``credHelpers`` entry for the host runs
``docker-credential-NAME get``; then a ``credsStore`` (any host); then the
``auths`` keys: ``host/repo/...`` keys, longest match first, then ``host``,
then keys normalised from URLs (``https://index.docker.io/v1/`` stands for
docker.io). ``auth`` is base64 ``user:password``; ``identitytoken`` an OAuth2
refresh token.

Writing (``set_credentials``/``remove_credentials``) edits one file: it is
created 0600 (its directory 0700), written atomically (temp file, fsync,
rename), and keeps every other entry and unknown field.

Secrets never appear in messages, logs or reprs. The environment and home
directory are parameters (``env``, ``home``) so that tests need no global state.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.oci._fsutil import fsync_dir
from pallet.oci.errors import CredentialsError

AUTH_FILE_ENV = "REGISTRY_AUTH_FILE"
HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT_SECONDS = 60
_DOCKER_HUB_KEYS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_MAX_AUTH_FILE = 1 << 20  # an auth file larger than this is refused, not read


@dataclass(frozen=True)
class Credentials:
    """A username and password, or an identity (OAuth2 refresh) token. The repr hides secrets."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    @classmethod
    def parse(cls, creds: str) -> Credentials:
        """``user:password`` as skopeo's ``--creds`` takes it (the password may hold ":")."""
        username, colon, password = creds.partition(":")
        if not colon or not username:
            raise CredentialsError("credentials must be given as USERNAME:PASSWORD")
        return cls(username, password)

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)

    def __bool__(self) -> bool:
        return self.has_password or bool(self.identity_token)


@dataclass(frozen=True)
class AuthFile:
    """One place credentials may be read from; ``legacy`` for the ``~/.dockercfg`` format."""

    path: Path
    legacy: bool = False


def _home(env: Mapping[str, str], home: Path | None) -> Path:
    if home is not None:
        return home
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def default_auth_file(
    *, auth_file: Path | None = None, env: Mapping[str, str] | None = None, uid: int | None = None
) -> Path:
    """The file that login writes and the first one read (see the module docstring, item 1)."""
    env = os.environ if env is None else env
    if auth_file is not None:
        return auth_file
    if env.get(AUTH_FILE_ENV):
        return Path(env[AUTH_FILE_ENV])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    return Path(f"/run/containers/{os.getuid() if uid is None else uid}/auth.json")


def auth_file_paths(
    *, auth_file: Path | None = None, env: Mapping[str, str] | None = None, home: Path | None = None
) -> list[AuthFile]:
    """Every auth file, in the order they are searched (some may not exist)."""
    env = os.environ if env is None else env
    home_dir = _home(env, home)
    xdg_config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home_dir / ".config"
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home_dir / ".docker"
    return [
        AuthFile(default_auth_file(auth_file=auth_file, env=env)),
        AuthFile(xdg_config / "containers" / "auth.json"),
        AuthFile(docker_dir / "config.json"),
        AuthFile(home_dir / ".dockercfg", legacy=True),
    ]


def lookup_credentials(
    name: str,
    *,
    auth_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Credentials | None:
    """The stored credentials for ``name`` (``host`` or ``host/repo/path``), or None.

    Raises CredentialsError for an unreadable or malformed auth file and for a
    credential helper that fails (other than "not found").
    """
    env = os.environ if env is None else env
    host = name.split("/", 1)[0]
    for candidate in auth_file_paths(auth_file=auth_file, env=env, home=home):
        found = _lookup_in_file(candidate, name, host, env)
        if found:
            return found
    return None


def _lookup_in_file(auth_file: AuthFile, name: str, host: str, env: Mapping[str, str]) -> Credentials | None:
    document = read_auth_file(auth_file.path, legacy=auth_file.legacy)
    helpers = document.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return run_credential_helper(helpers[host], host, env=env)
    store = document.get("credsStore")
    if isinstance(store, str) and store:
        found = run_credential_helper(store, host, env=env)
        if found:
            return found
    auths = document.get("auths")
    if not isinstance(auths, dict):
        return None
    entry = _find_entry(auths, name, host, legacy=auth_file.legacy)
    return None if entry is None else _decode_entry(entry, auth_file.path)


def _find_entry(auths: dict[str, Any], name: str, host: str, *, legacy: bool) -> dict[str, Any] | None:
    keys = [host] if legacy else _keys_for_name(name)
    for key in keys:
        if isinstance(auths.get(key), dict):
            return auths[key]  # type: ignore[no-any-return]
    wanted = normalize_registry_key(host)
    for key, entry in auths.items():
        if normalize_registry_key(key) == wanted and isinstance(entry, dict):
            return entry
    return None


def _keys_for_name(name: str) -> list[str]:
    """``quay.io/ns/repo`` -> ``quay.io/ns/repo``, ``quay.io/ns``, ``quay.io``: longest first."""
    parts = name.split("/")
    return ["/".join(parts[:count]) for count in range(len(parts), 0, -1)]


def normalize_registry_key(key: str) -> str:
    """The host an auths key stands for: URL schemes and paths dropped, Docker Hub's names unified."""
    host = key.removeprefix("http://").removeprefix("https://").split("/", 1)[0]
    return "index.docker.io" if host in _DOCKER_HUB_KEYS else host


def _decode_entry(entry: dict[str, Any], path: Path) -> Credentials | None:
    identity_token = entry.get("identitytoken") or ""
    encoded = entry.get("auth") or ""
    if not isinstance(encoded, str) or not isinstance(identity_token, str):
        raise CredentialsError(f"{path}: malformed auth entry (auth and identitytoken must be strings)")
    username = password = ""
    if encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"{path}: an auth entry is not base64 of USERNAME:PASSWORD") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            username = password = ""  # as docker: an entry without ":" is skipped
        password = password.strip("\x00")
    found = Credentials(username, password, identity_token)
    return found if found else None


def read_auth_file(path: Path, *, legacy: bool = False) -> dict[str, Any]:
    """The JSON document of an auth file (legacy files put under ``auths``); {} when missing."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(_MAX_AUTH_FILE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as error:
        raise CredentialsError(f"{path}: cannot read: {error.strerror}") from error
    if len(raw) > _MAX_AUTH_FILE:
        raise CredentialsError(f"{path}: larger than {_MAX_AUTH_FILE} bytes, not an auth file")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise CredentialsError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{path}: must hold a JSON object")
    return {"auths": document} if legacy else document


def run_credential_helper(helper: str, server: str, *, env: Mapping[str, str] | None = None) -> Credentials | None:
    """``docker-credential-HELPER get`` for ``server``; None when it has no credentials for it.

    The helper is looked up on ``env["PATH"]``. A Username of ``<token>`` means
    the Secret is an identity token (docker's convention).
    """
    env = os.environ if env is None else env
    program = shutil.which(HELPER_PREFIX + helper, path=env.get("PATH", os.defpath))
    if program is None:
        raise CredentialsError(f"credential helper {HELPER_PREFIX}{helper} not found in $PATH")
    try:
        result = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT_SECONDS,
            env=dict(env), check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CredentialsError(f"running credential helper {HELPER_PREFIX}{helper}: {error}") from None
    output = result.stdout.decode("utf-8", "replace").strip()
    if result.returncode != 0:
        if "credentials not found" in output.lower():
            return None
        raise CredentialsError(
            f"credential helper {HELPER_PREFIX}{helper} failed for {server} (exit status {result.returncode})"
        )
    return _helper_output(output, helper)


def _helper_output(output: str, helper: str) -> Credentials | None:
    try:
        answer = json.loads(output)
        username, secret = answer.get("Username", ""), answer.get("Secret", "")
    except (ValueError, AttributeError):
        raise CredentialsError(f"credential helper {HELPER_PREFIX}{helper} did not print a JSON object") from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialsError(f"credential helper {HELPER_PREFIX}{helper}: Username and Secret must be strings")
    if username == "<token>":
        return Credentials(identity_token=secret) if secret else None
    found = Credentials(username, secret)
    return found if found else None


def set_credentials(path: Path, key: str, username: str, password: str) -> None:
    """Store ``username``/``password`` for ``key`` (host or host/repo) in the auth file at ``path``."""
    if not username or ":" in username:
        raise CredentialsError("a username must be non-empty and hold no ':'")
    document = read_auth_file(path)
    auths = _auths_of(document, path)
    entry = {k: v for k, v in (auths.get(key) or {}).items() if k not in ("auth", "identitytoken")}
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    auths[key] = entry
    write_auth_file(path, document)


def remove_credentials(path: Path, key: str) -> bool:
    """Forget ``key`` (or the entry its normalised host names) in ``path``; False when there was none."""
    document = read_auth_file(path)
    auths = _auths_of(document, path)
    if key in auths:
        del auths[key]
    else:
        wanted = normalize_registry_key(key)
        matches = [k for k in auths if "/" not in key and normalize_registry_key(k) == wanted]
        if not matches:
            return False
        del auths[matches[0]]
    write_auth_file(path, document)
    return True


def _auths_of(document: dict[str, Any], path: Path) -> dict[str, Any]:
    auths = document.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise CredentialsError(f"{path}: \"auths\" must be a JSON object")
    return auths


def write_auth_file(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically, mode 0600; missing directories are made 0700."""
    data = (json.dumps(document, indent="\t") + "\n").encode()
    try:
        _make_private_dirs(path.parent)
        descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
    except OSError as error:
        raise CredentialsError(f"{path}: cannot write: {error.strerror or error}") from error


def _make_private_dirs(directory: Path) -> None:
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)


