"""skopeo's Go-style boolean flags are accepted as skopeo accepts them."""

from __future__ import annotations

import pytest

from pallet.transfer.cli.goflags import FlagValueError, normalize

SWITCHES = frozenset({"raw", "all", "quiet"})
TRISTATES = frozenset({"tls-verify", "src-tls-verify"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["--raw"], ["--raw"]),
        (["--raw=true"], ["--raw"]),
        (["--raw=false"], []),
        (["--all=1", "x"], ["--all", "x"]),
        (["--tls-verify", "docker://x"], ["--tls-verify=true", "docker://x"]),
        (["--tls-verify=false", "docker://x"], ["--tls-verify=false", "docker://x"]),
        (["--src-tls-verify=0"], ["--src-tls-verify=0"]),
        (["--creds=a:b", "--raw"], ["--creds=a:b", "--raw"]),
        (["--", "--raw=false"], ["--", "--raw=false"]),
    ],
)
def test_normalize(given: list[str], expected: list[str]) -> None:
    assert normalize(given, SWITCHES, TRISTATES) == expected


def test_a_switch_with_a_non_boolean_value_is_refused() -> None:
    with pytest.raises(FlagValueError, match="invalid argument 'maybe' for --raw"):
        normalize(["--raw=maybe"], SWITCHES, TRISTATES)
