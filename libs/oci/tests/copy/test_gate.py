"""BlobGate: one holder per (destination, blob); others wait; nothing is left behind."""

from __future__ import annotations

import threading
import time

from pallet.oci.copy.gate import BlobGate, destination_key
from pallet.oci.digest import Digest
from pallet.oci.transports import default_transports

A = Digest.parse("sha256:" + "a" * 64)
B = Digest.parse("sha256:" + "b" * 64)


def _overlap(gate: BlobGate, first: tuple[str, Digest], second: tuple[str, Digest]) -> bool:
    """Whether a second holder got in while the first one was holding."""
    inside = threading.Event()
    release = threading.Event()
    entered_second = threading.Event()

    def hold_first() -> None:
        with gate.hold(*first):
            inside.set()
            release.wait(5)

    def hold_second() -> None:
        with gate.hold(*second):
            entered_second.set()

    one = threading.Thread(target=hold_first)
    one.start()
    assert inside.wait(5)
    two = threading.Thread(target=hold_second)
    two.start()
    overlapped = entered_second.wait(0.3)
    release.set()
    one.join(5)
    two.join(5)
    assert entered_second.is_set()  # the second always gets in, at the latest once the first is done
    return overlapped


def test_one_blob_into_one_destination_waits() -> None:
    gate = BlobGate()
    assert not _overlap(gate, ("docker:reg/repo", A), ("docker:reg/repo", A))
    assert len(gate) == 0


def test_other_blobs_and_other_destinations_do_not_wait() -> None:
    gate = BlobGate()
    assert _overlap(gate, ("docker:reg/repo", A), ("docker:reg/repo", B))
    assert _overlap(gate, ("docker:reg/repo", A), ("docker:reg/other", A))
    assert len(gate) == 0


def test_many_threads_on_one_blob_run_one_at_a_time() -> None:
    gate = BlobGate()
    holders = 0
    most = 0
    counter = threading.Lock()

    def work() -> None:
        nonlocal holders, most
        with gate.hold("docker:reg/repo", A):
            with counter:
                holders += 1
                most = max(most, holders)
            time.sleep(0.005)
            with counter:
                holders -= 1

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == 1
    assert len(gate) == 0


def test_destination_key_is_the_repository_for_registry_names() -> None:
    transports = default_transports(plugins=False)
    one = transports.parse_image_name("docker://registry.example/team/app:v1")
    two = transports.parse_image_name("docker://registry.example/team/app:v2")
    other = transports.parse_image_name("docker://registry.example/team/db:v1")
    assert destination_key(one) == destination_key(two) == "docker:registry.example/team/app"
    assert destination_key(other) != destination_key(one)
    assert destination_key(transports.parse_image_name("dir:/tmp/x")) == "dir:/tmp/x"
