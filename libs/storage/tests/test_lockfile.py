"""lockfile: POSIX record locks and the last-write token, checked from other processes and against Go."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.storage import errors
from pallet.storage.lockfile import TOKEN_SIZE, LockFile, LockRegistry, get_lockfile, new_token

# A probe in another process that uses fcntl directly: can it take the lock in this mode now?
PROBE = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    mode = fcntl.LOCK_EX if sys.argv[2] == "write" else fcntl.LOCK_SH
    try:
        fcntl.lockf(fd, mode | fcntl.LOCK_NB)
    except OSError:
        print("busy")
    else:
        print("free")
    """
)


def probe(path: Path, mode: str) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE, str(path), mode], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def run_ours(code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that has pallet.storage."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def lock(tmp_path: Path) -> LockFile:
    return LockRegistry().get(tmp_path / "sub" / "layers.lock")


def test_write_lock_excludes_other_processes(lock: LockFile) -> None:
    path = Path(lock.path)
    with lock.writing():
        assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o644"
        assert probe(path, "read") == "busy" and probe(path, "write") == "busy"
    assert probe(path, "write") == "free"


def test_read_lock_is_shared_with_readers_only(lock: LockFile) -> None:
    with lock.reading():
        assert probe(Path(lock.path), "read") == "free"
        assert probe(Path(lock.path), "write") == "busy"


def test_a_non_blocking_attempt_of_ours_fails_in_another_process(lock: LockFile) -> None:
    code = """
        import sys
        from pallet.storage.lockfile import get_lockfile
        from pallet.storage.errors import LockBusy
        try:
            get_lockfile(sys.argv[1]).try_lock()
        except LockBusy:
            print("busy")
    """
    with lock.writing():
        assert run_ours(code, lock.path).stdout.strip() == "busy"


def test_a_blocking_attempt_waits_for_the_release(lock: LockFile) -> None:
    code = """
        import sys, time
        from pallet.storage.lockfile import get_lockfile
        lock = get_lockfile(sys.argv[1])
        print("waiting", flush=True)
        lock.lock()
        print("got", time.time(), flush=True)
    """
    lock.lock()
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), lock.path], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "waiting"
        time.sleep(0.5)
        released = time.time()
        lock.unlock()
        got = float(child.stdout.readline().split()[1])
        assert got >= released
    finally:
        child.wait(timeout=30)


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    code = """
        import sys, time
        from pallet.storage.lockfile import get_lockfile
        get_lockfile(sys.argv[1]).lock()
        print("locked", flush=True)
        time.sleep(600)
    """
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    assert probe(path, "read") == "busy"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    lock = LockRegistry().get(path)
    lock.try_lock()
    lock.unlock()


def test_token_layout_and_change_detection_across_processes(lock: LockFile) -> None:
    with lock.writing():
        seen = lock.last_write()
        assert seen == b"" and lock.modified_since(seen)  # a new file counts as modified
        before = time.time_ns()
        token = lock.record_write()
        assert len(token) == TOKEN_SIZE and lock.last_write() == token and not lock.modified_since(token)
    stamp, counter, pid = struct.unpack("<QQI", token[:20])
    assert before <= stamp <= time.time_ns() and counter >= 1 and pid == os.getpid()
    code = """
        import sys
        from pallet.storage.lockfile import get_lockfile
        lock = get_lockfile(sys.argv[1])
        with lock.reading():
            print(lock.modified_since(bytes.fromhex(sys.argv[2])))
        with lock.writing():
            print(lock.record_write().hex())
    """
    result = run_ours(code, lock.path, token.hex())
    unchanged, theirs = result.stdout.split()
    assert unchanged == "False"
    with lock.reading():
        assert lock.modified_since(token) and lock.last_write() == bytes.fromhex(theirs)


def test_tokens_differ_each_time() -> None:
    assert new_token(1) != new_token(1)
    assert struct.unpack("<QQI", new_token(7, pid=9, now_ns=5)[:20]) == (5, 7, 9)


def test_record_write_needs_the_write_lock(lock: LockFile) -> None:
    with pytest.raises(errors.LockNotHeld):
        lock.record_write()
    with lock.reading(), pytest.raises(errors.LockNotHeld):
        lock.record_write()
    with pytest.raises(errors.LockNotHeld):
        lock.last_write()
    with pytest.raises(errors.LockNotHeld):
        lock.unlock()


def test_reentrancy_keeps_the_file_lock_until_the_last_release(lock: LockFile) -> None:
    lock.lock()
    lock.lock()
    lock.rlock()  # a read under our own write lock
    assert lock.locked_for_writing
    lock.unlock()
    lock.unlock()
    assert probe(Path(lock.path), "read") == "busy"
    lock.unlock()
    assert not lock.locked and probe(Path(lock.path), "read") == "free"


def test_upgrading_a_read_lock_is_refused_not_deadlocked(lock: LockFile) -> None:
    with lock.reading(), pytest.raises(errors.LockError):
        lock.lock()
    lock.try_lock()
    lock.unlock()


def test_threads_share_reads_and_exclude_writes(lock: LockFile) -> None:
    outcome: dict[str, object] = {}
    lock.rlock()

    def reader() -> None:
        lock.try_rlock()
        outcome["reader"] = probe(Path(lock.path), "write")
        lock.unlock()

    def writer() -> None:
        try:
            lock.try_lock()
        except errors.LockBusy:
            outcome["writer"] = "busy"

    for target in (reader, writer):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(30)
    assert outcome == {"reader": "busy", "writer": "busy"}
    assert probe(Path(lock.path), "write") == "busy"  # the other thread's unlock did not drop our file lock
    lock.unlock()


