"""TFRecord shards of tf.train.Example, written without importing TensorFlow.

TensorFlow costs about 8 s and 750 MB of memory to import (TF 2.21), more than
the whole corpus build needs, so this module encodes the two formats itself:

* tf.train.Example protobuf wire format, for the features of one note:
  `text`, `note_id`, `source`, `category` (bytes) and `subject_id` (int64).
* TFRecord framing: uint64 length, masked CRC32C of the length, data, masked
  CRC32C of the data (all little-endian). The CRC32C of a whole batch of
  records is computed with numpy table lookups, which keeps it at a few
  nanoseconds per byte.

  >>> record = encode_example({"text": b"Pt stable.", "subject_id": 7})
  >>> decode_example(record)
  {'text': b'Pt stable.', 'subject_id': 7}
  >>> hex(crc32c(b"123456789"))
  '0xe3069283'

`ShardWriter` spreads records over N shard files round-robin, named like
`train.tfrecord-00003-of-00016`, which `tf.data.TFRecordDataset` and seqio read.
"""

import functools
import struct
from typing import BinaryIO, Mapping, Union

import numpy as np

_POLY = 0x82F63B78  # CRC32C (Castagnoli), bit-reflected.
# NOTE: bytes are folded in blocks of 64, so the lookup table is 64 KiB and stays
# in the CPU cache; each message is padded in front to a multiple of 64 bytes.
_BLOCK = 64
_MAX_SHIFT_BITS = 40  # block shifts up to 2**40 blocks (64 TiB messages)


def _byte_table() -> np.ndarray:
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
  return table


_TABLE = _byte_table()


def _shift_zero_byte(state: np.ndarray) -> np.ndarray:
  """Advance CRC states over one zero byte."""
  return _TABLE[state & 0xFF] ^ (state >> 8)


def _apply_shift(tables: np.ndarray, state: np.ndarray) -> np.ndarray:
  """Apply a linear CRC state map given as 4 byte tables ([4, 256])."""
  return (tables[0][state & 0xFF] ^ tables[1][(state >> 8) & 0xFF]
          ^ tables[2][(state >> 16) & 0xFF] ^ tables[3][state >> 24])


def _build_tables() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
  """Return the per-position table, its column offsets and the block-shift tables.

  position[c * 256 + b] is the CRC contribution of byte b in column c of a
  64-byte block (distance 63 - c from the block end); shifts[k] maps a state
  over 64 * 2**k zero bytes.
  """
  position = np.empty((_BLOCK, 256), dtype=np.uint32)  # [column, byte]
  position[_BLOCK - 1] = _TABLE
  for column in range(_BLOCK - 2, -1, -1):
    position[column] = _shift_zero_byte(position[column + 1])
  unit = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None])
  shift = unit
  for _ in range(_BLOCK):
    shift = _shift_zero_byte(shift)  # [4, 256]
  shifts = [shift]
  for _ in range(_MAX_SHIFT_BITS - 1):
    # Squaring a linear map: apply it to the images of the unit vectors.
    shifts.append(_apply_shift(shifts[-1], shifts[-1]))
  offsets = (np.arange(_BLOCK, dtype=np.uint16) * 256)[None, :]  # [1, column]
  return position.reshape(-1), offsets, shifts


_POSITION, _COLUMN_OFFSETS, _BLOCK_SHIFTS = _build_tables()


def crc32c_batch(messages: list[bytes]) -> np.ndarray:
  """Return the CRC32C of every message, as a [len(messages)] uint32 array.

  CRC without its initial value is linear in the message and blind to leading
  zero bytes: the CRC is the XOR of one table entry per byte, chosen by the byte
  and its distance from the end. The initial value 0xFFFFFFFF equals
  complementing the first 4 bytes, so shorter messages take the scalar path.
  """
  lengths = np.fromiter((len(m) for m in messages), dtype=np.int64, count=len(messages))
  result = np.empty(len(messages), dtype=np.uint32)
  short = lengths < 4
  for i in np.flatnonzero(short):
    result[i] = crc32c(messages[i])
  if short.all():
    return result
  long_index = np.flatnonzero(~short)
  long_lengths = lengths[long_index]

  padding = (-long_lengths) % _BLOCK
  zeros = bytes(_BLOCK)
  pieces = []
  for i, pad in zip(long_index, padding):
    pieces += [zeros[:pad], messages[i]]
  data = np.frombuffer(bytearray().join(pieces), dtype=np.uint8)
  padded_lengths = long_lengths + padding
  block_counts = padded_lengths // _BLOCK
  starts = np.cumsum(padded_lengths) - long_lengths
  for k in range(4):
    data[starts + k] ^= 0xFF

  blocks = data.reshape(-1, _BLOCK)  # [blocks, 64]
  contribution = np.take(_POSITION, _COLUMN_OFFSETS + blocks)  # [blocks, 64]
  block_values = np.bitwise_xor.reduce(contribution, axis=1)  # [blocks]

  # Shift each block over the blocks that follow it in its message.
  first_block = np.cumsum(block_counts) - block_counts
  last_block = np.repeat(first_block + block_counts - 1, block_counts)
  following = last_block - np.arange(len(block_values))  # [blocks]
  for k in range(int(following.max()).bit_length()):
    selected = np.flatnonzero((following >> k) & 1)
    block_values[selected] = _apply_shift(_BLOCK_SHIFTS[k], block_values[selected])
  result[long_index] = np.bitwise_xor.reduceat(block_values, first_block) ^ np.uint32(0xFFFFFFFF)
  return result


