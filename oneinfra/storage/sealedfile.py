"""A backup's file: a snapshot sealed with its cluster's data key, in
chunks, so that neither side holds a whole etcd in memory.

Layout: a magic line, a JSON header (whose cluster, which backup, which
key), then chunks, each a 4-byte length and AES-GCM's ciphertext. A chunk's
nonce is the header's random prefix, its index and whether it is the last
(the STREAM construction): chunks cannot be reordered, dropped or taken
from another file, and a file cut short lacks its last chunk. The header's
digest is every chunk's associated data, so it cannot be changed either.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import BackupInvalid

MAGIC = b"oneinfra etcd backup v1\n"
CHUNK = 4 * 1024 * 1024  # plain bytes a chunk holds (the last: up to this)
PREFIX_BYTES = 7  # nonce: 7 random, 4 of the chunk's index, 1 for "last"
TAG_BYTES = 16
MAX_HEADER = 4096
LENGTH = struct.Struct(">I")


class Header(msgspec.Struct, frozen=True):
    cluster: str
    cluster_id: str
    backup_id: str
    key_id: str
    nonce_prefix: bytes


def nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class SealedWriter:
    """Writes plain bytes into a file, sealed chunk by chunk; close() seals
    the last chunk (it may be empty) and must be called for a whole file."""

    def __init__(self, file: BinaryIO, header: Header, data_key: bytes) -> None:
        if len(header.nonce_prefix) != PREFIX_BYTES:
            raise ValueError("a nonce prefix is 7 bytes")
        self._file = file
        self._aead = AESGCM(data_key)
        self._prefix = header.nonce_prefix
        encoded = msgspec.json.encode(header)
        self._aad = hashlib.sha256(MAGIC + encoded).digest()
        self._pending = bytearray()
        self._index = 0
        file.write(MAGIC + LENGTH.pack(len(encoded)) + encoded)

    def write(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) > CHUNK:  # a whole chunk and more: not the last
            self._seal(bytes(self._pending[:CHUNK]), last=False)
            del self._pending[:CHUNK]

    def close(self) -> None:
        self._seal(bytes(self._pending), last=True)
        self._pending.clear()

    def _seal(self, plain: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(nonce(self._prefix, self._index, last), plain, self._aad)
        self._file.write(LENGTH.pack(len(sealed)) + sealed)
        self._index += 1


def read_header(file: BinaryIO) -> tuple[Header, bytes]:
    """The header, and the associated data it makes."""
    magic = file.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupInvalid("it is not a oneinfra etcd backup (its first line is not ours)")
    length = file.read(LENGTH.size)
    if len(length) < LENGTH.size or not 0 < (size := LENGTH.unpack(length)[0]) <= MAX_HEADER:
        raise BackupInvalid("its header is cut short or damaged")
    encoded = file.read(size)
    try:
        header = msgspec.json.decode(encoded, type=Header)
    except msgspec.DecodeError:
        raise BackupInvalid("its header is damaged") from None
    if len(header.nonce_prefix) != PREFIX_BYTES:
        raise BackupInvalid("its header is damaged")
    return header, hashlib.sha256(MAGIC + encoded).digest()


def open_chunks(file: BinaryIO, header: Header, aad: bytes, data_key: bytes) -> Iterator[bytes]:
    """The plain chunks, each checked; BackupInvalid at the first that is
    damaged, missing or extra."""
    aead = AESGCM(data_key)
    index = 0
    while True:
        length = file.read(LENGTH.size)
        if not length:
            raise BackupInvalid(f"it is cut short: its last chunk is missing (after {index})")
        if len(length) < LENGTH.size:
            raise BackupInvalid(f"it is cut short in chunk {index}")
        size = LENGTH.unpack(length)[0]
        if not TAG_BYTES <= size <= CHUNK + TAG_BYTES:
            raise BackupInvalid(f"chunk {index} is damaged (a length of {size})")
        sealed = file.read(size)
        if len(sealed) < size:
            raise BackupInvalid(f"it is cut short in chunk {index}")
        for last in (False, True):
            try:
                plain = aead.decrypt(nonce(header.nonce_prefix, index, last), sealed, aad)
                break
            except InvalidTag:
                continue
        else:
            raise BackupInvalid(
                f"chunk {index} does not open with cluster {header.cluster}'s key: "
                "the file was changed or damaged"
            )
        yield plain
        index += 1
        if last:
            if file.read(1):
                raise BackupInvalid("it has bytes after its last chunk")
            return


class Opened(msgspec.Struct, frozen=True):
    size: int
    sha256: str


def check_file(
    path: Path, cluster: str, cluster_id: str, backup_id: str, data_key: bytes
) -> Opened:
    """Opens the whole file for the cluster it must belong to; BackupInvalid
    says what is wrong (another cluster's, another backup's, damaged, cut
    short). Nothing is kept of its plain bytes but their size and digest."""
    digest, size = hashlib.sha256(), 0
    for chunk in read_sealed(path, cluster, cluster_id, backup_id, data_key):
        digest.update(chunk)
        size += len(chunk)
    return Opened(size=size, sha256=digest.hexdigest())


def read_sealed(
    path: Path, cluster: str, cluster_id: str, backup_id: str, data_key: bytes
) -> Iterator[bytes]:
    try:
        file = path.open("rb")
    except OSError as error:
        raise BackupInvalid(f"cannot read {path}: {error.strerror}") from None
    with file:
        header, aad = read_header(file)
        if header.cluster_id != cluster_id:
            raise BackupInvalid(
                f"it is a backup of cluster {header.cluster} ({header.cluster_id}), "
                f"not of {cluster} ({cluster_id})"
            )
        if header.backup_id != backup_id:
            raise BackupInvalid(f"it holds backup {header.backup_id}, not {backup_id}")
        yield from open_chunks(file, header, aad, data_key)
