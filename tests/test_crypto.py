"""The crypto properties a center relies on: what is sealed opens only where it was sealed,
any change to a stored byte is caught, and the three failure kinds (wrong passphrase,
tampered data, unknown format) stay distinct. Test vectors pin the on-disk formats."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
import time
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.public
import nacl.pwhash.argon2id as argon2id
import pytest
from conftest import ADMIN, NOW, PASSPHRASE
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import Vault, access, consents, crypto, keyring, notes, seeds, slots, staff
from vault.errors import ExitCode, IntegrityError, UnsupportedVersion, WrongPassphrase
from vault.session import Unlocked
from vault.store import NoteRow
from vault.upgrade import SEALED_SETTINGS_V2 as SEALED_SETTINGS

VECTORS = json.loads((Path(__file__).parent / "vectors" / "v2.json").read_text("utf-8"))
FAST = crypto.KDF_PROFILES["interactive"]
KEY = bytes(range(32))
PLACE = ("N-3XH8-P2DW-5", "C-7K2M-9Q4F", 1)
AD = keyring.note_ad(*PLACE)


def flip(blob: bytes, position: int, mask: int = 0x01) -> bytes:
    out = bytearray(blob)
    out[position] ^= mask
    return bytes(out)


def with_checksum(body: bytes) -> bytes:
    """A slot body with a fresh checksum, as someone editing the file would make it."""
    return body + crypto.digest(body, 16)


def open_one(key: bytes, blob: object, ad: bytes = AD) -> str:
    (text,) = keyring.open_record(key, blob, ad, 1, where="test")  # type: ignore[arg-type]
    return text


# -- AEAD records ----------------------------------------------------------------------


@given(fields=st.lists(st.text(max_size=300), min_size=1, max_size=5))
@settings(max_examples=50, deadline=None)
def test_a_record_round_trips_any_text_padded_to_256_bytes(fields: list[str]) -> None:
    blob = keyring.seal_record(KEY, fields, AD)
    assert keyring.open_record(KEY, blob, AD, len(fields), where="test") == fields
    assert blob[0] == crypto.BLOB_V1
    size = sum(4 + len(f.encode("utf-8")) for f in fields)
    assert len(blob) == crypto.BLOB_OVERHEAD + max(256, -(-size // 256) * 256)


def test_each_encryption_uses_a_fresh_nonce() -> None:
    blobs = {keyring.seal_record(KEY, ["same text"], AD) for _ in range(50)}
    assert len(blobs) == 50
    assert len({b[1 : 1 + crypto.NONCE_BYTES] for b in blobs}) == 50


@pytest.mark.parametrize(
    "other",
    [
        keyring.note_ad("N-3XH8-P2DW-6", "C-7K2M-9Q4F", 1),
        keyring.note_ad("N-3XH8-P2DW-5", "C-7K2M-9Q4G", 1),
        keyring.note_ad("N-3XH8-P2DW-5", "C-7K2M-9Q4F", 2),
        keyring.consent_ad("C-7K2M-9Q4F", 1),
    ],
)
def test_a_record_moved_to_another_place_fails(other: bytes) -> None:
    blob = keyring.seal_record(KEY, ["the note"], AD)
    with pytest.raises(IntegrityError):
        open_one(KEY, blob, other)


def test_wrong_key_fails() -> None:
    blob = keyring.seal_record(KEY, ["the note"], AD)
    with pytest.raises(IntegrityError):
        open_one(bytes(32), blob)


BLOB = keyring.seal_record(KEY, ["a short journal note"], AD)


@given(position=st.integers(0, len(BLOB) - 1), mask=st.integers(1, 255))
@settings(max_examples=300, deadline=None)
def test_any_flipped_byte_is_caught(position: int, mask: int) -> None:
    expected = UnsupportedVersion if position == 0 else IntegrityError
    with pytest.raises(expected):
        open_one(KEY, flip(BLOB, position, mask))


@pytest.mark.parametrize("size", range(0, len(BLOB), 7))
def test_truncated_blob_is_caught(size: int) -> None:
    with pytest.raises(IntegrityError):
        open_one(KEY, BLOB[:size])


def test_appended_bytes_are_caught() -> None:
    with pytest.raises(IntegrityError):
        open_one(KEY, BLOB + b"\x00")


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",  # no field at all
        struct.pack(">I", 300) + b"x" * 252,  # a length beyond the end
        keyring.encode_record(["x"])[:-1],  # not a whole number of 256-byte blocks
        keyring.encode_record(["x"])[:-1] + b"\x01",  # padding that is not zero
        struct.pack(">I", 2) + b"\xff\xfe" + bytes(250),  # not UTF-8
    ],
)
def test_a_malformed_record_that_authenticates_is_still_refused(plaintext: bytes) -> None:
    """Only a holder of the key can make one; nok refuses it rather than guess."""
    blob = crypto.seal(KEY, plaintext, AD)
    with pytest.raises(IntegrityError):
        open_one(KEY, blob)


@pytest.mark.parametrize("version", [0, 2, 0x7F, 0xFF])
def test_unknown_version_is_its_own_error(version: int) -> None:
    blob = bytes([version]) + BLOB[1:]
    with pytest.raises(UnsupportedVersion) as info:
        open_one(KEY, blob)
    assert not isinstance(info.value, IntegrityError)
    assert info.value.exit_code == ExitCode.UNSUPPORTED_VERSION
    assert str(version) in info.value.message


def test_the_three_failures_have_distinct_classes_and_exit_codes() -> None:
    classes = (WrongPassphrase, IntegrityError, UnsupportedVersion)
    for a in classes:
        for b in classes:
            if a is not b:
                assert not issubclass(a, b)
    assert len({c.exit_code for c in classes}) == 3


def test_a_non_bytes_value_is_tampering_not_a_crash() -> None:
    for value in ("text in a blob column", 12345, None):
        with pytest.raises(IntegrityError):
            open_one(KEY, value)


def test_pynacl_type_errors_are_not_reported_as_tampering() -> None:
    """PyNaCl's TypeError subclasses CryptoError; a bad key is a bug, never "tampered data"."""
    with pytest.raises(TypeError) as info:
        open_one(b"too short", BLOB)
    assert not isinstance(info.value, IntegrityError)
    _, public = crypto.new_keypair()
    sealed = slots.seal_master(KEY, public_key=public, name=ADMIN, master_version=1)
    with pytest.raises(TypeError) as info:
        slots.open_master(sealed, secret=b"short", name=ADMIN, master_version=1)
    assert not isinstance(info.value, IntegrityError)