def crc32c(data: bytes) -> int:
  """Return the CRC32C of `data` (scalar reference implementation)."""
  state = 0xFFFFFFFF
  table = _TABLE
  for byte in data:
    state = int(table[(state ^ byte) & 0xFF]) ^ (state >> 8)
  return state ^ 0xFFFFFFFF


def mask_crc(crc: np.ndarray) -> np.ndarray:
  """Apply the TFRecord CRC mask to uint32 values."""
  crc = crc.astype(np.uint64)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint_slow(value: int) -> bytes:
  if value < 0:
    value += 1 << 64
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


# NOTE: varints below 2**16 come from a table: every length of a note up to 64 KiB.
_VARINTS = [_varint_slow(n) for n in range(1 << 16)]


def _varint(value: int) -> bytes:
  if 0 <= value < 65536:
    return _VARINTS[value]
  return _varint_slow(value)


def _length_delimited(field: int, payload: bytes) -> bytes:
  return _VARINTS[field << 3 | 2] + _varint(len(payload)) + payload


def _bytes_feature(name: str, value: bytes) -> bytes:
  """Return the Features map entry of one single-value bytes feature."""
  return _bytes_entry(_entry_prefix(name), value)


@functools.lru_cache(maxsize=64)
def _entry_prefix(name: str) -> bytes:
  """Return the map-entry key (field 1) and the value tag (field 2) of feature `name`."""
  return _length_delimited(1, name.encode()) + b"\x12"


def _bytes_entry(prefix: bytes, value: bytes) -> bytes:
  # Nesting, inside out: BytesList.value (1), Feature.bytes_list (1), map entry
  # value (2, tag in `prefix`), Features.feature entry (1). Lengths are inlined
  # because this runs once per feature of every note.
  value_length = len(value)
  varint_value = _VARINTS[value_length] if value_length < 65536 else _varint_slow(value_length)
  list_length = 1 + len(varint_value) + value_length
  varint_list = _VARINTS[list_length] if list_length < 65536 else _varint_slow(list_length)
  feature_length = 1 + len(varint_list) + list_length
  varint_feature = (_VARINTS[feature_length] if feature_length < 65536
                    else _varint_slow(feature_length))
  entry_length = len(prefix) + len(varint_feature) + feature_length
  varint_entry = _VARINTS[entry_length] if entry_length < 65536 else _varint_slow(entry_length)
  return b"".join((b"\n", varint_entry, prefix, varint_feature, b"\n", varint_list, b"\n",
                   varint_value, value))


def encode_note(text: bytes, note_id: bytes, subject_id: int, source: bytes,
                category: bytes) -> bytes:
  """Serialize the Example of one corpus note (what `encode_example` would give)."""
  entries = b"".join((_bytes_entry(_TEXT_PREFIX, text), _bytes_entry(_NOTE_ID_PREFIX, note_id),
                      _int64_feature("subject_id", subject_id),
                      _bytes_entry(_SOURCE_PREFIX, source),
                      _bytes_entry(_CATEGORY_PREFIX, category)))
  length = len(entries)
  return b"".join((b"\n", _VARINTS[length] if length < 65536 else _varint_slow(length),
                   entries))


def _int64_feature(name: str, value: int) -> bytes:
  packed = _varint(value)
  int64_list = b"\n" + _varint(len(packed)) + packed  # Int64List.value, packed
  feature = b"\x1a" + _varint(len(int64_list)) + int64_list  # Feature.int64_list (field 3)
  entry = _entry_prefix(name) + _varint(len(feature)) + feature
  return b"\n" + _varint(len(entry)) + entry


