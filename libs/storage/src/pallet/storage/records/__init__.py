"""The record files of containers/storage 1.43: layers.json, images.json, containers.json, mountpoints.json.

    model     the record dataclasses (Layer, Image, Container, Mountpoint, IDMap)
    codec     decode/encode as Go's encoding/json does, the per-kind key specs, check_records
    files     load_records, save_records, atomic_write
    ids       IDs, digests, RFC3339 times, big-data file names
    lookup    find a record by ID, name or unique ID prefix

Format doc sections 2.1, 4.1, 4.2 and 5. Contracts:

- Reading accepts exactly what Go's encoding/json would decode into the
  1.43 structs: a JSON array (or ``null``) of objects; keys matched as Go
  matches them (exact, else ASCII case-insensitive, the last one wins);
  ``null`` for any field means "empty"; a value of the wrong JSON type, an
  out-of-range integer, a timestamp without a timezone or an invalid image
  digest raises :class:`CorruptRecords` (Go would fail too; 1.43 would then
  silently treat the file as empty, risk R1, so we refuse instead).
- Unknown keys (those that match no field even case-insensitively) are kept
  in ``extra`` and written back after the known keys, so records written by
  a newer Go are not cut down by us. Go ignores such keys.
- Writing produces compact JSON with Go's key names and order, ``omitempty``
  as Go has it (``created`` always; containers' ``image`` and ``layer``
  always; mountpoints' three keys always), UTF-8 with Go's escapes and sorted map keys. It refuses duplicate
  IDs, duplicate names, empty IDs and invalid digests; it parses its own
  output back before the atomic rename (temp file in the same directory,
  fdatasync, chmod 0600, rename, fsync of the directory).
- Timestamps are kept as the RFC3339 text read, so that nanoseconds survive
  a round trip; :func:`format_time` makes new ones the way Go prints them.
"""

from __future__ import annotations

from pallet.storage.records.codec import (
    CONTAINER_SPEC,
    Check,
    IMAGE_SPEC,
    LAYER_SPEC,
    MOUNTPOINT_SPEC,
    Spec,
    check_records,
    decode_records,
    encode_records,
    go_json,
)
from pallet.storage.records.files import (
    atomic_write,
    load_records,
    save_records,
)
from pallet.storage.records.ids import (
    ZERO_TIME,
    big_data_file_name,
    big_data_key_of_file,
    format_time,
    image_id_for_config,
    layer_chain_id,
    normalize_time,
    now_time,
    random_id,
    valid_digest,
    valid_id,
    valid_time,
)
from pallet.storage.records.lookup import (
    find_container,
    find_image,
    find_layer,
    images_by_digest,
    lookup,
)
from pallet.storage.records.model import (
    Container,
    IDMap,
    Image,
    Layer,
    Mountpoint,
    R,
    Record,
)

__all__ = [
    "CONTAINER_SPEC",
    "Check",
    "Container",
    "IDMap",
    "IMAGE_SPEC",
    "Image",
    "LAYER_SPEC",
    "Layer",
    "MOUNTPOINT_SPEC",
    "Mountpoint",
    "R",
    "Record",
    "Spec",
    "ZERO_TIME",
    "atomic_write",
    "big_data_file_name",
    "big_data_key_of_file",
    "check_records",
    "decode_records",
    "encode_records",
    "find_container",
    "find_image",
    "find_layer",
    "format_time",
    "go_json",
    "image_id_for_config",
    "images_by_digest",
    "layer_chain_id",
    "load_records",
    "lookup",
    "normalize_time",
    "now_time",
    "random_id",
    "save_records",
    "valid_digest",
    "valid_id",
    "valid_time",
]
