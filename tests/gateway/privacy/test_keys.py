from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from gateway.privacy import FieldCipher, KeyRing, KeyRingError
from gateway.privacy.keys import ENV_DATA_KEYS, ENV_INDEX_KEY, encode_key, generate_key


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _env(*data: tuple[str, bytes], index: bytes | None = None) -> dict[str, str]:
    return {
        ENV_DATA_KEYS: ",".join(f"{k}:{_b64(m)}" for k, m in data),
        ENV_INDEX_KEY: _b64(index if index is not None else generate_key()),
    }


def test_first_run_creates_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    ring = KeyRing.load(tmp_path, {})
    key_dir = tmp_path / "keys"
    key_file = key_dir / "keyring.json"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert ring.source == "file" and ring.active_key_id == "k1"

    token = FieldCipher(ring).encrypt("张三", table="t", column="c", row_id="1")
    again = KeyRing.load(tmp_path, {})
    assert FieldCipher(again).decrypt(token, table="t", column="c", row_id="1") == "张三"
    assert again.index_key == ring.index_key


def test_environment_wins_and_nothing_is_written(tmp_path: Path) -> None:
    k2, k1 = generate_key(), generate_key()
    ring = KeyRing.load(tmp_path, _env(("k2", k2), ("k1", k1)))
    assert ring.source == "environment"
    assert ring.key_ids == ("k2", "k1")
    assert ring.active_key_id == "k2"
    assert not (tmp_path / "keys").exists()
    # A value written under k1 elsewhere still reads.
    old = FieldCipher(KeyRing.from_keys([("k1", k1)], generate_key())).encrypt("x", table="t", column="c", row_id=1)
    assert FieldCipher(ring).decrypt(old, table="t", column="c", row_id=1) == "x"


def test_environment_accepts_urlsafe_unpadded_keys(tmp_path: Path) -> None:
    material = generate_key()
    urlsafe = base64.urlsafe_b64encode(material).decode().rstrip("=")
    env = {ENV_DATA_KEYS: f" k1:{urlsafe} ", ENV_INDEX_KEY: _b64(generate_key())}
    assert KeyRing.load(tmp_path, env).active_key_id == "k1"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({ENV_DATA_KEYS: "k1:" + _b64(generate_key())}, ENV_INDEX_KEY),
        ({ENV_INDEX_KEY: _b64(generate_key())}, ENV_DATA_KEYS),
        ({ENV_DATA_KEYS: _b64(generate_key()), ENV_INDEX_KEY: _b64(generate_key())}, "k1:<base64 key>"),
        ({ENV_DATA_KEYS: "k1:not base64!!", ENV_INDEX_KEY: _b64(generate_key())}, "not valid base64"),
        ({ENV_DATA_KEYS: "k1:" + _b64(os.urandom(16)), ENV_INDEX_KEY: _b64(generate_key())}, "must be 32 bytes"),
        ({ENV_DATA_KEYS: "k1:" + _b64(bytes(32)), ENV_INDEX_KEY: _b64(generate_key())}, "too weak"),
        ({ENV_DATA_KEYS: "k1:" + _b64(b"ab" * 16), ENV_INDEX_KEY: _b64(generate_key())}, "too weak"),
        ({ENV_DATA_KEYS: "k1:" + _b64(generate_key()), ENV_INDEX_KEY: _b64(b"x" * 32)}, "too weak"),
        ({ENV_DATA_KEYS: "bad.id:" + _b64(generate_key()), ENV_INDEX_KEY: _b64(generate_key())}, "key id"),
    ],
)
def test_malformed_or_weak_environment_keys_are_refused(tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    with pytest.raises(KeyRingError) as info:
        KeyRing.load(tmp_path, env)
    assert fragment in str(info.value)
    assert not (tmp_path / "keys").exists()


def test_duplicate_ids_repeated_material_and_shared_index_key_are_refused(tmp_path: Path) -> None:
    a, b = generate_key(), generate_key()
    with pytest.raises(KeyRingError, match="appears twice"):
        KeyRing.load(tmp_path, _env(("k1", a), ("k1", b)))
    with pytest.raises(KeyRingError, match="repeats the material"):
        KeyRing.load(tmp_path, _env(("k2", a), ("k1", a)))
    with pytest.raises(KeyRingError, match="index key must differ"):
        KeyRing.load(tmp_path, _env(("k1", a), index=a))


def test_errors_never_show_key_material(tmp_path: Path) -> None:
    short = _b64(os.urandom(20))
    with pytest.raises(KeyRingError) as info:
        KeyRing.load(tmp_path, {ENV_DATA_KEYS: f"k1:{short}", ENV_INDEX_KEY: _b64(generate_key())})
    assert short not in str(info.value)
    ring = KeyRing.generate()
    assert encode_key(ring.index_key) not in repr(ring)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    KeyRing.load(tmp_path, {})
    key_file = tmp_path / "keys" / "keyring.json"
    key_file.chmod(0o644)
    with pytest.raises(KeyRingError, match="chmod 600"):
        KeyRing.load(tmp_path, {})


def test_damaged_key_file_is_refused(tmp_path: Path) -> None:
    KeyRing.load(tmp_path, {})
    key_file = tmp_path / "keys" / "keyring.json"
    document = json.loads(key_file.read_text())
    document["data_keys"][0]["key"] = _b64(bytes(32))
    key_file.write_text(json.dumps(document))
    with pytest.raises(KeyRingError, match="too weak"):
        KeyRing.load(tmp_path, {})
    key_file.write_text("{not json")
    with pytest.raises(KeyRingError, match="not valid JSON"):
        KeyRing.load(tmp_path, {})


def test_missing_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match="no key file"):
        KeyRing.load(tmp_path, {}, create=False)


