"""Rootless user namespaces as podman makes them: /etc/subuid parsing, the id mapping, unshare.

- :mod:`.subids`: /etc/subuid and /etc/subgid, read as containers/storage's idtools does.
- :mod:`.idmap`: podman's rootless mapping (container 0 -> the user, 1.. -> the ranges) as data.
- :mod:`.unshare`: :func:`run_in_userns`, a callable run inside a new user + mount namespace.
- :mod:`.command`: :func:`run_unshared`, ``podman unshare`` as a function.
- :mod:`.errors`: the exceptions (under ``pallet.storage.errors.StorageError``).
"""
