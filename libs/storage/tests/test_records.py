"""records: layers.json / images.json / containers.json / mountpoints.json as containers/storage 1.43 has them.

The compatibility tests build a real store with skopeo (containers/storage
1.43 inside), read it, write it back and ask podman and skopeo to use it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallet.oci import errors as oci_errors
from pallet.storage import errors, records
from pallet.storage.lockfile import get_lockfile
from pallet.storage.records import Container, Image, Layer, Mountpoint
from pallet_testing import images

HEX_A = "a" * 64
HEX_B = "b" * 64


@dataclass
class RealStore:
    root: Path
    run: Path
    ref: str
    image: images.TestImage

    @property
    def spec(self) -> str:
        return f"containers-storage:[vfs@{self.root}+{self.run}]{self.ref}"

    def podman(self, *args: str) -> str:
        # its own --tmpdir: podmans of other test workers on other stores must not share /run/libpod state
        argv = ["podman", "--root", str(self.root), "--runroot", str(self.run), "--tmpdir", str(self.run / "libpod"), "--storage-driver", "vfs", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory, test_images: Any, skopeo: str) -> Iterator[RealStore]:
    """A vfs store written by skopeo, holding the multi-layer test image as localhost/multi:v1.

    The run root is short: podman refuses run roots longer than 50 characters.
    """
    base = tmp_path_factory.mktemp("store")
    run = Path(tempfile.mkdtemp(prefix="pallet-run-", dir="/tmp"))
    image = test_images.multi_layer
    images.write_oci_layout(base / "oci", {"v1": image})
    store = RealStore(base / "root", run, "localhost/multi:v1", image)
    argv = [skopeo, "copy", "--quiet", "--insecure-policy", f"oci:{base / 'oci'}:v1", store.spec]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    yield store
    shutil.rmtree(run, ignore_errors=True)


def _podman_images(store: RealStore) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(store.podman("images", "--format", "json"))
    return listed


# -- against the real tools -------------------------------------------------------------------


def test_go_written_files_round_trip_byte_for_byte(real_store: RealStore) -> None:
    for kind, path in [
        (Image, real_store.root / "vfs-images" / "images.json"),
        (Layer, real_store.root / "vfs-layers" / "layers.json"),
        (Mountpoint, real_store.run / "vfs-layers" / "mountpoints.json"),
    ]:
        data = path.read_bytes()
        assert records.encode_records(records.load_records(kind, str(path))) == data, path


def test_parsed_records_hold_what_the_format_says(real_store: RealStore) -> None:
    (image,) = records.load_records(Image, str(real_store.root / "vfs-images" / "images.json"))
    layers = records.load_records(Layer, str(real_store.root / "vfs-layers" / "layers.json"))
    config_digest = real_store.image.config.digest
    assert image.id == records.image_id_for_config(config_digest)
    assert image.names == [real_store.ref] and image.names_history == [real_store.ref]
    assert image.digest == real_store.image.manifest.digest
    assert image.digests == [real_store.image.manifest.digest]
    assert image.big_data_digests[config_digest] == config_digest
    parent = ""
    for layer, diff_id in zip(layers, json.loads(real_store.image.config.data)["rootfs"]["diff_ids"], strict=True):
        assert layer.id == records.layer_chain_id(parent, diff_id)
        assert layer.parent == parent and layer.uncompressed_digest == diff_id and layer.compression == 2
        assert records.valid_time(layer.created) and not layer.incomplete
        parent = layer.id
    assert image.top_layer == parent


def test_big_data_file_names_match_what_the_tools_wrote(real_store: RealStore) -> None:
    (image,) = records.load_records(Image, str(real_store.root / "vfs-images" / "images.json"))
    on_disk = set(os.listdir(real_store.root / "vfs-images" / image.id))
    assert {records.big_data_file_name(key) for key in image.big_data_names} == on_disk
    assert {records.big_data_key_of_file(name) for name in on_disk} == set(image.big_data_names)
    assert records.big_data_file_name("manifest") in on_disk


def test_rewritten_store_is_still_used_by_podman_and_skopeo(real_store: RealStore, skopeo: str, podman: str) -> None:
    images_json = real_store.root / "vfs-images" / "images.json"
    layers_json = real_store.root / "vfs-layers" / "layers.json"
    for kind, path in [(Image, images_json), (Layer, layers_json)]:
        lock = get_lockfile(path.with_name(path.name.replace(".json", ".lock")))
        with lock.writing():
            records.save_records(str(path), records.load_records(kind, str(path)))
            lock.record_write()
    assert oct(images_json.stat().st_mode & 0o777) == "0o600"
    assert not [name for name in os.listdir(images_json.parent) if name.startswith(".tmp-")]
    (listed,) = _podman_images(real_store)
    assert listed["Names"] == [real_store.ref]
    result = subprocess.run([skopeo, "inspect", real_store.spec], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Digest"] == real_store.image.manifest.digest


def test_a_name_we_add_is_seen_by_podman(real_store: RealStore, podman: str) -> None:
    path = real_store.root / "vfs-images" / "images.json"
    lock = get_lockfile(real_store.root / "vfs-images" / "images.lock")
    with lock.writing():
        (image,) = records.load_records(Image, str(path))
        image.names.append("localhost/pallet-added:t1")
        image.names_history.insert(0, "localhost/pallet-added:t1")
        records.save_records(str(path), [image])
        lock.record_write()
    try:
        listed = _podman_images(real_store)
        assert {entry["Id"] for entry in listed} == {image.id}
        assert "localhost/pallet-added:t1" in listed[0]["Names"]
    finally:
        real_store.podman("untag", image.id, "localhost/pallet-added:t1")
    (after,) = records.load_records(Image, str(path))
    assert after.names == [real_store.ref]  # podman's write parsed and kept our record
    assert "localhost/pallet-added:t1" in after.names_history


def test_id_prefix_lookup_finds_the_image_podman_lists(real_store: RealStore, podman: str) -> None:
    (listed,) = _podman_images(real_store)
    found = records.load_records(Image, str(real_store.root / "vfs-images" / "images.json"))
    assert records.find_image(found, listed["Id"][:12]).id == listed["Id"]
    assert records.find_image(found, real_store.ref).id == listed["Id"]
    assert records.images_by_digest(found, real_store.image.manifest.digest)[0].id == listed["Id"]


# -- the codec ---------------------------------------------------------------------------------


def test_omitempty_and_key_order_follow_go() -> None:
    layer = Layer(id=HEX_A, created="2023-06-01T10:00:00.123456789Z", compression=0, uids=[0])
    assert records.encode_records([layer]) == (f'[{{"id":"{HEX_A}","created":"2023-06-01T10:00:00.123456789Z","uidset":[0]}}]').encode()
    container = Container(id=HEX_A)
    assert json.loads(records.encode_records([container])) == [{"id": HEX_A, "image": "", "layer": "", "created": records.ZERO_TIME}]
    assert json.loads(records.encode_records([Mountpoint(id=HEX_A)])) == [{"id": HEX_A, "path": "", "count": 0}]
    image = Image(id=HEX_A, big_data_sizes={"z": 1, "a": 2}, flags={"b": {"y": 1, "x": 2}})
    assert b'"big-data-sizes":{"a":2,"z":1}' in records.encode_records([image])
    assert b'"flags":{"b":{"x":2,"y":1}}' in records.encode_records([image])


def test_unknown_fields_are_kept_and_null_is_empty() -> None:
    data = json.dumps([{"id": HEX_A, "names": None, "toc-digest": "sha256:" + "c" * 64, "created": None, "Parent": HEX_B}]).encode()
    (layer,) = records.decode_records(Layer, data)
    assert layer.names == [] and layer.created == records.ZERO_TIME
    assert layer.parent == HEX_B  # Go matches keys case-insensitively
    assert layer.extra == {"toc-digest": "sha256:" + "c" * 64}
    again = json.loads(records.encode_records([layer]))[0]
    assert again["toc-digest"] == "sha256:" + "c" * 64 and again["parent"] == HEX_B and "Parent" not in again


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b"[1]",
        b"[{}]",
        b'[{"id":"x","names":"a"}]',
        b'[{"id":"x","compressed-size":"1"}]',
        b'[{"id":"x","compressed-size":1.5}]',
        b'[{"id":"x","compressed-size":9223372036854775808}]',
        b'[{"id":"x","uidset":[-1]}]',
        b'[{"id":"x","created":"2023-06-01T10:00:00"}]',
        b'[{"id":"x","created":"2023-13-01T10:00:00Z"}]',
        b'[{"id":"x","flags":[]}]',
        b"[{",
        b'[{"id":"x","x-new":NaN}]',
        b'[{"id":"x","x-new":1e400}]',
        b"\xff",
    ],
)
def test_what_go_cannot_parse_is_refused(raw: bytes) -> None:
    with pytest.raises(errors.CorruptRecords):
        records.decode_records(Layer, raw)


def test_images_with_invalid_digests_are_refused_as_go_refuses_them() -> None:
    with pytest.raises(errors.CorruptRecords):
        records.decode_records(Image, json.dumps([{"id": HEX_A, "digest": "sha256:abc"}]).encode())
    bad_manifest = {"id": HEX_A, "big-data-digests": {"manifest-x": "md5:00"}}
    with pytest.raises(errors.CorruptRecords):
        records.decode_records(Image, json.dumps([bad_manifest]).encode())
    other = {"id": HEX_A, "big-data-digests": {"config": "whatever"}}  # not a manifest key: Go does not check it
    assert records.decode_records(Image, json.dumps([other]).encode())[0].big_data_digests == {"config": "whatever"}


def test_empty_and_null_files_hold_no_records(tmp_path: Path) -> None:
    assert records.decode_records(Layer, b"") == [] and records.decode_records(Layer, b"null") == []
    assert records.load_records(Layer, str(tmp_path / "missing.json")) == []


def test_writer_refuses_what_go_would_choke_on(tmp_path: Path) -> None:
    with pytest.raises(errors.DuplicateName):
        records.encode_records([Image(id=HEX_A, names=["x"]), Image(id=HEX_B, names=["x"])])
    with pytest.raises(errors.DuplicateID):
        records.encode_records([Layer(id=HEX_A), Layer(id=HEX_A)])
    with pytest.raises(errors.InvalidID):
        records.encode_records([Layer(id="")])
    with pytest.raises(errors.CorruptRecords):
        records.encode_records([Layer(id=HEX_A, created="yesterday")])
    with pytest.raises(errors.CorruptRecords):
        records.encode_records([Layer(id=HEX_A, uncompressed_digest="sha256:xyz")])
    path = tmp_path / "layers.json"
    path.write_bytes(b"[]")
    with pytest.raises(errors.DuplicateID):
        records.save_records(str(path), [Layer(id=HEX_A), Layer(id=HEX_A)])
    assert path.read_bytes() == b"[]" and os.listdir(tmp_path) == ["layers.json"]


def test_non_ascii_is_written_as_go_writes_it() -> None:
    image = Image(id=HEX_A, metadata='{"a":"<é>&"}')
    assert b'"metadata":"{\\"a\\":\\"\\u003c\xc3\xa9\\u003e\\u0026\\"}"' in records.encode_records([image])
    assert records.decode_records(Image, records.encode_records([image]))[0].metadata == image.metadata


# -- IDs, times, big-data names, lookup -------------------------------------------------------


def test_ids() -> None:
    for _ in range(50):
        made = records.random_id()
        assert records.valid_id(made) and not made[:12].isdigit()
    diff = "sha256:" + "1" * 64
    assert records.layer_chain_id("", diff) == "1" * 64
    assert records.layer_chain_id(HEX_A, diff) == __import__("hashlib").sha256(f"{HEX_A}+{'1' * 64}".encode()).hexdigest()
    with pytest.raises(errors.InvalidID):
        records.image_id_for_config("sha256:12")


def test_times_are_printed_as_go_prints_them() -> None:
    import datetime as dt

    moment = dt.datetime(2023, 6, 1, 10, 0, 0, 120000, dt.timezone.utc)
    assert records.format_time(moment) == "2023-06-01T10:00:00.12Z"
    assert records.format_time(moment, 123456789) == "2023-06-01T10:00:00.123456789Z"
    assert records.format_time(moment.replace(microsecond=0)) == "2023-06-01T10:00:00Z"
    assert records.normalize_time("2023-06-01T12:00:00.500+02:00") == "2023-06-01T12:00:00.5+02:00"
    assert records.normalize_time("2023-06-01T10:00:00.000000000+00:00") == "2023-06-01T10:00:00Z"
    assert records.valid_time(records.now_time())
    assert records.valid_time("2023-06-01T10:00:00,5Z") and records.normalize_time("2023-06-01T10:00:00,5Z") == "2023-06-01T10:00:00.5Z"
    assert not records.valid_time("2023-06-01t10:00:00Z") and not records.valid_time("2023-06-01T10:00:00z")


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("manifest", "manifest"),
        ("a.b.0", "a.b.0"),
        ("sha256:abc", "=c2hhMjU2OmFiYw=="),
        ("manifest-sha256:ab", "=bWFuaWZlc3Qtc2hhMjU2OmFi"),
        ("signatures", "signatures"),
        ("Manifest", "=TWFuaWZlc3Q="),
        ("abcD", "abcD"),  # Go's loop never checks the last character
        ("é", "é"),
        ("éa", "=w6lh"),
    ],
)
def test_big_data_file_names(key: str, name: str) -> None:
    assert records.big_data_file_name(key) == name
    assert records.big_data_key_of_file(name) == key


def test_lookup_order_and_ambiguity() -> None:
    first, second = Image(id="ab" + "0" * 62, names=["n1"]), Image(id="ac" + "0" * 62, names=["ab"])
    assert records.find_image([first, second], "ab") is second  # a name wins over an ID prefix
    assert records.find_image([first, second], "ac") is second
    with pytest.raises(errors.AmbiguousID):
        records.find_image([first, second], "a")
    with pytest.raises(errors.ImageNotFound) as caught:
        records.find_image([first, second], "zz")
    assert isinstance(caught.value, oci_errors.ImageNotFound)
    with pytest.raises(errors.LayerNotFound):
        records.find_layer([], "")
    container = Container(id=HEX_A, layer=HEX_B)
    assert records.find_container([container], HEX_B) is container


def test_podman_containers_and_mounts_round_trip(real_store: RealStore, podman: str) -> None:
    containers_json = real_store.root / "vfs-containers" / "containers.json"
    mountpoints_json = real_store.run / "vfs-layers" / "mountpoints.json"
    layers_json = real_store.root / "vfs-layers" / "layers.json"
    container_id = real_store.podman("create", "--name", "pallet-c1", real_store.ref, "true").strip()
    try:
        merged = real_store.podman("mount", "pallet-c1").strip()
        files = [(Container, containers_json), (Mountpoint, mountpoints_json), (Layer, layers_json)]
        for kind, path in files:
            assert records.encode_records(records.load_records(kind, str(path))) == path.read_bytes(), path
        found = records.load_records(Container, str(containers_json))
        container = records.find_container(found, "pallet-c1")
        assert container.id == container_id and records.find_container(found, container.layer) is container
        assert json.loads(container.metadata)["name"] == "pallet-c1" and container.flags == {"MountLabel": "", "ProcessLabel": ""}
        (mount,) = records.load_records(Mountpoint, str(mountpoints_json))
        assert (mount.id, mount.path, mount.count) == (container.layer, merged, 1)
        layer = records.find_layer(records.load_records(Layer, str(layers_json)), container.layer)
        assert records.valid_id(layer.id) and layer.parent == records.find_image(
            records.load_records(Image, str(real_store.root / "vfs-images" / "images.json")), real_store.ref
        ).top_layer
        for kind, path in files:  # rewrite everything with our writer, then podman must carry on
            lock_dir = path.parent
            lock = get_lockfile(lock_dir / ("mountpoints.lock" if kind is Mountpoint else path.name.replace(".json", ".lock")))
            with lock.writing():
                records.save_records(str(path), records.load_records(kind, str(path)))
                lock.record_write()
        real_store.podman("umount", "pallet-c1")
        assert records.load_records(Mountpoint, str(mountpoints_json)) == []
    finally:
        real_store.podman("rm", "--force", "pallet-c1")
    assert records.load_records(Container, str(containers_json)) == []


# -- property: whatever we can build, we write in a form that parses back to itself ----------------

_text = st.text(max_size=12)
_ids = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_digests = _ids.map(lambda hex_: "sha256:" + hex_)
_times = st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)).map(records.format_time)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@given(
    st.lists(
        st.builds(
            Layer,
            id=_ids,
            names=st.lists(_text, max_size=2),
            parent=_text,
            metadata=_text,
            created=_times,
            compressed_digest=st.just("") | _digests,
            compressed_size=st.integers(0, 2**63 - 1),
            uids=st.lists(st.integers(0, 2**32 - 1), max_size=3),
            flags=st.dictionaries(_text, _json_values, max_size=3),
            extra=st.dictionaries(st.just("x-new").map(str) | st.just("toc-digest"), _json_values, max_size=2),
        ),
        max_size=4,
        unique_by=lambda layer: layer.id,
    )
)
@settings(max_examples=150, deadline=None)
def test_encoded_layers_parse_back(layers: list[Layer]) -> None:
    names = [name for layer in layers for name in layer.names]
    if len(names) != len(set(names)):
        with pytest.raises(errors.DuplicateName):
            records.encode_records(layers)
        return
    data = records.encode_records(layers)
    back = records.decode_records(Layer, data)
    assert records.encode_records(back) == data
    assert [(layer.id, layer.names, layer.flags, layer.extra) for layer in back] == [(layer.id, layer.names, layer.flags, layer.extra) for layer in layers]


def test_podman_accepts_nulls_and_unknown_keys_as_we_read_them(real_store: RealStore, podman: str) -> None:
    """What our reader takes (null for lists, maps, strings, times; unknown keys), Go takes too."""
    path = real_store.root / "vfs-images" / "images.json"
    lock = get_lockfile(real_store.root / "vfs-images" / "images.lock")
    with lock.writing():
        original = path.read_bytes()
        (raw,) = json.loads(original)
        edited = {**raw, "mapped-layers": None, "flags": None, "x-pallet-future": {"k": [1, None]}}
        path.write_bytes(json.dumps([edited]).encode())
        lock.record_write()
    try:
        (image,) = records.load_records(Image, str(path))
        assert image.extra == {"x-pallet-future": {"k": [1, None]}} and image.flags == {}
        (listed,) = _podman_images(real_store)
        assert listed["Id"] == image.id and listed["Names"] == [real_store.ref]
        with lock.writing():
            records.save_records(str(path), [image])  # we keep the unknown key
            lock.record_write()
        assert b'"x-pallet-future":{"k":[1,null]}' in path.read_bytes()
        assert [entry["Id"] for entry in _podman_images(real_store)] == [image.id]
    finally:
        with lock.writing():
            path.write_bytes(original)
            lock.record_write()


def test_every_key_we_write_is_a_struct_tag_in_the_real_podman(podman: str) -> None:
    """The Go binary keeps its struct tags: each of our keys must be one, omitempty where we omit."""
    import re

    tags = set(re.findall(rb'json:"([a-z_-]+(?:,omitempty)?)"', Path(podman).read_bytes()))
    for spec in (records.LAYER_SPEC, records.IMAGE_SPEC, records.CONTAINER_SPEC, records.MOUNTPOINT_SPEC):
        for key, _, _, always in spec:
            wanted = key.encode() if always and key != "created" else key.encode() + b",omitempty"  # time.Time: never omitted
            assert wanted in tags, wanted
    assert {b"container_id", b"host_id", b"size"} <= tags


def test_the_package_keeps_every_name_callers_import() -> None:
    """records became a package (model, codec, files, ids, lookup); the names stay importable from records."""
    public = {
        "Container", "IDMap", "Image", "Layer", "Mountpoint", "Record", "R", "ZERO_TIME", "CONTAINER_SPEC",
        "IMAGE_SPEC", "LAYER_SPEC", "MOUNTPOINT_SPEC", "Check", "Spec", "atomic_write", "big_data_file_name",
        "big_data_key_of_file", "check_records", "decode_records", "encode_records", "find_container", "find_image",
        "find_layer", "format_time", "go_json", "image_id_for_config", "images_by_digest", "layer_chain_id",
        "load_records", "lookup", "normalize_time", "now_time", "random_id", "save_records", "valid_digest",
        "valid_id", "valid_time"}
    assert set(records.__all__) == public and records.__all__ == sorted(records.__all__)
    assert all(hasattr(records, name) for name in public)
