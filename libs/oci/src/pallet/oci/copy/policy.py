"""The signature policy (containers-policy.json(5)): may this image be copied?

A policy has a ``default`` list of requirements and, per transport, lists
for scopes. The list that applies to an image is the one of the most
specific scope that matches it, else the transport's ``""`` scope, else the
default. Every requirement of that list must accept the image.

Requirements: ``insecureAcceptAnything`` accepts, ``reject`` refuses.
``signedBy``, ``sigstoreSigned`` and ``signedBaseLayer`` need signature
verification, which Pallet does not implement: they refuse the image with
a ``PolicyRejected`` that says so, rather than accept it unverified.

Scopes, most specific first (as containers/image computes them):

- references with a registry name (``docker``, ...): the full reference
  (``host/repo:tag`` or ``host/repo@digest``), the repository, each parent
  namespace, the host (with port), then ``*.`` wildcards of the host's
  parent domains (``*.example.com``, ``*.com``);
- path-based references (``oci``, ``dir``, ...): the identity
  (``/dir:tag``), the path without the image name, then each parent
  directory.

A reference may give its own scopes with a ``policy_configuration_namespaces()``
method; otherwise they are derived as above.

The default file is ``$HOME/.config/containers/policy.json``, else
``/etc/containers/policy.json``. A missing, unreadable or malformed policy
raises ``InvalidPolicy``, a ``PolicyRejected`` (skopeo refuses to copy
without a valid one; ``--insecure-policy`` is :meth:`Policy.accept_anything`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.oci.errors import InvalidPolicy, PolicyRejected
from pallet.oci.transports.base import ImageReference, SystemContext

SYSTEM_POLICY = Path("/etc/containers/policy.json")
USER_POLICY = Path(".config/containers/policy.json")  # under $HOME

_ACCEPT = "insecureAcceptAnything"
_REJECT = "reject"
_SIGNATURE_TYPES = frozenset({"signedBy", "sigstoreSigned", "signedBaseLayer"})
_KNOWN_TYPES = frozenset({_ACCEPT, _REJECT}) | _SIGNATURE_TYPES


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement of a policy: its ``type`` and the rest of its JSON object."""

    type: str
    details: Mapping[str, Any] = field(default_factory=dict)


Requirements = tuple[Requirement, ...]


@dataclass(frozen=True)
class Policy:
    """A parsed policy.json: ``default`` and ``transports`` → scope → requirements."""

    default: Requirements
    transports: Mapping[str, Mapping[str, Requirements]] = field(default_factory=dict)

    @classmethod
    def accept_anything(cls) -> Policy:
        """The policy of ``--insecure-policy``: every image is accepted."""
        return cls(default=(Requirement(_ACCEPT),))

    @classmethod
    def from_json(cls, raw: bytes | str, origin: str = "policy.json") -> Policy:
        """Parse policy.json text; ``InvalidPolicy`` naming ``origin`` when it is malformed."""
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidPolicy(f"invalid policy in {origin}: not JSON: {error}") from None
        if not isinstance(document, dict):
            raise InvalidPolicy(f"invalid policy in {origin}: expected a JSON object")
        if "default" not in document:
            raise InvalidPolicy(f"invalid policy in {origin}: the default policy is missing")
        default = _requirements(document["default"], f"{origin}: default")
        transports_doc = document.get("transports", {})
        if not isinstance(transports_doc, dict):
            raise InvalidPolicy(f"invalid policy in {origin}: transports must be an object")
        transports: dict[str, dict[str, Requirements]] = {}
        for transport, scopes in transports_doc.items():
            if not isinstance(scopes, dict):
                raise InvalidPolicy(f"invalid policy in {origin}: transports.{transport} must be an object")
            transports[transport] = {
                scope: _requirements(value, f"{origin}: transports.{transport}[{scope!r}]")
                for scope, value in scopes.items()
            }
        return cls(default=default, transports=transports)

    def requirements_for(self, reference: ImageReference) -> tuple[str, Requirements]:
        """The scope that applies to ``reference`` (``""`` for the defaults) and its requirements."""
        scopes = self.transports.get(reference.transport.name, {})
        for scope in policy_scopes(reference):
            if scope in scopes:
                return scope, scopes[scope]
        if "" in scopes:
            return "", scopes[""]
        return "", self.default

    def check(self, reference: ImageReference) -> None:
        """Raise ``PolicyRejected`` unless every applicable requirement accepts ``reference``."""
        scope, requirements = self.requirements_for(reference)
        where = f" (policy scope {scope!r})" if scope else ""
        for requirement in requirements:
            if requirement.type == _REJECT:
                raise PolicyRejected(f"Source image rejected: running image {reference} is rejected by policy{where}")
            if requirement.type in _SIGNATURE_TYPES:
                raise PolicyRejected(
                    f"Source image rejected: policy requires {requirement.type} for {reference}{where}, "
                    "but signature verification is not implemented"
                )


def _requirements(value: object, where: str) -> Requirements:
    if not isinstance(value, list) or not value:
        raise InvalidPolicy(f"invalid policy in {where}: expected a non-empty list of requirements")
    parsed: list[Requirement] = []
    for item in value:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in _KNOWN_TYPES:
            raise InvalidPolicy(f"invalid policy in {where}: unknown requirement type {kind!r}")
        assert isinstance(item, dict)
        parsed.append(Requirement(str(kind), {k: v for k, v in item.items() if k != "type"}))
    return tuple(parsed)


def policy_scopes(reference: ImageReference) -> list[str]:
    """The scopes of ``reference``, most specific first (see the module docstring)."""
    own = getattr(reference, "policy_configuration_namespaces", None)
    identity = reference.policy_configuration_identity()
    if callable(own):
        return [identity, *(str(scope) for scope in own())]
    named = reference.docker_reference()
    if named is not None:
        return [identity, *_registry_namespaces(named.name)]
    return [identity, *_path_namespaces(identity)]


def _registry_namespaces(name: str) -> list[str]:
    scopes: list[str] = []
    while True:
        scopes.append(name)
        if "/" not in name:
            break
        name = name.rsplit("/", 1)[0]
    while "." in name:
        name = name.split(".", 1)[1]
        scopes.append(f"*.{name}")
    return scopes


def _path_namespaces(identity: str) -> list[str]:
    head, slash, last = identity.rpartition("/")
    if not slash:
        return []
    path = f"{head}/{last.split(':', 1)[0]}" if ":" in last else head
    scopes: list[str] = []
    while path and path != "/":
        scopes.append(path)
        path = path.rsplit("/", 1)[0]
    return [scope for scope in scopes if scope != identity]


def default_policy_paths(context: SystemContext | None = None) -> tuple[Path, ...]:
    """Where the policy is looked for, first found wins."""
    home = context.home if context is not None and context.home is not None else Path.home()
    return (home / USER_POLICY, SYSTEM_POLICY)


def load_policy(path: Path | None = None, *, context: SystemContext | None = None) -> Policy:
    """The policy at ``path``, else the first of :func:`default_policy_paths` that exists.

    ``InvalidPolicy`` when there is none, or it cannot be read or parsed.
    """
    candidates: Sequence[Path] = (path,) if path is not None else default_policy_paths(context)
    for candidate in candidates:
        try:
            raw = candidate.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise InvalidPolicy(f"cannot read the policy {candidate}: {error.strerror}") from error
        return Policy.from_json(raw, str(candidate))
    tried = " or ".join(str(candidate) for candidate in candidates)
    raise InvalidPolicy(f"no policy file at {tried} (write one, or use --insecure-policy)")
