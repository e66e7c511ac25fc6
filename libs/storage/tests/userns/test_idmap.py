"""Podman's rootless id mapping, computed from injected subordinate-id files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.storage.userns.errors import NoSubIDRanges, SubIDRangesTooSmall
from pallet.storage.userns.idmap import (
    IDMapEntry,
    map_size,
    newidmap_args,
    parse_proc_map,
    proc_map_text,
    rootless_idmap,
    rootless_mapping,
    to_container,
    to_host,
)
from pallet.storage.userns.subids import SubIDRange


def test_one_range_maps_the_user_to_0_and_the_range_to_1() -> None:
    idmap = rootless_idmap(1001, [SubIDRange(200000, 65536)])
    assert idmap == (IDMapEntry(0, 1001, 1), IDMapEntry(1, 200000, 65536))
    assert map_size(idmap) == 65537
    assert to_host(idmap, 0) == 1001
    assert to_host(idmap, 1000) == 200999
    assert to_host(idmap, 65536) == 265535
    assert to_host(idmap, 65537) is None
    assert to_container(idmap, 200999) == 1000
    assert to_container(idmap, 1002) is None


def test_several_ranges_follow_each_other_in_file_order() -> None:
    idmap = rootless_idmap(1000, [SubIDRange(500000, 10), SubIDRange(100000, 5), SubIDRange(7, 0)])
    assert idmap == (IDMapEntry(0, 1000, 1), IDMapEntry(1, 500000, 10), IDMapEntry(11, 100000, 5))
    assert to_host(idmap, 11) == 100000


def test_helper_arguments_are_pid_then_inside_outside_count_triples() -> None:
    idmap = rootless_idmap(1001, [SubIDRange(200000, 65536), SubIDRange(300000, 10)])
    assert newidmap_args(4242, idmap) == ["4242", "0", "1001", "1", "1", "200000", "65536", "65537", "300000", "10"]


def test_proc_map_text_is_what_the_kernel_shows_and_parses_back() -> None:
    idmap = rootless_idmap(1001, [SubIDRange(100000, 65536)])
    kernel = "         0       1001          1\n         1     100000      65536\n"
    assert proc_map_text(idmap) == kernel
    assert parse_proc_map(kernel) == idmap


def _files(tmp_path: Path, subuid: str, subgid: str) -> tuple[Path, Path]:
    (tmp_path / "subuid").write_text(subuid)
    (tmp_path / "subgid").write_text(subgid)
    return tmp_path / "subuid", tmp_path / "subgid"


def test_rootless_mapping_of_an_injected_user(tmp_path: Path) -> None:
    paths = _files(tmp_path, "alice:200000:65536\n", "1001:300000:65536\nalice:400000:100\n")
    mapping = rootless_mapping(user="alice", uid=1001, gid=1005, subuid_path=paths[0], subgid_path=paths[1])
    assert (mapping.user, mapping.uid, mapping.gid) == ("alice", 1001, 1005)
    assert mapping.uid_map == (IDMapEntry(0, 1001, 1), IDMapEntry(1, 200000, 65536))
    assert mapping.gid_map == (IDMapEntry(0, 1005, 1), IDMapEntry(1, 300000, 65536), IDMapEntry(65537, 400000, 100))


def test_no_ranges_in_either_file_is_a_clear_error(tmp_path: Path) -> None:
    paths = _files(tmp_path, "bob:200000:65536\n", "alice:200000:65536\n")
    with pytest.raises(NoSubIDRanges, match=r"no subordinate ids found for user 'alice' \(id 1001\)") as caught:
        rootless_mapping(user="alice", uid=1001, gid=1001, subuid_path=paths[0], subgid_path=paths[1])
    assert caught.value.path == str(paths[0])
    paths = _files(tmp_path, "alice:200000:65536\n", "")
    with pytest.raises(NoSubIDRanges) as caught:
        rootless_mapping(user="alice", uid=1001, gid=1001, subuid_path=paths[0], subgid_path=paths[1])
    assert caught.value.path == str(paths[1])


def test_ranges_too_small_is_a_clear_error_and_the_minimum_is_adjustable(tmp_path: Path) -> None:
    paths = _files(tmp_path, "alice:200000:1000\nalice:300000:1000\n", "alice:200000:65536\n")
    with pytest.raises(SubIDRangesTooSmall, match="number 2000, fewer than the 65536 needed") as caught:
        rootless_mapping(user="alice", uid=1001, gid=1001, subuid_path=paths[0], subgid_path=paths[1])
    assert "usermod --add-subuids" in str(caught.value)
    mapping = rootless_mapping(user="alice", uid=1001, gid=1001, min_subids=2000, subuid_path=paths[0], subgid_path=paths[1])
    assert map_size(mapping.uid_map) == 2001