_TEXT_PREFIX = _entry_prefix("text")
_NOTE_ID_PREFIX = _entry_prefix("note_id")
_SOURCE_PREFIX = _entry_prefix("source")
_CATEGORY_PREFIX = _entry_prefix("category")


def encode_example(features: Mapping[str, Union[bytes, int]]) -> bytes:
  """Serialize a tf.train.Example whose features are single bytes or int64 values."""
  entries = b"".join(_bytes_feature(name, value) if isinstance(value, bytes)
                     else _int64_feature(name, int(value)) for name, value in features.items())
  return b"\n" + _varint(len(entries)) + entries  # Example.features (field 1)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
  value, shift = 0, 0
  while True:
    byte = data[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    shift += 7
    if byte < 0x80:
      return value, pos


def _fields(data: bytes) -> list[tuple[int, bytes]]:
  """Split length-delimited protobuf fields (the only wire type Example uses here)."""
  fields, pos = [], 0
  while pos < len(data):
    key, pos = _read_varint(data, pos)
    size, pos = _read_varint(data, pos)
    fields.append((key >> 3, data[pos:pos + size]))
    pos += size
  return fields


def decode_example(record: bytes) -> dict[str, Union[bytes, int]]:
  """Parse what `encode_example` writes (for tests and inspection)."""
  features = {}
  for _, features_message in _fields(record):
    for _, entry in _fields(features_message):
      parts = dict(_fields(entry))
      name = parts[1].decode()
      kind, payload = _fields(parts[2])[0]
      inner = dict(_fields(payload))[1]
      if kind == 1:
        features[name] = inner
      else:
        value, _ = _read_varint(inner, 0)
        features[name] = value - (1 << 64) if value >= 1 << 63 else value
  return features


def frame_records(records: list[bytes]) -> bytes:
  """Return the TFRecord framing of `records`, concatenated."""
  headers = [struct.pack("<Q", len(r)) for r in records]
  crcs = mask_crc(crc32c_batch(headers + records))
  header_crcs, data_crcs = crcs[:len(records)], crcs[len(records):]
  pieces = []
  for record, header, header_crc, data_crc in zip(records, headers, header_crcs, data_crcs):
    pieces += [header, struct.pack("<I", int(header_crc)), record, struct.pack("<I", int(data_crc))]
  return b"".join(pieces)


def read_records(path: str) -> list[bytes]:
  """Read every record of a TFRecord file, checking both CRCs."""
  with open(path, "rb") as f:
    data = f.read()
  records, pos = [], 0
  while pos < len(data):
    (length,) = struct.unpack_from("<Q", data, pos)
    (length_crc,) = struct.unpack_from("<I", data, pos + 8)
    record = data[pos + 12:pos + 12 + length]
    (data_crc,) = struct.unpack_from("<I", data, pos + 12 + length)
    if (length_crc != int(mask_crc(np.array([crc32c(data[pos:pos + 8])]))[0])
        or data_crc != int(mask_crc(crc32c_batch([record]))[0])):
      raise ValueError(f"corrupt TFRecord at byte {pos} of {path}")
    records.append(record)
    pos += 16 + length
  return records


def shard_name(prefix: str, index: int, count: int) -> str:
  return f"{prefix}.tfrecord-{index:05d}-of-{count:05d}"


class ShardWriter:
  """Write records round-robin into `num_shards` TFRecord files under `directory`."""

  # NOTE: records are framed and flushed per shard in batches of about 1 MiB,
  # which bounds the buffered memory to num_shards MiB.
  FLUSH_BYTES = 1 << 20

  def __init__(self, directory: str, prefix: str, num_shards: int):
    if num_shards < 1:
      raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    self.paths = [f"{directory}/{shard_name(prefix, i, num_shards)}" for i in range(num_shards)]
    self._files: list[BinaryIO] = [open(p, "wb") for p in self.paths]
    self._pending: list[list[bytes]] = [[] for _ in self.paths]
    self._pending_bytes = [0] * num_shards
    self._next = 0
    self.num_records = 0

  def write(self, record: bytes) -> None:
    shard = self._next
    self._next = (self._next + 1) % len(self._files)
    self._pending[shard].append(record)
    self._pending_bytes[shard] += len(record)
    self.num_records += 1
    if self._pending_bytes[shard] >= self.FLUSH_BYTES:
      self._flush(shard)

  def _flush(self, shard: int) -> None:
    if self._pending[shard]:
      self._files[shard].write(frame_records(self._pending[shard]))
    self._pending[shard] = []
    self._pending_bytes[shard] = 0

  def close(self) -> None:
    for shard, f in enumerate(self._files):
      self._flush(shard)
      f.close()
