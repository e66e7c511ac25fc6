"""StateRoot and ContainerRecord: atomic records, derived status, the spec's state object."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pallet.runtime.errors import ContainerExists, ContainerNotFound, InvalidContainerID
from pallet.runtime.state import ContainerRecord, StateRoot, process_start_time


def record(root: StateRoot, pid: int, start: int) -> ContainerRecord:
    return ContainerRecord("c1", pid, start, "/b", "/b/rootfs", "2026-01-01T00:00:00Z", "root",
                           {"a": "b"}, directory=root.container_dir("c1"))


def test_record_round_trip_and_status(tmp_path: Path) -> None:
    root = StateRoot(tmp_path / "state")
    directory = root.reserve("c1")
    start = process_start_time(os.getpid())
    assert start is not None
    root.write(record(root, os.getpid(), start))
    loaded = root.load("c1")
    assert loaded.status() == "running"
    os.mkfifo(directory / "exec.fifo")
    assert loaded.status() == "created"
    state = loaded.state()
    assert state["status"] == "created" and state["pid"] == os.getpid()
    assert state["annotations"] == {"a": "b"} and state["bundle"] == "/b"
    assert root.ids() == ["c1"]


def test_recycled_pid_means_stopped(tmp_path: Path) -> None:
    root = StateRoot(tmp_path)
    root.reserve("c1")
    root.write(record(root, os.getpid(), 1))
    assert root.load("c1").state()["status"] == "stopped"
    assert root.load("c1").state()["pid"] == 0


def test_reserve_twice_and_unknown_ids(tmp_path: Path) -> None:
    root = StateRoot(tmp_path)
    root.reserve("c1")
    with pytest.raises(ContainerExists):
        root.reserve("c1")
    with pytest.raises(ContainerNotFound):
        root.load("c2")
    with pytest.raises(InvalidContainerID):
        root.load("../etc")
    root.remove("c1")
    assert root.ids() == []