def test_add_data_key_activates_it_and_a_running_ring_follows(tmp_path: Path) -> None:
    admin = KeyRing.load(tmp_path, {})
    server = KeyRing.load(tmp_path, {})  # another process, loaded before the rotation
    before = FieldCipher(server).encrypt("李四", table="t", column="c", row_id="r")

    new_id = admin.add_data_key()
    assert new_id == "k2"
    assert admin.key_ids == ("k2", "k1")
    after = FieldCipher(admin).encrypt("王五", table="t", column="c", row_id="r")
    assert after.startswith("v1.k2.")

    # The server meets a k2 value before its periodic check: it re-reads the key file at once.
    assert FieldCipher(server).decrypt(after, table="t", column="c", row_id="r") == "王五"
    assert server.active_key_id == "k2"
    assert FieldCipher(admin).decrypt(before, table="t", column="c", row_id="r") == "李四"
    assert stat.S_IMODE((tmp_path / "keys" / "keyring.json").stat().st_mode) == 0o600


def test_remove_data_key(tmp_path: Path) -> None:
    ring = KeyRing.load(tmp_path, {})
    ring.add_data_key()
    with pytest.raises(KeyRingError, match="active key"):
        ring.remove_data_key("k2")
    ring.remove_data_key("k1")
    assert KeyRing.load(tmp_path, {}).key_ids == ("k2",)


def test_environment_rings_cannot_be_changed(tmp_path: Path) -> None:
    ring = KeyRing.load(tmp_path, _env(("k1", generate_key())))
    with pytest.raises(KeyRingError, match=ENV_DATA_KEYS):
        ring.add_data_key()


def test_two_processes_creating_keys_at_once_agree(tmp_path: Path) -> None:
    # Simulate the race: both see no file; the second writer must not replace the first one's keys.
    from gateway.privacy import keys as keys_module

    path = tmp_path / "keys" / "keyring.json"
    keys_module._create_key_file(path)
    first = path.read_bytes()
    keys_module._create_key_file(path)
    assert path.read_bytes() == first
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