def test_data_and_vault_keys_are_bound_to_their_place() -> None:
    """A consent's data key wrapped for one reader opens for that reader of that consent,
    at that key version, in that vault only (docs/format.md, "A consent's keys")."""
    wrap_key, data_key = crypto.new_key(), crypto.new_key()
    place = ("0123456789abcdef", "C-AAAA-AAAA", ADMIN, 1)
    wrapped = crypto.seal(wrap_key, data_key, access.wrap_ad(*place))
    assert crypto.unseal(wrap_key, wrapped, access.wrap_ad(*place), where="x") == data_key
    for other in (
        ("0123456789abcdee", "C-AAAA-AAAA", ADMIN, 1),
        ("0123456789abcdef", "C-AAAA-AAAB", ADMIN, 1),
        ("0123456789abcdef", "C-AAAA-AAAA", "bob", 1),
        ("0123456789abcdef", "C-AAAA-AAAA", ADMIN, 2),
    ):
        with pytest.raises(IntegrityError):
            crypto.unseal(wrap_key, wrapped, access.wrap_ad(*other), where="x")
    master = wrap_key
    vault_key = keyring.wrap_vault_key(master, data_key, purpose="audit", master_version=1)
    with pytest.raises(IntegrityError):
        keyring.unwrap_vault_key(master, vault_key, purpose="backup", master_version=1)
    with pytest.raises(IntegrityError):
        keyring.unwrap_vault_key(master, vault_key, purpose="audit", master_version=2)


def test_bind_is_unambiguous() -> None:
    assert crypto.bind("ab", "c") != crypto.bind("a", "bc")
    assert crypto.bind("a", "") != crypto.bind("a")
    assert crypto.bind(1) == crypto.bind("1")
    prefix = crypto.bind("notes", "C-1")
    assert crypto.extend(prefix, 3, b"\x00") == crypto.bind("notes", "C-1", 3, b"\x00")