def test_many_threads_writing_do_not_overlap(lock: LockFile) -> None:
    inside = []
    overlaps = []

    def work() -> None:
        for _ in range(50):
            with lock.writing():
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not overlaps and not lock.locked


def test_the_registry_gives_one_object_per_file(tmp_path: Path) -> None:
    registry = LockRegistry()
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "d", tmp_path / "link")
    first = registry.get(tmp_path / "d" / "x.lock")
    assert registry.get(tmp_path / "link" / "x.lock") is first
    assert get_lockfile(tmp_path / "d" / "x.lock") is get_lockfile(str(tmp_path / "d" / "x.lock"))
    with pytest.raises(errors.LockError):
        registry.get(tmp_path / "d" / "x.lock", read_only=True)


def test_read_only_lock_files(tmp_path: Path) -> None:
    path = tmp_path / "ro.lock"
    missing = LockRegistry().get(path, read_only=True)
    with pytest.raises(errors.LockError):
        missing.rlock()
    path.write_bytes(b"")
    lock = LockRegistry().get(tmp_path / "ro.lock", read_only=True)
    with pytest.raises(errors.LockError):
        lock.lock()
    with lock.reading():
        assert probe(path, "write") == "busy"


# -- against containers/storage (skopeo, podman) ------------------------------------------------


@pytest.fixture(scope="module")
def go_store(tmp_path_factory: pytest.TempPathFactory, test_images: object, skopeo: str) -> Iterator[tuple[Path, Path, str]]:
    from pallet_testing import images

    base = tmp_path_factory.mktemp("golock")
    images.write_oci_layout(base / "oci", {"v1": test_images.single_layer})  # type: ignore[attr-defined]
    run = Path(tempfile.mkdtemp(prefix="pallet-lk-", dir="/tmp"))
    spec = f"containers-storage:[vfs@{base / 'root'}+{run}]localhost/single:v1"
    result = subprocess.run([skopeo, "copy", "--quiet", "--insecure-policy", f"oci:{base / 'oci'}:v1", spec], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    yield base / "root", run, spec
    shutil.rmtree(run, ignore_errors=True)


def test_go_writes_the_token_layout_we_expect(go_store: tuple[Path, Path, str]) -> None:
    token = (go_store[0] / "vfs-layers" / "layers.lock").read_bytes()
    assert len(token) == TOKEN_SIZE
    stamp, _, pid = struct.unpack("<QQI", token[:20])
    assert abs(stamp - time.time_ns()) < 3600 * 10**9 and pid not in (0, os.getpid())


def test_skopeo_waits_for_our_write_lock(go_store: tuple[Path, Path, str], skopeo: str) -> None:
    lock = get_lockfile(go_store[0] / "vfs-images" / "images.lock")
    argv = [skopeo, "inspect", go_store[2]]
    with lock.writing():
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run(argv, capture_output=True, timeout=3)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Name"] == "localhost/single"


def test_we_see_go_writes_through_the_token(go_store: tuple[Path, Path, str], skopeo: str, tmp_path: Path, test_images: object) -> None:
    from pallet_testing import images

    lock = get_lockfile(go_store[0] / "vfs-images" / "images.lock")
    with lock.reading():
        seen = lock.last_write()
    images.write_oci_layout(tmp_path / "oci", {"v2": test_images.multi_layer})  # type: ignore[attr-defined]
    spec = go_store[2].replace("single:v1", "multi:v2")
    result = subprocess.run([skopeo, "copy", "--quiet", "--insecure-policy", f"oci:{tmp_path / 'oci'}:v2", spec], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with lock.reading():
        assert lock.modified_since(seen)


def test_a_waiting_writer_holds_back_new_readers(lock: LockFile) -> None:
    lock.rlock()
    writer_got_it = threading.Event()

    def writer() -> None:
        with lock.writing():
            writer_got_it.set()

    def late_reader(result: list[str]) -> None:
        try:
            lock.try_rlock()
        except errors.LockBusy:
            result.append("busy")
        else:
            result.append("got")
            lock.unlock()

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 10
    while not lock._gate._writers_waiting and time.monotonic() < deadline:  # noqa: SLF001 - white-box wait
        time.sleep(0.01)
    result: list[str] = []
    reader = threading.Thread(target=late_reader, args=(result,))
    reader.start()
    reader.join(10)
    assert result == ["busy"]
    lock.rlock()  # but a thread already reading may read again (no self-deadlock)
    lock.unlock()
    lock.unlock()
    thread.join(10)
    assert writer_got_it.is_set()


def test_processes_updating_one_file_under_the_lock_lose_nothing(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    code = """
        import sys
        from pathlib import Path
        from pallet.storage.lockfile import get_lockfile
        lock = get_lockfile(sys.argv[1])
        counter = Path(sys.argv[2])
        for _ in range(100):
            with lock.writing():
                value = int(counter.read_text())
                counter.write_text(str(value + 1))
                lock.record_write()
    """
    children = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "c.lock"), str(counter)]) for _ in range(4)
    ]
    for child in children:
        assert child.wait(timeout=120) == 0
    assert counter.read_text() == "400"
