"""Made tests/vectors/v2.json once, from docs/format.md alone (it imports nothing of nok).

Kept so that anyone can see how the vectors were made; never run it to make a failing test
pass: a vector that no longer matches means vaults in format 2 would no longer open.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import nacl.bindings as sodium

KEY = bytes(range(32))
DATA_KEY = bytes(range(0x20, 0x40))
MASTER = bytes(range(0x80, 0xA0))
NONCE = bytes(range(0x40, 0x58))
SECRET = bytes(range(0xA0, 0xC0))
SALT = bytes(range(0x60, 0x70))


def bind(*parts: str | int | bytes) -> bytes:
    out = b"nok"
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8")
        out += struct.pack(">H", len(raw)) + raw
    return out


def seal(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    body = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, b"\x01" + ad, nonce, key)
    return b"\x01" + nonce + body


def record(fields: list[str]) -> bytes:
    out = b""
    for value in fields:
        raw = value.encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
    return out + bytes(-len(out) % 256)


def blake(data: bytes, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, key=key, digest_size=32).digest()


def tag(key: bytes, purpose: str, *parts: str | int | bytes) -> bytes:
    return blake(bind(*parts), key=blake(bind("subkey", purpose), key=key))


def main() -> None:
    hexed = bytes.hex
    note = {
        "date": "2026-03-04",
        "created": "2026-03-04T09:15:00.000000Z",
        "kind": "phone",
        "author": "anne",
        "text": "Samtale om trygghet og oppfølging – æøå",
    }
    consent = {
        "subject": "Kari",
        "purpose": "oppfølging etter samtaler",
        "categories": '["conversation-notes", "safety"]',
        "under_16": "true",
        "guardian": "Mor",
        "form_ref": "",
        "recorded_by": "anne",
    }
    note_fields = [note[k] for k in ("date", "created", "kind", "author", "text")]
    consent_fields = list(consent.values())
    notes = [("N-3XH8-P2DW-5", 1, bytes(range(16))), ("N-9ZZZ-0000-1", 3, bytes(range(16, 32)))]
    chain = tag(DATA_KEY, "notes", "notes", "C-7K2M-9Q4F", 1, 0)
    for note_id, seq, record_tag in notes:
        chain = tag(DATA_KEY, "notes", "notes", "C-7K2M-9Q4F", 1, seq, chain, note_id, record_tag)
    settings = {
        "created": "2026-01-05T08:00:00.000000Z",
        "format": "2",
        "group": None,
        "kdf_min": "interactive",
        "note_guideline": "1500",
        "note_limit": "20000",
        "retention_days": "730",
        "vault_id": "0123456789abcdef",
    }
    flat: list[str] = []
    for name in sorted(settings):
        value = settings[name]
        flat += [name, "-" if value is None else "=" + value]
    kek = sodium.crypto_pwhash_alg(
        32,
        b"correct horse battery staple",
        SALT,
        2,
        64 * 2**20,
        sodium.crypto_pwhash_ALG_ARGON2ID13,
    )
    header = struct.pack(">BBIQ", 1, 1, 2, 64 * 2**20) + SALT
    slot = header + seal(kek, NONCE, SECRET, bind("slot", "anne") + header)
    slot += hashlib.blake2b(slot, digest_size=16).digest()
    public = sodium.crypto_scalarmult_base(SECRET)
    ad = bind("master", "anne", 1)
    sealed = b"\x01" + sodium.crypto_box_seal(struct.pack(">H", len(ad)) + ad + MASTER, public)
    vectors = {
        "_comment": (
            "Vault format 2, made by tests/vectors/make_v2.py from docs/format.md without nok's "
            "code. Never regenerate: a change that makes these fail breaks existing vaults."
        ),
        "bind": [
            {"parts": p, "expected": hexed(bind(*p))}
            for p in (
                ["note", "N-3XH8-P2DW-5", "C-7K2M-9Q4F", 1],
                [],
                ["ab", "c"],
                ["a", "bc"],
                ["slot", "Åse"],
            )
        ],
        "seal": [
            {
                "key": hexed(KEY),
                "nonce": hexed(NONCE),
                "ad": hexed(bind("test", "vector", 1)),
                "plaintext": hexed(p),
                "expected": hexed(seal(KEY, NONCE, p, bind("test", "vector", 1))),
            }
            for p in (b"", "nok – æøå".encode())
        ],
        "note_record": [
            {
                "key": hexed(DATA_KEY),
                "nonce": hexed(NONCE),
                "note_id": "N-3XH8-P2DW-5",
                "consent_id": "C-7K2M-9Q4F",
                "key_version": 1,
                **note,
                "expected": hexed(
                    seal(
                        DATA_KEY,
                        NONCE,
                        record(note_fields),
                        bind("note", "N-3XH8-P2DW-5", "C-7K2M-9Q4F", 1),
                    )
                ),
            }
        ],
        "consent_record": [
            {
                "key": hexed(DATA_KEY),
                "nonce": hexed(NONCE),
                "consent_id": "C-7K2M-9Q4F",
                "key_version": 2,
                **consent,
                "expected": hexed(
                    seal(DATA_KEY, NONCE, record(consent_fields), bind("consent", "C-7K2M-9Q4F", 2))
                ),
            }
        ],
        "retention_tag": [
            {
                "key": hexed(DATA_KEY),
                "consent_id": "C-7K2M-9Q4F",
                "key_version": 1,
                "given": "2026-01-05",
                "created": "2026-01-05T08:00:00.000000Z",
                "last_activity": "2026-03-04",
                "retain_days": None,
                "expected": hexed(
                    tag(
                        DATA_KEY,
                        "retention",
                        "retention",
                        "C-7K2M-9Q4F",
                        1,
                        "2026-01-05",
                        "2026-01-05T08:00:00.000000Z",
                        "2026-03-04",
                        "",
                    )
                ),
            }
        ],
        "notes_tag": [
            {
                "key": hexed(DATA_KEY),
                "consent_id": "C-7K2M-9Q4F",
                "key_version": 1,
                "notes": [[i, seq, hexed(t)] for i, seq, t in notes],
                "expected": hexed(chain),
            }
        ],
        "settings_tag": [
            {
                "master": hexed(MASTER),
                "settings": settings,
                "expected": hexed(tag(MASTER, "settings", "settings", *flat)),
            }
        ],
        "wrap_data_key": [
            {
                "master": hexed(MASTER),
                "data_key": hexed(DATA_KEY),
                "consent_id": "C-7K2M-9Q4F",
                "master_version": 1,
                "nonce": hexed(NONCE),
                "expected": hexed(
                    seal(MASTER, NONCE, DATA_KEY, bind("data_key", "C-7K2M-9Q4F", 1))
                ),
            }
        ],
        "wrap_vault_key": [
            {
                "master": hexed(MASTER),
                "key": hexed(KEY),
                "purpose": "audit",
                "master_version": 1,
                "nonce": hexed(NONCE),
                "expected": hexed(seal(MASTER, NONCE, KEY, bind("vault_key", "audit", 1))),
            }
        ],
        "wrap_secret": [
            {
                "secret": hexed(SECRET),
                "name": "anne",
                "passphrase": "correct horse battery staple",
                "opslimit": 2,
                "memlimit": 64 * 2**20,
                "salt": hexed(SALT),
                "nonce": hexed(NONCE),
                "expected": hexed(slot),
            }
        ],
        "sealed_master": [
            {
                "secret": hexed(SECRET),
                "public": hexed(public),
                "name": "anne",
                "master_version": 1,
                "master": hexed(MASTER),
                "sealed": hexed(sealed),
            }
        ],
        "role_tag": [
            {
                "master": hexed(MASTER),
                "name": n,
                "role": r,
                "public_key": hexed(DATA_KEY),
                "expected": hexed(tag(MASTER, "roles", "role", n, r, DATA_KEY)),
            }
            for n, r in (("anne", "admin"), ("bob", "staff"))
        ],
    }
    out = Path(__file__).with_name("v2.json")
    out.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