# crypto.py calls libsodium through PyNaCl's cffi handle on the bulk paths: every result
# must be exactly what nacl.bindings gives, and every size check nacl.bindings makes must
# still be made (a wrong-sized key handed to C would be read past its end).


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.binary(max_size=90), st.binary(min_size=24, max_size=24))
def test_fast_seal_is_exactly_libsodium_through_nacl_bindings(
    plain: bytes, ad: bytes, nonce: bytes
) -> None:
    blob = crypto.seal(KEY, plain, ad, nonce=nonce)
    body = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, b"\x01" + ad, nonce, KEY)
    assert blob == b"\x01" + nonce + body
    assert crypto.unseal(KEY, blob, ad, where="x") == plain
    opened = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(body, b"\x01" + ad, nonce, KEY)
    assert opened == plain


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.binary(min_size=32, max_size=32))
def test_fast_mac_is_keyed_blake2b_256(data: bytes, key: bytes) -> None:
    expected = sodium.crypto_generichash_blake2b_salt_personal(data, digest_size=32, key=key)
    assert crypto.mac(key, data) == expected
    assert crypto.mac(key, data) == hashlib.blake2b(data, key=key, digest_size=32).digest()


@pytest.mark.parametrize("key", [b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), "k" * 32])
def test_fast_paths_refuse_a_wrong_key_as_a_bug(key: Any) -> None:
    for call in (
        lambda: crypto.seal(key, b"text", b"ad"),
        lambda: crypto.unseal(key, BLOB, AD, where="x"),
        lambda: crypto.mac(key, b"data"),
    ):
        with pytest.raises(TypeError) as info:
            call()
        assert not isinstance(info.value, IntegrityError)


def test_fast_unseal_refuses_a_short_or_wrong_nonce_blob_as_tampering() -> None:
    for blob in (BLOB[: crypto.BLOB_OVERHEAD - 1], BLOB[:1] + BLOB[2:], b"\x01" + bytes(40)):
        with pytest.raises(IntegrityError):
            crypto.unseal(KEY, blob, AD, where="x")


# -- key slots ---------------------------------------------------------------------------

SECRET = bytes(range(0xA0, 0xC0))
ROOT = bytes(range(0x40, 0x60))


@pytest.fixture(scope="module")
def slot() -> bytes:
    """A version-2 slot (format 3), bound to the vault's root fingerprint ``ROOT``."""
    return slots.wrap_secret(
        SECRET, name=ADMIN, passphrase=PASSPHRASE.encode(), params=FAST, root=ROOT
    )


def unwrap(slot: bytes, name: str = ADMIN, passphrase: bytes = PASSPHRASE.encode()) -> bytes:
    return slots.unwrap_secret(slot, name=name, passphrase=passphrase, root=ROOT)


def test_slot_round_trip_and_wrong_passphrase(slot: bytes) -> None:
    assert len(slot) == slots.SLOT_BYTES
    assert slot[0] == slots.SLOT_V2
    assert unwrap(slot) == SECRET
    with pytest.raises(WrongPassphrase) as info:
        unwrap(slot, passphrase=b"correct horse battery stapler")
    assert info.value.exit_code == ExitCode.WRONG_PASSPHRASE
    assert PASSPHRASE not in info.value.message


def test_slot_copied_to_another_name_does_not_open(slot: bytes) -> None:
    with pytest.raises(WrongPassphrase):
        unwrap(slot, name="bob")


def test_slot_copied_into_another_vault_does_not_open(slot: bytes) -> None:
    """A consistent forgery of the whole chain has another root: the slot stays shut."""
    with pytest.raises(WrongPassphrase):
        slots.unwrap_secret(
            slot, name=ADMIN, passphrase=PASSPHRASE.encode(), root=crypto.digest(ROOT)
        )


def test_a_version_2_slot_is_never_opened_as_format_2(slot: bytes) -> None:
    with pytest.raises(UnsupportedVersion):
        slots.unwrap_secret(slot, name=ADMIN, passphrase=PASSPHRASE.encode())


def test_every_damaged_slot_byte_is_an_integrity_error(slot: bytes) -> None:
    """The checksum tells a damaged slot from a wrong passphrase, before any derivation."""
    for position in range(len(slot)):
        expected = UnsupportedVersion if position == 0 else IntegrityError
        with pytest.raises(expected):
            unwrap(flip(slot, position))


@pytest.mark.parametrize("size", [0, 1, 30, slots.SLOT_BYTES - 1, slots.SLOT_BYTES + 1])
def test_truncated_or_extended_slot_is_an_integrity_error(slot: bytes, size: int) -> None:
    damaged = (slot + b"\x00")[:size]
    with pytest.raises(IntegrityError):
        unwrap(damaged)


