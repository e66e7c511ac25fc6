"""/etc/subuid and /etc/subgid parsing, as containers/storage's idtools does it (injected contents)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.storage.errors import StorageError
from pallet.storage.userns.errors import NoSubIDRanges, SubIDFileInvalid, UsernsError
from pallet.storage.userns.subids import SubIDRange, iter_entries, parse_subid_text, ranges_for_user, read_subid_file

SAMPLE = """\
# subordinate ids
alice:100000:65536

  bob:165536:65536  
1002:231072:1000
# alice has a second range further down
alice:300000:10
alice:400000:0
"""


def test_ranges_by_name_in_file_order_with_comments_blank_lines_and_spaces() -> None:
    assert parse_subid_text(SAMPLE, "alice", 1001) == (SubIDRange(100000, 65536), SubIDRange(300000, 10))
    assert parse_subid_text(SAMPLE, "bob", None) == (SubIDRange(165536, 65536),)


def test_ranges_by_numeric_uid_and_by_name_together() -> None:
    assert parse_subid_text(SAMPLE, "carol", 1002) == (SubIDRange(231072, 1000),)
    assert parse_subid_text(SAMPLE, "carol", None) == ()
    both = "dave:10:5\n1004:20:5\n"
    assert parse_subid_text(both, "dave", 1004) == (SubIDRange(10, 5), SubIDRange(20, 5))


def test_zero_count_ranges_are_dropped_but_kept_as_entries() -> None:
    entries = list(iter_entries(SAMPLE, "sample"))
    assert [e.owner for e in entries] == ["alice", "bob", "1002", "alice", "alice"]
    assert entries[-1].range == SubIDRange(400000, 0)
    assert SubIDRange(400000, 0) not in parse_subid_text(SAMPLE, "alice", None)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("alice:100000", "found 2"),
        ("alice:100000:65536:extra", "found 4"),
        ("alice:x:65536", "start 'x'"),
        ("alice:100000:-1", "count '-1'"),
        ("alice:100000: 5", "count ' 5'"),
        ("alice:١٢:5", "start"),  # Arabic-Indic digits are not ASCII decimal
    ],
)
def test_a_malformed_line_is_a_hard_error_even_for_another_user(line: str, why: str) -> None:
    text = f"bob:1:2\n{line}\n"
    with pytest.raises(SubIDFileInvalid) as caught:
        parse_subid_text(text, "bob", None, "/etc/subuid")
    assert caught.value.line_number == 2
    assert why in str(caught.value)
    assert "/etc/subuid:2" in str(caught.value)


def test_missing_file_holds_no_ranges_and_ranges_for_user_says_so(tmp_path: Path) -> None:
    assert read_subid_file(tmp_path / "absent", "alice", 1001) == ()
    path = tmp_path / "subuid"
    path.write_text("bob:165536:65536\n")
    with pytest.raises(NoSubIDRanges) as caught:
        ranges_for_user(path, "alice", 1001)
    message = str(caught.value)
    assert "'alice'" in message and str(path) in message and "usermod --add-subuids" in message
    assert isinstance(caught.value, UsernsError) and isinstance(caught.value, StorageError)


def test_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "subgid"
    path.write_text(SAMPLE)
    assert ranges_for_user(path, "alice", 1001) == (SubIDRange(100000, 65536), SubIDRange(300000, 10))
