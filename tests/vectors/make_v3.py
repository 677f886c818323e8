"""Make tests/vectors/v3.json: vault format 3's layouts from docs/format.md alone.

Run from the repository root: ``python tests/vectors/make_v3.py``. It uses PyNaCl's raw
libsodium bindings and ``hashlib`` only and imports nothing of nok, so the vectors say
what the page says, not what the code happens to do. Never run it again to make a test
pass: a vector that stops matching means vaults made today would no longer open.

Signatures (Ed25519) and keyed hashes are deterministic and are compared byte for byte;
sealed boxes are randomised and are checked by opening them. Fixed nonces and salts stand
in for the random ones nok draws.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import nacl.bindings as sodium

OUT = Path(__file__).with_name("v3.json")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# -- the primitives, as "All multi-byte integers …" and `bind` define them ------------------


def bind(*parts: object) -> bytes:
    """`bind(p1, p2, …) = "nok" || len(p1) || p1 || …`, 2-byte big-endian lengths."""
    out = b"nok"
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8")
        out += len(raw).to_bytes(2, "big") + raw
    return out


def mac(key: bytes, message: bytes) -> bytes:
    return hashlib.blake2b(message, key=key, digest_size=32).digest()


def h(message: bytes, size: int = 32) -> bytes:
    return hashlib.blake2b(message, digest_size=size).digest()


def subkey(key: bytes, purpose: str) -> bytes:
    return mac(key, bind("subkey", purpose))


def blob(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """Blob version 1: 0x01 || nonce || ciphertext || tag, AD = 0x01 || ad."""
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, b"\x01" + ad, nonce, key)
    return b"\x01" + nonce + sealed


def sealed_box(public: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """Sealed box version 1: 0x01 || crypto_box_seal(pk, len(ad) (2) || ad || plaintext)."""
    return b"\x01" + sodium.crypto_box_seal(len(ad).to_bytes(2, "big") + ad + plaintext, public)


def sign(sign_secret: bytes, message: bytes) -> bytes:
    return sodium.crypto_sign(message, sign_secret)[:64]


def record(fields: list[str]) -> bytes:
    """A sealed record's plaintext: 4-byte lengths and UTF-8, zero-padded to 256·k (k ≥ 1)."""
    out = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
    return out + bytes(max(256, -(-len(out) // 256) * 256) - len(out))


def crockford(raw: bytes) -> str:
    text = base64.b32encode(raw).decode().rstrip("=")
    return text.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD))


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Keys:
    """ "Key sets from a seed"."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.box_public, self.box_secret = sodium.crypto_box_seed_keypair(subkey(seed, "box"))
        self.sign_public, self.sign_secret = sodium.crypto_sign_seed_keypair(subkey(seed, "sign"))
        self.wrap = subkey(seed, "wrap")

    def json(self) -> dict[str, str]:
        return {
            "seed": self.seed.hex(),
            "box_public": self.box_public.hex(),
            "box_secret": self.box_secret.hex(),
            "sign_public": self.sign_public.hex(),
            "wrap": self.wrap.hex(),
        }


def seed(n: int) -> bytes:
    return bytes((n * 37 + i) % 256 for i in range(32))


VAULT_ID = "4e0b5c3a9d2f7e11"
MADE = "2026-11-23T10:00:00.000000Z"
ANNE, BOB = Keys(seed(1)), Keys(seed(2))
ADMIN, TEAM, JOB, RECOVERY = Keys(seed(3)), Keys(seed(4)), Keys(seed(5)), Keys(seed(6))
PURGE = Keys(seed(7))
DATA_KEY = bytes(range(0x80, 0xA0))
CONSENT = "C-7K2M-9Q4F"
SETTINGS = {
    "access": "need-to-know",
    "center_name": None,
    "created": MADE,
    "group": None,
    "kdf_min": "interactive",
    "note_guideline": 1500,
    "note_limit": 20000,
    "retention_days": 730,
    "timezone": "Europe/Oslo",
}


def vectors() -> dict[str, object]:
    out: dict[str, object] = {"vault_id": VAULT_ID}
    out["key_sets"] = [k.json() for k in (ANNE, BOB, ADMIN, TEAM, JOB, RECOVERY, PURGE)]

    # -- the root fingerprint and the recovery key ---------------------------------------
    root = h(bind("nok-root", VAULT_ID, ADMIN.sign_public))
    shown = crockford(root[:15])[:20]
    out["root"] = {
        "vault_id": VAULT_ID,
        "vault_key": ADMIN.sign_public.hex(),
        "fingerprint": root.hex(),
        "shown": "-".join(shown[i : i + 4] for i in range(0, 20, 4)),
    }
    check = h(bind("recovery-check", RECOVERY.seed), 16)[:3]
    symbols = crockford(RECOVERY.seed + check)
    out["recovery"] = {
        "seed": RECOVERY.seed.hex(),
        "text": "NOKR-" + "-".join(symbols[i : i + 4] for i in range(0, 56, 4)),
    }

    # -- a version-2 key slot (interactive profile) ----------------------------------------
    salt, nonce = bytes(range(16)), bytes(range(100, 124))
    passphrase = "correct horse battery staple"
    opslimit, memlimit = 2, 64 * 2**20
    header = bytes([2, 1]) + opslimit.to_bytes(4, "big") + memlimit.to_bytes(8, "big") + salt
    kek = sodium.crypto_pwhash_alg(
        32, passphrase.encode(), salt, opslimit, memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13
    )
    body = header + blob(kek, nonce, ANNE.seed, bind("slot", root, "anne") + header)
    out["slot"] = {
        "name": "anne",
        "passphrase": passphrase,
        "seed": ANNE.seed.hex(),
        "root": root.hex(),
        "salt": salt.hex(),
        "nonce": nonce.hex(),
        "opslimit": opslimit,
        "memlimit": memlimit,
        "expected": (body + h(body, 16)).hex(),
    }

    # -- two epochs: init, then bob added (signed by epoch 1's vault key) ------------------
    def keys_of(team_version: int = 1) -> dict[str, object]:
        return {
            "vault": ADMIN.sign_public.hex(),
            "admin": ADMIN.box_public.hex(),
            "admin_version": 1,
            "team": TEAM.box_public.hex(),
            "team_version": team_version,
            "job": JOB.box_public.hex(),
            "job_version": 1,
            "recovery_box": RECOVERY.box_public.hex(),
            "recovery_sign": RECOVERY.sign_public.hex(),
        }

    def member(k: Keys, role: str) -> dict[str, str]:
        return {"box": k.box_public.hex(), "role": role, "sign": k.sign_public.hex()}

    first = canonical(
        {
            "by": "anne",
            "epoch": 1,
            "event": "init",
            "jobs": {},
            "keys": keys_of(),
            "made": MADE,
            "nok": "epoch",
            "prev": "",
            "settings": SETTINGS,
            "staff": {"anne": member(ANNE, "admin")},
            "v": 1,
            "vault_id": VAULT_ID,
        }
    )
    first_sig = sign(ADMIN.sign_secret, bind("nok-epoch", VAULT_ID, 1, first))
    first_hash = h(bind("nok-epoch-hash", first, first_sig))
    second = canonical(
        {
            "by": "anne",
            "epoch": 2,
            "event": "staff.add",
            "jobs": {"purge": {"box": PURGE.box_public.hex(), "sign": PURGE.sign_public.hex()}},
            "keys": keys_of(),
            "made": "2026-11-23T10:05:00.000000Z",
            "nok": "epoch",
            "prev": first_hash.hex(),
            "settings": SETTINGS,
            "staff": {"anne": member(ANNE, "admin"), "bob": member(BOB, "staff")},
            "v": 1,
            "vault_id": VAULT_ID,
        }
    )
    second_sig = sign(ADMIN.sign_secret, bind("nok-epoch", VAULT_ID, 2, second))
    out["epochs"] = [
        {"number": 1, "body": first.decode(), "sig": first_sig.hex(), "hash": first_hash.hex()},
        {
            "number": 2,
            "body": second.decode(),
            "sig": second_sig.hex(),
            "hash": h(bind("nok-epoch-hash", second, second_sig)).hex(),
        },
    ]

    # -- sealed seeds (randomised: the tests open them) ------------------------------------
    def sealed_seed(holder: str, purpose: str, version: int, to: Keys | bytes, what: Keys):
        public = to if isinstance(to, bytes) else to.box_public
        ad = bind("sealed-key", VAULT_ID, purpose, version, holder)
        return {
            "holder": holder,
            "purpose": purpose,
            "version": version,
            "seed": what.seed.hex(),
            "sealed": sealed_box(public, what.seed, ad).hex(),
        }

    out["sealed_seeds"] = [
        sealed_seed("anne", "admin", 1, ANNE, ADMIN),
        sealed_seed("anne", "team", 1, ANNE, TEAM),
        sealed_seed("bob", "team", 1, BOB, TEAM),
        sealed_seed("#admin", "team", 1, ADMIN, TEAM),
        sealed_seed("#admin", "job", 1, ADMIN, JOB),
        sealed_seed("#recovery", "admin", 1, RECOVERY, ADMIN),
        sealed_seed("job:purge", "job", 1, PURGE, JOB),
    ]

    # -- a consent: its keys, wraps, records, notes and signed state -----------------------
    consent_public = sodium.crypto_box_seed_keypair(subkey(DATA_KEY, "box"))[0]
    proof_key = subkey(DATA_KEY, "proof")

    def wrap_ad(reader: str, version: int = 1) -> bytes:
        return bind("consent-key", VAULT_ID, CONSENT, reader, version)

    wrap_nonce = bytes(range(24))
    out["consent_keys"] = {
        "consent_id": CONSENT,
        "data_key": DATA_KEY.hex(),
        "consent_box": consent_public.hex(),
        "proof_key": proof_key.hex(),
        "key_version": 1,
        "wraps": [
            {
                "reader": "anne",
                "how": "key",
                "nonce": wrap_nonce.hex(),
                "wrapped": blob(ANNE.wrap, wrap_nonce, DATA_KEY, wrap_ad("anne")).hex(),
            },
            {
                "reader": "#admin",
                "how": "key",
                "nonce": wrap_nonce.hex(),
                "wrapped": blob(ADMIN.wrap, wrap_nonce, DATA_KEY, wrap_ad("#admin")).hex(),
            },
            {
                "reader": "bob",
                "how": "box",
                "wrapped": sealed_box(BOB.box_public, DATA_KEY, wrap_ad("bob")).hex(),
            },
            {
                "reader": "#job",
                "how": "box",
                "wrapped": sealed_box(JOB.box_public, proof_key, wrap_ad("#job")).hex(),
            },
        ],
    }

    record_nonce = bytes(range(50, 74))
    consent_fields = [
        "K.H.",
        "follow-up after the first talk",
        '["conversation-notes","safety"]',
        "false",
        "",
        "",
        "anne",
        "2026-11-20",
    ]
    consent_record = blob(
        DATA_KEY, record_nonce, record(consent_fields), bind("consent", CONSENT, 1)
    )
    notes = []
    for seq, (note_id, text) in enumerate(
        [("N-3XH8-P2DW-5", "first talk, safety plan made"), ("N-9QRS-T4VW-X", "follow-up")],
        start=1,
    ):
        fields = ["2026-11-2" + str(seq), f"2026-11-2{seq}T09:00:00.000000Z", "note", "anne", text]
        sealed = blob(
            DATA_KEY, bytes([seq]) * 24, record(fields), bind("note", note_id, CONSENT, 1)
        )
        notes.append(
            {
                "id": note_id,
                "seq": seq,
                "nonce": (bytes([seq]) * 24).hex(),
                "date": fields[0],
                "created": fields[1],
                "kind": fields[2],
                "author": fields[3],
                "text": fields[4],
                "record": sealed.hex(),
            }
        )
    link = h(bind("notes", VAULT_ID, CONSENT, 1, 0))
    out["notes_start"] = link.hex()
    for n in notes:
        tag = bytes.fromhex(str(n["record"]))[-16:]
        link = h(bind("notes", CONSENT, 1, n["seq"], link, n["id"], tag))
    notes_hash = link

    state = {
        "consent_id": CONSENT,
        "rev": 3,
        "status": "active",
        "given": "2026-11-20",
        "created": "2026-11-20T13:30:00.000000Z",
        "last_activity": "2026-11-22",
        "retain_days": None,
        "key_version": 1,
        "contact": "anne",
        "access": "need-to-know",
        "readers": [["bob", "2026-12-31"]],
        "notes_count": 2,
    }
    readers_json = json.dumps(state["readers"], separators=(",", ":"))
    digest = h(
        bind(
            "consent-state",
            VAULT_ID,
            CONSENT,
            state["rev"],
            state["status"],
            state["given"],
            state["created"],
            state["last_activity"] or "",
            "",
            state["key_version"],
            consent_public,
            state["contact"],
            state["access"],
            readers_json,
            state["notes_count"],
            notes_hash,
            consent_record[-16:],
        )
    )
    state_sig = sign(ANNE.sign_secret, bind("consent-signed", digest, "anne", 2))
    out["consent"] = {
        **state,
        "readers_json": readers_json,
        "retain_until": "2028-11-21",
        "record_nonce": record_nonce.hex(),
        "fields": consent_fields,
        "record": consent_record.hex(),
        "notes": notes,
        "notes_hash": notes_hash.hex(),
        "digest": digest.hex(),
        "signer": "anne",
        "epoch": 2,
        "sig": state_sig.hex(),
        "proof": mac(proof_key, bind("consent-proof", digest)).hex(),
    }

    # -- a pending note by bob, sealed to the consent box key ------------------------------
    pending_id, pending_fields = "N-PEND-0000-1", ["2026-11-23", MADE, "note", "bob", "rang"]
    pending_record = sealed_box(
        consent_public, record(pending_fields), bind("pending-note", pending_id, CONSENT, 1)
    )
    pending_digest = h(
        bind(
            "pending-note", VAULT_ID, pending_id, CONSENT, "2026-11-23", MADE, pending_record[-16:]
        )
    )
    out["pending_note"] = {
        "id": pending_id,
        "fields": pending_fields,
        "record": pending_record.hex(),
        "digest": pending_digest.hex(),
        "signer": "bob",
        "epoch": 2,
        "sig": sign(BOB.sign_secret, bind("consent-signed", pending_digest, "bob", 2)).hex(),
    }

    # -- an ending and its erasure-log line -------------------------------------------------
    ended = "2026-11-23T11:00:00.000000Z"
    ending = ("C-ENDE-D000", "withdrawn", "2026-10-01", "2026-10-01T08:00:00.000000Z")
    ending_digest = h(bind("consent-ending", VAULT_ID, *ending, ended, "withdrawn", "anne"))
    ending_sig = sign(ANNE.sign_secret, bind("consent-signed", ending_digest, "anne", 2))
    line = {
        "v": 3,
        "consent_id": ending[0],
        "status": ending[1],
        "given": ending[2],
        "created": ending[3],
        "ended": ended,
        "reason": "withdrawn",
        "ended_by": "anne",
        "signer": "anne",
        "epoch": 2,
        "sig": ending_sig.hex(),
    }
    out["ending"] = {
        "digest": ending_digest.hex(),
        "line": json.dumps(line, separators=(",", ":")),
    }

    # -- an audit batch of two entries by anne in epoch 2 ----------------------------------
    entries = [
        {
            "seq": 7,
            "ts": "2026-11-23T10:10:00.000000Z",
            "actor": "anne",
            "action": "note.add",
            "consent_id": CONSENT,
            "object_id": notes[1]["id"],
            "epoch": 2,
            "detail": None,
            "rev": 3,
            "state": digest.hex(),
        },
        {
            "seq": 8,
            "ts": "2026-11-23T10:10:00.000000Z",
            "actor": "anne",
            "action": "access.grant",
            "consent_id": CONSENT,
            "object_id": "bob",
            "epoch": 2,
            "detail": "covering",
            "rev": None,
            "state": None,
        },
    ]
    prev = bytes(range(200, 232))
    out["audit"] = {"prev": prev.hex(), "batch_start": 7, "entries": entries}
    for e in entries:
        payload = bind(
            "audit3",
            e["seq"],
            e["ts"],
            e["actor"],
            e["action"],
            e["consent_id"] or "",
            e["object_id"] or "",
            e["epoch"],
            e["detail"] or "",
            "" if e["rev"] is None else e["rev"],
            bytes.fromhex(str(e["state"])) if e["state"] else "",
        )
        e["prev"] = prev.hex()
        prev = h(prev + payload)
        e["hash"] = prev.hex()
    batch = bind("audit-batch", VAULT_ID, 7, 8, prev, "anne", 2)
    out["audit"]["sig"] = sign(ANNE.sign_secret, batch).hex()  # type: ignore[index]
    return out


if __name__ == "__main__":
    OUT.write_text(json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