def test_unknown_kdf_algorithm_is_unsupported(slot: bytes) -> None:
    body = bytearray(slot[:-16])
    body[1] = 2
    with pytest.raises(UnsupportedVersion):
        unwrap(with_checksum(bytes(body)), passphrase=b"x")


def _retuned(slot: bytes, opslimit: int, memlimit: int) -> bytes:
    header = struct.pack(">BBIQ", slot[0], 1, opslimit, memlimit)
    return with_checksum(header + slot[14:-16])


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [
        (2, 64 * 2**30),  # 64 GiB
        (2, 2**64 - 1),
        (2**32 - 1, FAST.memlimit),  # minutes of CPU
        (0, FAST.memlimit),
        (2, 1024),
    ],
)
def test_kdf_cost_outside_the_caps_is_refused_before_deriving(
    slot: bytes, opslimit: int, memlimit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real_kdf = argon2id.kdf

    def spy(*args: object, **kwargs: object) -> bytes:
        calls.append(args)
        return real_kdf(*args, **kwargs)

    monkeypatch.setattr(crypto.argon2id, "kdf", spy)
    tampered = _retuned(slot, opslimit, memlimit)
    started = time.perf_counter()
    with pytest.raises(crypto.KdfLimitExceeded) as info:
        unwrap(tampered)
    assert time.perf_counter() - started < 0.5
    assert calls == []
    assert info.value.exit_code == ExitCode.INTEGRITY
    assert not isinstance(info.value, WrongPassphrase)


def test_kdf_caps_admit_every_profile() -> None:
    for name, params in crypto.KDF_PROFILES.items():
        crypto.check_kdf(params, name=name)


def test_kdf_cost_cannot_be_lowered_by_editing_the_header(slot: bytes) -> None:
    """The header is authenticated: cheaper parameters with a fixed checksum do not open."""
    cheaper = _retuned(slot, argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN)
    with pytest.raises(WrongPassphrase):
        unwrap(cheaper)


# -- the sealed master key of format 2 (read by nok upgrade) --------------------------------


def test_sealed_master_opens_only_for_its_name_and_version() -> None:
    secret, public = crypto.new_keypair()
    master = crypto.new_key()
    sealed = slots.seal_master(master, public_key=public, name=ADMIN, master_version=3)
    assert slots.open_master(sealed, secret=secret, name=ADMIN, master_version=3) == master
    for name, version in (("bob", 3), (ADMIN, 2), (ADMIN, 4)):
        with pytest.raises(IntegrityError):
            slots.open_master(sealed, secret=secret, name=name, master_version=version)
    other_secret, _ = crypto.new_keypair()
    with pytest.raises(IntegrityError):
        slots.open_master(sealed, secret=other_secret, name=ADMIN, master_version=3)


def test_damaged_sealed_master_is_caught() -> None:
    secret, public = crypto.new_keypair()
    sealed = slots.seal_master(KEY, public_key=public, name=ADMIN, master_version=1)
    for position in range(len(sealed)):
        expected = UnsupportedVersion if position == 0 else IntegrityError
        with pytest.raises(expected):
            slots.open_master(flip(sealed, position), secret=secret, name=ADMIN, master_version=1)
    for size in range(len(sealed)):
        with pytest.raises(IntegrityError):
            slots.open_master(sealed[:size], secret=secret, name=ADMIN, master_version=1)


@pytest.mark.parametrize("inner", [b"", b"\x00", b"\x00\x05ab"])
def test_malformed_content_of_a_valid_sealed_box_is_caught(inner: bytes) -> None:
    """Anyone with the public key can make a sealed box; its content is untrusted."""
    secret, public = crypto.new_keypair()
    box = nacl.public.SealedBox(nacl.public.PublicKey(public))
    blob = bytes([crypto.SEALED_V1]) + box.encrypt(inner)
    with pytest.raises(IntegrityError):
        slots.open_master(blob, secret=secret, name=ADMIN, master_version=1)


# -- tampering inside a real vault -------------------------------------------------------


def _consent(u: Unlocked, subject: str = "Kari") -> consents.Consent:
    data = consents.ConsentInput(
        subject=subject, purpose="follow-up", categories=("conversation-notes",)
    )
    return consents.add(u, data)


def _sql(u: Unlocked, statement: str, *params: object) -> None:
    with u.store.write():
        u.store.conn.execute(statement, params)


def _column(u: Unlocked, table: str, column: str, row_id: str) -> bytes:
    sql = f"SELECT {column} FROM {table} WHERE id = ?"  # noqa: S608 (constant names)
    row = u.store.conn.execute(sql, [row_id]).fetchone()
    return bytes(row[0])


Filled = tuple[Unlocked, str, str, list[str]]


@pytest.fixture
def filled(unlocked: Unlocked) -> Filled:
    a = _consent(unlocked, "Kari").id
    b = _consent(unlocked, "Ola").id
    ids = [notes.add(unlocked, a, f"note {i}").id for i in range(2)]
    ids.append(notes.add(unlocked, b, "note under b").id)
    return unlocked, a, b, ids


def test_note_record_copied_to_another_note_fails(filled: Filled) -> None:
    u, _, _, ids = filled
    record = _column(u, "notes", "record", ids[0])
    _sql(u, "UPDATE notes SET record = ? WHERE id = ?", record, ids[1])
    assert notes.show(u, ids[0]).text == "note 0"
    with pytest.raises(IntegrityError):
        notes.show(u, ids[1])


def test_consent_record_copied_into_a_note_fails(filled: Filled) -> None:
    u, a, _, ids = filled
    _sql(u, "UPDATE notes SET record = ? WHERE id = ?", _column(u, "consents", "record", a), ids[0])
    with pytest.raises(IntegrityError):
        notes.show(u, ids[0])


def test_note_moved_to_another_consent_fails(filled: Filled) -> None:
    u, _, b, ids = filled
    _sql(u, "UPDATE notes SET consent_id = ? WHERE id = ?", b, ids[0])
    with pytest.raises(IntegrityError):
        notes.show(u, ids[0])


def test_note_key_version_changed_fails(filled: Filled) -> None:
    u, _, _, ids = filled
    _sql(u, "UPDATE notes SET key_version = 2 WHERE id = ?", ids[0])
    with pytest.raises(IntegrityError):
        notes.show(u, ids[0])


def test_note_record_replaced_by_text_is_tampering(filled: Filled) -> None:
    u, _, _, ids = filled
    _sql(u, "UPDATE notes SET record = 'plain words' WHERE id = ?", ids[0])
    with pytest.raises(IntegrityError):
        notes.show(u, ids[0])


def test_consent_record_copied_from_another_consent_fails(filled: Filled) -> None:
    u, a, b, _ = filled
    _sql(u, "UPDATE consents SET record = ? WHERE id = ?", _column(u, "consents", "record", b), a)
    with pytest.raises(IntegrityError):
        consents.show(u, a)


def _wrap(u: Unlocked, consent_id: str, reader: str = ADMIN) -> bytes:
    row = u.store.conn.execute(
        "SELECT wrapped FROM consent_keys WHERE consent_id = ? AND reader = ?",
        [consent_id, reader],
    ).fetchone()
    return bytes(row[0])


def test_a_key_wrap_copied_to_another_consent_fails(filled: Filled) -> None:
    u, a, b, _ = filled
    _sql(
        u,
        "UPDATE consent_keys SET wrapped = ? WHERE consent_id = ? AND reader = ?",
        _wrap(u, a),
        b,
        ADMIN,
    )
    u.forget_data_key(b)
    with pytest.raises(IntegrityError):
        consents.show(u, b)
    assert consents.show(u, a).subject == "Kari"


def test_a_key_wrap_moved_to_another_reader_fails(filled: Filled) -> None:
    """The admins' wrap copied over the contact person's: bound to its reader, it does not
    open under her own wrap key."""
    u, a, _, _ = filled
    _sql(
        u,
        "UPDATE consent_keys SET wrapped = ? WHERE consent_id = ? AND reader = ?",
        _wrap(u, a, access.ADMIN_READER),
        a,
        ADMIN,
    )
    u.forget_data_key(a)
    with pytest.raises(IntegrityError):
        consents.show(u, a)


BOB_PASS = b"bob's passphrase"


def test_a_role_changed_in_the_file_gives_no_rights(unlocked: Unlocked, vault_path: Path) -> None:
    """The role column only mirrors the signed epoch; a role edited in the epoch breaks
    its signature."""
    staff.add(unlocked, "bob", passphrase=BOB_PASS)
    _sql(unlocked, "UPDATE staff SET role = 'admin' WHERE name = 'bob'")
    with Vault.open(vault_path) as v:
        bob = v.unlock("bob", BOB_PASS, now=NOW, pin_store=None)
        assert (bob.role, bob.admin) == ("staff", None)
        bob.close()
    number, body = unlocked.store.conn.execute(
        "SELECT number, body FROM epochs ORDER BY number DESC"
    ).fetchone()
    doc = json.loads(body)
    doc["staff"]["bob"]["role"] = "admin"
    edited = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    db = sqlite3.connect(vault_path, isolation_level=None)
    db.execute("UPDATE epochs SET body = ? WHERE number = ?", [edited, number])
    db.close()
    with pytest.raises(IntegrityError), Vault.open(vault_path) as v:
        v.unlock("bob", BOB_PASS, now=NOW, pin_store=None)


@pytest.mark.parametrize("purpose", [seeds.TEAM, seeds.ADMIN])
def test_a_sealed_seed_swapped_between_staff_fails(
    unlocked: Unlocked, vault_path: Path, purpose: str
) -> None:
    staff.add(unlocked, "bob", passphrase=BOB_PASS, role="admin")
    _sql(
        unlocked,
        "UPDATE sealed_keys SET sealed = (SELECT sealed FROM sealed_keys WHERE holder = 'bob'"
        " AND purpose = ?) WHERE holder = ? AND purpose = ?",
        purpose,
        ADMIN,
        purpose,
    )
    with Vault.open(vault_path) as v, pytest.raises(seeds.KeyReplaced):
        v.unlock(ADMIN, PASSPHRASE.encode(), now=NOW, pin_store=None)


def test_slot_with_huge_kdf_cost_in_the_file_is_refused_at_once(
    unlocked: Unlocked, vault_path: Path
) -> None:
    slot = bytes(unlocked.store.get_staff(ADMIN).slot)
    _sql(unlocked, "UPDATE staff SET slot = ? WHERE name = ?", _retuned(slot, 2, 64 * 2**30), ADMIN)
    started = time.perf_counter()
    with Vault.open(vault_path) as v, pytest.raises(crypto.KdfLimitExceeded):
        v.unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    assert time.perf_counter() - started < 1.0


def test_wrong_passphrase_for_a_real_vault(unlocked: Unlocked, vault_path: Path) -> None:
    with Vault.open(vault_path) as v, pytest.raises(WrongPassphrase):
        v.unlock(ADMIN, b"not the passphrase", now=NOW)


# -- test vectors: the formats of existing vaults ----------------------------------------


def _spec_seal(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """docs/format.md, "Blob", straight from libsodium: version || nonce || ct+tag."""
    body = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, b"\x01" + ad, nonce, key)
    return b"\x01" + nonce + body


def _spec_bind(*parts: object) -> bytes:
    out = b"nok"
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8")
        out += len(raw).to_bytes(2, "big") + raw
    return out


@pytest.mark.parametrize("vector", VECTORS["bind"])
def test_vector_bind(vector: dict[str, Any]) -> None:
    expected = bytes.fromhex(vector["expected"])
    assert crypto.bind(*vector["parts"]) == expected
    assert _spec_bind(*vector["parts"]) == expected


@pytest.mark.parametrize("vector", VECTORS["seal"])
def test_vector_seal(vector: dict[str, Any]) -> None:
    key, nonce = bytes.fromhex(vector["key"]), bytes.fromhex(vector["nonce"])
    ad, plaintext = bytes.fromhex(vector["ad"]), bytes.fromhex(vector["plaintext"])
    expected = bytes.fromhex(vector["expected"])
    assert len(expected) == crypto.BLOB_OVERHEAD + len(plaintext)
    assert expected[0] == 1
    assert expected[1:25] == nonce
    assert crypto.seal(key, plaintext, ad, nonce=nonce) == expected
    assert _spec_seal(key, nonce, plaintext, ad) == expected
    assert crypto.unseal(key, expected, ad, where="vector") == plaintext


def _spec_record(fields: list[str]) -> bytes:
    out = b""
    for value in fields:
        raw = value.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return out + bytes(-len(out) % 256)


NOTE_FIELDS = ("date", "created", "kind", "author", "text")
CONSENT_FIELDS = (
    "subject",
    "purpose",
    "categories",
    "under_16",
    "guardian",
    "form_ref",
    "recorded_by",
)


def test_vector_note_record() -> None:
    (vector,) = VECTORS["note_record"]
    key, nonce = bytes.fromhex(vector["key"]), bytes.fromhex(vector["nonce"])
    place = (vector["note_id"], vector["consent_id"], vector["key_version"])
    fields = [vector[f] for f in NOTE_FIELDS]
    expected = bytes.fromhex(vector["expected"])
    assert keyring.seal_record(key, fields, keyring.note_ad(*place), nonce=nonce) == expected
    assert _spec_seal(key, nonce, _spec_record(fields), _spec_bind("note", *place)) == expected
    row = NoteRow(
        vector["note_id"], vector["consent_id"], vector["date"], vector["created"], 1, 1, expected
    )
    note = notes.open_record(key, row)
    assert [getattr(note, f) for f in NOTE_FIELDS] == fields


def test_vector_consent_record() -> None:
    (vector,) = VECTORS["consent_record"]
    key, nonce = bytes.fromhex(vector["key"]), bytes.fromhex(vector["nonce"])
    place = (vector["consent_id"], vector["key_version"])
    fields = [vector[f] for f in CONSENT_FIELDS]
    expected = bytes.fromhex(vector["expected"])
    assert keyring.seal_record(key, fields, keyring.consent_ad(*place), nonce=nonce) == expected
    assert _spec_seal(key, nonce, _spec_record(fields), _spec_bind("consent", *place)) == expected
    opened = keyring.open_record(
        key, expected, keyring.consent_ad(*place), consents.RECORD_FIELDS, where="vector"
    )
    assert opened == fields


def _spec_tag(key: bytes, purpose: str, *parts: str | int | bytes) -> bytes:
    subkey = hashlib.blake2b(_spec_bind("subkey", purpose), key=key, digest_size=32).digest()
    return hashlib.blake2b(_spec_bind(*parts), key=subkey, digest_size=32).digest()


def test_vector_retention_tag() -> None:
    (vector,) = VECTORS["retention_tag"]
    key, expected = bytes.fromhex(vector["key"]), bytes.fromhex(vector["expected"])
    names = ("consent_id", "key_version", "given", "created", "last_activity", "retain_days")
    made = keyring.retention_tag(key, **{n: vector[n] for n in names})
    assert made == expected
    spec = [vector[n] for n in names[:-2]] + [vector["last_activity"], ""]
    assert _spec_tag(key, "retention", "retention", *spec) == expected


def test_vector_notes_tag() -> None:
    (vector,) = VECTORS["notes_tag"]
    key, expected = bytes.fromhex(vector["key"]), bytes.fromhex(vector["expected"])
    entries = [(i, seq, bytes.fromhex(t)) for i, seq, t in vector["notes"]]
    place = (vector["consent_id"], vector["key_version"])
    chain = keyring.NotesChain(key, consent_id=place[0], key_version=place[1])
    assert chain.fold(entries) == expected
    spec = _spec_tag(key, "notes", "notes", *place, 0)
    for note_id, seq, record_tag in entries:
        spec = _spec_tag(key, "notes", "notes", *place, seq, spec, note_id, record_tag)
    assert spec == expected


def test_vector_settings_tag() -> None:
    (vector,) = VECTORS["settings_tag"]
    master, expected = bytes.fromhex(vector["master"]), bytes.fromhex(vector["expected"])
    assert keyring.settings_tag(master, vector["settings"]) == expected
    assert set(vector["settings"]) == set(SEALED_SETTINGS)


def test_vector_wrap_data_key() -> None:
    (vector,) = VECTORS["wrap_data_key"]
    master, nonce = bytes.fromhex(vector["master"]), bytes.fromhex(vector["nonce"])
    data_key = bytes.fromhex(vector["data_key"])
    where = {"consent_id": vector["consent_id"], "master_version": vector["master_version"]}
    expected = bytes.fromhex(vector["expected"])
    assert len(expected) == crypto.BLOB_OVERHEAD + crypto.KEY_BYTES
    assert keyring.wrap_data_key(master, data_key, nonce=nonce, **where) == expected
    ad = _spec_bind("data_key", where["consent_id"], where["master_version"])
    assert _spec_seal(master, nonce, data_key, ad) == expected
    assert keyring.unwrap_data_key(master, expected, **where) == data_key


def test_vector_wrap_vault_key() -> None:
    (vector,) = VECTORS["wrap_vault_key"]
    master, nonce = bytes.fromhex(vector["master"]), bytes.fromhex(vector["nonce"])
    key = bytes.fromhex(vector["key"])
    where = {"purpose": vector["purpose"], "master_version": vector["master_version"]}
    expected = bytes.fromhex(vector["expected"])
    assert keyring.wrap_vault_key(master, key, nonce=nonce, **where) == expected
    assert keyring.unwrap_vault_key(master, expected, **where) == key


def test_vector_slot() -> None:
    (vector,) = VECTORS["wrap_secret"]
    secret, salt = bytes.fromhex(vector["secret"]), bytes.fromhex(vector["salt"])
    nonce, passphrase = bytes.fromhex(vector["nonce"]), vector["passphrase"].encode("utf-8")
    params = crypto.KdfParams(vector["opslimit"], vector["memlimit"])
    expected = bytes.fromhex(vector["expected"])
    made = slots.wrap_secret(
        secret, name=vector["name"], passphrase=passphrase, params=params, salt=salt, nonce=nonce
    )
    assert made == expected
    # The layout of docs/format.md, "Key slot", checked byte by byte.
    assert len(expected) == slots.SLOT_BYTES == 119
    version, alg, opslimit, memlimit = struct.unpack_from(">BBIQ", expected)
    assert (version, alg, opslimit, memlimit) == (1, 1, params.opslimit, params.memlimit)
    assert expected[14:30] == salt
    header, wrapped, checksum = expected[:30], expected[30:103], expected[103:]
    assert crypto.digest(expected[:103], 16) == checksum
    kek = argon2id.kdf(32, passphrase, salt, opslimit, memlimit)
    ad = _spec_bind("slot", vector["name"]) + header
    assert _spec_seal(kek, nonce, secret, ad) == wrapped
    assert slots.unwrap_secret(expected, name=vector["name"], passphrase=passphrase) == secret


def test_vector_sealed_master() -> None:
    """Sealed boxes are randomised, so the vector is checked by opening it."""
    (vector,) = VECTORS["sealed_master"]
    secret, master = bytes.fromhex(vector["secret"]), bytes.fromhex(vector["master"])
    sealed = bytes.fromhex(vector["sealed"])
    assert crypto.public_key_of(secret) == bytes.fromhex(vector["public"])
    opened = slots.open_master(
        sealed, secret=secret, name=vector["name"], master_version=vector["master_version"]
    )
    assert opened == master
    assert sealed[0] == 1
    inner = nacl.public.SealedBox(nacl.public.PrivateKey(secret)).decrypt(sealed[1:])
    ad = _spec_bind("master", vector["name"], vector["master_version"])
    assert inner == len(ad).to_bytes(2, "big") + ad + master


@pytest.mark.parametrize("vector", VECTORS["role_tag"])
def test_vector_role_tag(vector: dict[str, Any]) -> None:
    master = bytes.fromhex(vector["master"])
    public_key = bytes.fromhex(vector["public_key"])
    expected = bytes.fromhex(vector["expected"])
    assert keyring.role_tag(master, vector["name"], vector["role"], public_key) == expected
    roles_key = hashlib.blake2b(_spec_bind("subkey", "roles"), key=master, digest_size=32)
    spec = hashlib.blake2b(
        _spec_bind("role", vector["name"], vector["role"], public_key),
        key=roles_key.digest(),
        digest_size=32,
    )
    assert spec.digest() == expected


@pytest.mark.parametrize("value", ["some text", 42])
@pytest.mark.parametrize(
    ("table", "column"),
    [("staff", "slot"), ("sealed_keys", "sealed"), ("consent_keys", "wrapped")],
)
def test_key_columns_replaced_by_other_types_are_tampering(
    filled: Filled, vault_path: Path, table: str, column: str, value: object
) -> None:
    u, a, _, _ = filled
    _sql(u, f"UPDATE {table} SET {column} = ?", value)  # noqa: S608 (constant names)
    u.forget_data_key(a)
    with pytest.raises(IntegrityError):
        _unlock_and_show(vault_path, a)


def _unlock_and_show(vault_path: Path, consent_id: str) -> None:
    with Vault.open(vault_path) as v:
        consents.show(v.unlock(ADMIN, PASSPHRASE.encode(), now=NOW), consent_id)
