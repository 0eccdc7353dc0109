"""Secrets at rest: the master key file, the key store, crypto-shredding."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from oneinfra.errors import DomainError, SecretsError
from oneinfra.pki.sealing import seal, unseal
from oneinfra.storage.keystore import KeyStore, load_or_create_master_key


def test_the_master_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path) == key


def test_a_master_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    load_or_create_master_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(SecretsError, match="readable by others"):
        load_or_create_master_key(path)


def test_a_master_key_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(SecretsError, match="5 bytes, not 32"):
        load_or_create_master_key(path)


def test_sealing_binds_the_key_id() -> None:
    data_key = os.urandom(32)
    sealed = seal("cluster-a", data_key, b"secret", os.urandom(12))
    assert unseal(sealed, data_key) == b"secret"
    forged = type(sealed)("cluster-b", sealed.nonce, sealed.ciphertext)
    with pytest.raises(InvalidTag):
        unseal(forged, data_key)


def test_keys_survive_a_reopen_and_need_the_same_master_key(tmp_path: Path) -> None:
    master = os.urandom(32)
    store = KeyStore(tmp_path / "keys.db", master)
    store.put("cluster-a", b"a" * 32)
    store.close()
    reopened = KeyStore(tmp_path / "keys.db", master)
    assert reopened.get("cluster-a") == b"a" * 32
    reopened.close()
    with pytest.raises(SecretsError, match="not written with this master key"):
        KeyStore(tmp_path / "keys.db", os.urandom(32))


def test_a_destroyed_key_is_gone_from_the_file(tmp_path: Path) -> None:
    master = os.urandom(32)
    store = KeyStore(tmp_path / "keys.db", master)
    doomed, kept = os.urandom(32), os.urandom(32)
    store.put("doomed", doomed)
    store.put("kept", kept)
    wrapped = store._db.execute("SELECT wrapped FROM data_keys WHERE key_id = 'doomed'").fetchone()[
        0
    ]
    assert wrapped in (tmp_path / "keys.db").read_bytes()
    store.destroy(["doomed"])
    assert "doomed" not in store
    with pytest.raises(DomainError, match="destroyed or unknown"):
        store.get("doomed")
    store.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert wrapped not in on_disk and b"doomed" not in on_disk
    assert KeyStore(tmp_path / "keys.db", master).get("kept") == kept


def test_retain_destroys_keys_of_what_no_longer_exists(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db", os.urandom(32))
    for key_id in ("a", "b", "c"):
        store.put(key_id, os.urandom(32))
    assert sorted(store.retain({"b"})) == ["a", "c"]
    assert "b" in store and "a" not in store
