"""Vault format 3 pinned by test vectors: tests/vectors/v3.json was made by
tests/vectors/make_v3.py from docs/format.md alone (libsodium through PyNaCl's raw
bindings, no nok import). nok's code must make the same bytes, read and verify each one,
and refuse every tampered or swapped variant. A failure here means either the page or the
code changed: vaults made today would no longer open, or a file writer could pass."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from vault import (
    access,
    audit,
    consents,
    crypto,
    endings,
    epochs,
    identity,
    keyring,
    notes,
    seeds,
    slots,
    states,
)
from vault.errors import BadInput, IntegrityError, WrongPassphrase
from vault.store import AuditRow, ConsentRow, NoteRow

V3 = json.loads((Path(__file__).parent / "vectors" / "v3.json").read_text("utf-8"))
VAULT_ID: str = V3["vault_id"]
KEYS = {
    name: identity.KeySet.from_seed(bytes.fromhex(k["seed"]))
    for name, k in zip(
        ("anne", "bob", "admin", "team", "job", "recovery", "purge"), V3["key_sets"], strict=True
    )
}
CONSENT = V3["consent"]
CK = V3["consent_keys"]
DATA_KEY = bytes.fromhex(CK["data_key"])


def hx(value: str) -> bytes:
    return bytes.fromhex(value)


def flip(raw: bytes, position: int) -> bytes:
    out = bytearray(raw)
    out[position] ^= 0x01
    return bytes(out)


def rows() -> list[tuple[int, bytes, bytes]]:
    return [(e["number"], e["body"].encode(), hx(e["sig"])) for e in V3["epochs"]]


def chain() -> epochs.Chain:
    return epochs.verify(rows(), vault_id=VAULT_ID)


# -- key sets, the root fingerprint, the recovery key ---------------------------------------


@pytest.mark.parametrize("vector", V3["key_sets"], ids=lambda v: v["seed"][:8])
def test_v3_key_set_from_a_seed(vector: dict[str, str]) -> None:
    keys = identity.KeySet.from_seed(hx(vector["seed"]))
    assert keys.box_public == hx(vector["box_public"])
    assert keys.box_secret == hx(vector["box_secret"])
    assert keys.sign_public == hx(vector["sign_public"])
    assert keys.wrap == hx(vector["wrap"])


def test_v3_root_fingerprint_and_how_it_is_shown() -> None:
    vector = V3["root"]
    root = identity.root_fingerprint(vector["vault_id"], hx(vector["vault_key"]))
    assert root == hx(vector["fingerprint"])
    assert identity.show_fingerprint(root) == vector["shown"]
    assert chain().root == root
    # Another vault id, or another first vault key, is another vault.
    assert identity.root_fingerprint("4e0b5c3a9d2f7e12", hx(vector["vault_key"])) != root


def test_v3_recovery_key_text_reads_back_forgivingly_and_refuses_a_typo() -> None:
    vector = V3["recovery"]
    seed, text = hx(vector["seed"]), vector["text"]
    assert identity.show_recovery(seed) == text
    assert identity.read_recovery(text) == seed
    sloppy = text.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert identity.read_recovery(sloppy) == seed
    body = text[5:]
    typo = "NOKR-" + ("1" if body[0] != "1" else "2") + body[1:]
    with pytest.raises(BadInput):
        identity.read_recovery(typo)


# -- the version-2 key slot ----------------------------------------------------------------


def test_v3_slot_is_made_and_opened_as_the_page_says() -> None:
    v = V3["slot"]
    params = crypto.KdfParams(v["opslimit"], v["memlimit"])
    made = slots.wrap_secret(
        hx(v["seed"]),
        name=v["name"],
        passphrase=v["passphrase"].encode(),
        params=params,
        root=hx(v["root"]),
        salt=hx(v["salt"]),
        nonce=hx(v["nonce"]),
    )
    assert made == hx(v["expected"])
    opened = slots.unwrap_secret(
        made, name=v["name"], passphrase=v["passphrase"].encode(), root=hx(v["root"])
    )
    assert opened == hx(v["seed"])


@pytest.mark.parametrize(
    ("name", "root"),
    [("bob", None), ("anne", bytes(32))],
    ids=["another staff name", "another vault's root"],
)
def test_v3_slot_moved_to_another_name_or_vault_does_not_open(
    name: str, root: bytes | None
) -> None:
    v = V3["slot"]
    with pytest.raises(WrongPassphrase):
        slots.unwrap_secret(
            hx(v["expected"]),
            name=name,
            passphrase=v["passphrase"].encode(),
            root=root or hx(v["root"]),
        )


# -- the epoch chain -----------------------------------------------------------------------


def test_v3_epochs_verify_and_say_what_the_page_says() -> None:
    verified = chain()
    first, second = verified.epochs
    assert [e.hash for e in verified.epochs] == [hx(e["hash"]) for e in V3["epochs"]]
    assert second.prev == first.hash
    assert first.keys.vault == KEYS["admin"].sign_public
    assert first.keys.team == KEYS["team"].box_public
    assert first.keys.recovery_sign == KEYS["recovery"].sign_public
    assert second.staff["bob"] == epochs.Member(
        "bob", "staff", KEYS["bob"].box_public, KEYS["bob"].sign_public
    )
    assert second.jobs["purge"].sign == KEYS["purge"].sign_public
    assert second.settings["retention_days"] == 730
    assert verified.signer_key("anne", 2) == KEYS["anne"].sign_public
    assert verified.signer_key("purge", 1) is None


def test_v3_epoch_bodies_are_what_nok_writes_and_signs() -> None:
    for vector, epoch in zip(V3["epochs"], chain().epochs, strict=True):
        body = epochs.body_of(
            vault_id=epoch.vault_id,
            number=epoch.number,
            prev=epoch.prev,
            made=epoch.made,
            by=epoch.by,
            event=epoch.event,
            keys=epoch.keys,
            staff=epoch.staff.values(),
            jobs=epoch.jobs.values(),
            settings=epoch.settings,
        )
        assert body == vector["body"].encode()
        sig = epochs.sign(body, vault_id=VAULT_ID, number=epoch.number, signer=KEYS["admin"])
        assert sig == hx(vector["sig"])
        assert epochs.statement_hash(body, sig) == hx(vector["hash"])


def _edited(number: int, change: Any) -> list[tuple[int, bytes, bytes]]:
    out = rows()
    n, body, sig = out[number - 1]
    doc = json.loads(body)
    change(doc)
    out[number - 1] = (n, epochs.encode(doc), sig)
    return out


@pytest.mark.parametrize(
    "attack",
    [
        lambda r: _edited(2, lambda d: d["staff"]["bob"].update(role="admin")),
        lambda r: _edited(2, lambda d: d["settings"].update(retention_days=1)),
        lambda r: _edited(1, lambda d: d["keys"].update(team=d["keys"]["admin"])),
        lambda r: [r[0], (2, r[1][1], flip(r[1][2], 10))],
        lambda r: [r[1]],
        lambda r: [r[0], (3, r[1][1], r[1][2])],
    ],
    ids=["role", "setting", "a key of epoch 1", "signature", "epoch 1 dropped", "renumbered"],
)
def test_v3_an_edited_or_reordered_epoch_is_refused(attack: Any) -> None:
    with pytest.raises(IntegrityError):
        epochs.verify(attack(rows()), vault_id=VAULT_ID)


def test_v3_an_epoch_signed_by_anyone_but_the_previous_vault_key_is_refused() -> None:
    """Bob (staff, listed in epoch 2) signs an epoch 3 that makes him admin."""
    _, second = chain().epochs
    doc = json.loads(second.body)
    doc.update(epoch=3, prev=second.hash.hex(), event="staff.role")
    doc["staff"]["bob"]["role"] = "admin"
    body = epochs.encode(doc)
    for signer in (KEYS["bob"], KEYS["team"]):
        forged = epochs.sign(body, vault_id=VAULT_ID, number=3, signer=signer)
        with pytest.raises(epochs.ChainBroken):
            epochs.verify([*rows(), (3, body, forged)], vault_id=VAULT_ID)
    real = epochs.sign(body, vault_id=VAULT_ID, number=3, signer=KEYS["admin"])
    assert epochs.verify([*rows(), (3, body, real)], vault_id=VAULT_ID).current.number == 3


def test_v3_epochs_of_another_vault_are_refused() -> None:
    with pytest.raises(IntegrityError):
        epochs.verify(rows(), vault_id="4e0b5c3a9d2f7e12")


# -- sealed seeds --------------------------------------------------------------------------


HOLDER_KEYS = {"anne": "anne", "bob": "bob", "#admin": "admin", "#recovery": "recovery"}


def _holder(holder: str) -> identity.KeySet:
    return KEYS["purge" if holder.startswith("job:") else HOLDER_KEYS[holder]]


@pytest.mark.parametrize(
    "vector", V3["sealed_seeds"], ids=lambda v: f"{v['purpose']}-{v['holder']}"
)
def test_v3_sealed_seed_opens_for_its_holder_and_gives_the_listed_keys(
    vector: dict[str, Any],
) -> None:
    ad = seeds.ad(VAULT_ID, vector["purpose"], vector["version"], vector["holder"])
    opened = crypto.open_sealed(
        _holder(vector["holder"]).box_secret, hx(vector["sealed"]), ad, where="vector"
    )
    assert opened == hx(vector["seed"])
    listed = chain().current.keys
    expect = {"admin": listed.admin, "team": listed.team, "job": listed.job}[vector["purpose"]]
    assert identity.KeySet.from_seed(opened).box_public == expect


def test_v3_a_sealed_seed_moved_to_another_holder_or_purpose_is_refused() -> None:
    vector = next(v for v in V3["sealed_seeds"] if v["holder"] == "anne" and v["purpose"] == "team")
    sealed, secret = hx(vector["sealed"]), KEYS["anne"].box_secret
    for holder, purpose, version in (("bob", "team", 1), ("anne", "admin", 1), ("anne", "team", 2)):
        with pytest.raises(IntegrityError):
            crypto.open_sealed(
                secret, sealed, seeds.ad(VAULT_ID, purpose, version, holder), where="x"
            )
    with pytest.raises(IntegrityError):
        crypto.open_sealed(
            KEYS["bob"].box_secret, sealed, seeds.ad(VAULT_ID, "team", 1, "anne"), where="x"
        )


# -- a consent's keys ----------------------------------------------------------------------


def test_v3_consent_keys_come_from_its_data_key() -> None:
    assert states.consent_box(DATA_KEY)[1] == hx(CK["consent_box"])
    assert states.proof_key(DATA_KEY) == hx(CK["proof_key"])


def _open_wrap(keys: identity.KeySet, how: str, wrapped: bytes, reader: str) -> bytes:
    ad = access.wrap_ad(VAULT_ID, CK["consent_id"], reader, CK["key_version"])
    if how == access.HOW_KEY:
        return crypto.unseal(keys.wrap, wrapped, ad, where="vector")
    return crypto.open_sealed(keys.box_secret, wrapped, ad, where="vector")


@pytest.mark.parametrize("vector", CK["wraps"], ids=lambda v: v["reader"])
def test_v3_wraps_open_for_their_reader_only(vector: dict[str, str]) -> None:
    reader, how, wrapped = vector["reader"], vector["how"], hx(vector["wrapped"])
    keys = KEYS[{"#admin": "admin", "#job": "job"}.get(reader, reader)]
    if how == access.HOW_KEY:
        ad = access.wrap_ad(VAULT_ID, CK["consent_id"], reader, CK["key_version"])
        assert crypto.seal(keys.wrap, DATA_KEY, ad, nonce=hx(vector["nonce"])) == wrapped
    expected = states.proof_key(DATA_KEY) if reader == "#job" else DATA_KEY
    assert _open_wrap(keys, how, wrapped, reader) == expected
    # Bound to its reader: the same bytes under another reader's row do not open.
    for other in ("bob" if reader != "bob" else "anne", "#team"):
        with pytest.raises(IntegrityError):
            _open_wrap(keys, how, wrapped, other)


def _row(**changes: Any) -> ConsentRow:
    c = CONSENT
    row = ConsentRow(
        id=c["consent_id"],
        status=c["status"],
        given=c["given"],
        created=c["created"],
        last_activity=c["last_activity"],
        retain_days=c["retain_days"],
        retain_until=c["retain_until"],
        ended=None,
        end_reason=None,
        ended_by=None,
        master_version=None,
        key_version=c["key_version"],
        data_key=None,
        record=hx(c["record"]),
        retention_tag=None,
        notes_count=c["notes_count"],
        notes_tag=None,
        contact=c["contact"],
        access=c["access"],
        readers=c["readers_json"],
        consent_box=hx(CK["consent_box"]),
        rev=c["rev"],
        notes_hash=hx(c["notes_hash"]),
        state_signer=c["signer"],
        state_epoch=c["epoch"],
        state_sig=hx(c["sig"]),
        proof=hx(c["proof"]),
    )
    return dataclasses.replace(row, **changes)


def test_v3_a_planted_data_key_is_refused_against_the_signed_state() -> None:
    row = _row()
    assert access.check_key(row, DATA_KEY) == DATA_KEY
    with pytest.raises(access.KeyPlanted):
        access.check_key(row, crypto.new_key())


# -- records, notes and the signed state ---------------------------------------------------


def test_v3_consent_record_is_sealed_and_read_as_the_page_says() -> None:
    ad = keyring.consent_ad(CONSENT["consent_id"], CONSENT["key_version"])
    made = keyring.seal_record(DATA_KEY, CONSENT["fields"], ad, nonce=hx(CONSENT["record_nonce"]))
    assert made == hx(CONSENT["record"])
    opened = consents.open_record(DATA_KEY, _row())
    assert (opened.subject, opened.recorded_by, opened.duties_told) == (
        "K.H.",
        "anne",
        "2026-11-20",
    )


@pytest.mark.parametrize("index", [0, 1])
def test_v3_note_records_are_sealed_and_read_as_the_page_says(index: int) -> None:
    n = CONSENT["notes"][index]
    ad = keyring.note_ad(n["id"], CONSENT["consent_id"], CONSENT["key_version"])
    fields = [n["date"], n["created"], n["kind"], n["author"], n["text"]]
    assert keyring.seal_record(DATA_KEY, fields, ad, nonce=hx(n["nonce"])) == hx(n["record"])
    row = NoteRow(
        n["id"], CONSENT["consent_id"], n["date"], n["created"], 1, n["seq"], hx(n["record"])
    )
    assert notes.open_record(DATA_KEY, row).text == n["text"]
    other = CONSENT["notes"][1 - index]
    with pytest.raises(IntegrityError):
        notes.open_record(DATA_KEY, dataclasses.replace(row, id=other["id"]))


def _chain_entries() -> list[tuple[str, int, bytes]]:
    return [(n["id"], n["seq"], hx(n["record"])[-16:]) for n in CONSENT["notes"]]


def test_v3_notes_hash_chains_the_notes_and_sees_one_gone() -> None:
    cid, version = CONSENT["consent_id"], CONSENT["key_version"]
    assert states.notes_start(VAULT_ID, cid, version) == hx(V3["notes_start"])
    entries = _chain_entries()
    assert states.fold_notes(VAULT_ID, cid, version, entries) == hx(CONSENT["notes_hash"])
    for changed in (entries[:1], entries[1:], entries[::-1], [entries[0], entries[0]]):
        assert states.fold_notes(VAULT_ID, cid, version, changed) != hx(CONSENT["notes_hash"])


def test_v3_consent_state_digest_signature_and_proof() -> None:
    row = _row()
    digest = consents.state_digest(VAULT_ID, row)
    assert digest == hx(CONSENT["digest"])
    signed = states.sign(
        digest,
        signer="anne",
        keys=KEYS["anne"],
        epoch=CONSENT["epoch"],
        proof_key_=states.proof_key(DATA_KEY),
    )
    assert (signed.sig, signed.proof) == (hx(CONSENT["sig"]), hx(CONSENT["proof"]))
    key = chain().signer_key("anne", CONSENT["epoch"])
    assert states.signature_valid(digest, "anne", CONSENT["epoch"], row.state_sig, key)
    assert states.proof_valid(hx(CK["proof_key"]), digest, row.proof)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "withdrawn"},
        {"given": "2020-01-01"},
        {"last_activity": None},
        {"retain_days": 1},
        {"rev": 2},
        {"contact": "bob"},
        {"access": "team"},
        {"readers": '[["bob",""]]'},
        {"notes_count": 1},
        {"key_version": 2},
    ],
    ids=lambda c: next(iter(c)),
)
def test_v3_a_state_column_edited_in_the_file_breaks_signature_and_proof(
    change: dict[str, Any],
) -> None:
    row = _row(**change)
    digest = consents.state_digest(VAULT_ID, row)
    key = chain().signer_key("anne", CONSENT["epoch"])
    assert not states.signature_valid(digest, "anne", CONSENT["epoch"], row.state_sig, key)
    assert not states.proof_valid(hx(CK["proof_key"]), digest, row.proof)


def test_v3_a_state_claimed_by_another_signer_or_epoch_is_refused() -> None:
    digest, sig = hx(CONSENT["digest"]), hx(CONSENT["sig"])
    c = chain()
    assert not states.signature_valid(digest, "bob", 2, sig, c.signer_key("bob", 2))
    assert not states.signature_valid(digest, "anne", 1, sig, c.signer_key("anne", 1))
    assert not states.signature_valid(digest, "anne", 3, sig, c.signer_key("anne", 3))


def test_v3_the_deadline_follows_from_the_signed_state() -> None:
    row = _row()
    days = row.retain_days or chain().current.settings["retention_days"]
    assert consents.deadline(row.given, row.last_activity, days) == CONSENT["retain_until"]


# -- a pending note ------------------------------------------------------------------------


def test_v3_pending_note_opens_with_the_consent_box_key_and_is_signed_by_its_author() -> None:
    p = V3["pending_note"]
    secret, _ = states.consent_box(DATA_KEY)
    record = hx(p["record"])
    plain = crypto.open_sealed(
        secret, record, notes.pending_ad(p["id"], CONSENT["consent_id"], 1), where="vector"
    )
    assert keyring.decode_record(plain, 5, where="vector") == p["fields"]
    date, created = p["fields"][:2]
    digest = states.pending_digest(
        VAULT_ID,
        note_id=p["id"],
        consent_id=CONSENT["consent_id"],
        date=date,
        created=created,
        tag=states.record_tag(record),
    )
    assert digest == hx(p["digest"])
    key = chain().signer_key("bob", p["epoch"])
    assert states.signature_valid(digest, "bob", p["epoch"], hx(p["sig"]), key)
    with pytest.raises(IntegrityError):
        crypto.open_sealed(
            secret, record, notes.pending_ad("N-0000-0000-0", CONSENT["consent_id"], 1), where="x"
        )


# -- an ending and its erasure-log line ------------------------------------------------------


def test_v3_ending_log_line_is_read_signed_and_written_back_unchanged() -> None:
    vector = V3["ending"]
    signed = endings._parse(vector["line"])
    assert states.ending_digest(VAULT_ID, signed.ending) == hx(vector["digest"])
    assert endings.signature_valid(chain(), signed)
    assert signed.to_line() == vector["line"].encode() + b"\n"


@pytest.mark.parametrize(
    "change",
    [
        {"consent_id": "C-ENDE-D001"},
        {"given": "2026-10-02"},
        {"ended": "2026-11-23T11:00:01.000000Z"},
        {"reason": "expired"},
        {"ended_by": "bob"},
        {"signer": "bob"},
        {"epoch": 1},
    ],
    ids=lambda c: next(iter(c)),
)
def test_v3_an_edited_log_line_is_not_a_signed_ending(change: dict[str, Any]) -> None:
    line = json.loads(V3["ending"]["line"])
    line.update(change)
    signed = endings._parse(json.dumps(line))
    assert not endings.signature_valid(chain(), signed)


# -- the audit trail -----------------------------------------------------------------------


def _audit_rows() -> list[AuditRow]:
    out = []
    for e in V3["audit"]["entries"]:
        out.append(
            AuditRow(
                seq=e["seq"],
                ts=e["ts"],
                actor=e["actor"],
                action=e["action"],
                consent_id=e["consent_id"],
                object_id=e["object_id"],
                prev=hx(e["prev"]),
                hash=hx(e["hash"]),
                mac=None,
                epoch=e["epoch"],
                detail=e["detail"],
                rev=e["rev"],
                state=hx(e["state"]) if e["state"] else None,
            )
        )
    return out


def test_v3_audit_entries_hash_and_their_batch_is_signed() -> None:
    entries = _audit_rows()
    for row in entries:
        assert audit.entry_hash(row.prev, row) == row.hash
    message = audit.batch_message(VAULT_ID, V3["audit"]["batch_start"], entries[-1])
    assert KEYS["anne"].sign(message) == hx(V3["audit"]["sig"])
    key = chain().signer_key("anne", 2)
    assert key is not None
    assert crypto.verify(key, message, hx(V3["audit"]["sig"]))


@pytest.mark.parametrize(
    "change",
    [
        {"ts": "2026-11-23T10:10:01.000000Z"},
        {"actor": "bob"},
        {"action": "consent.withdraw"},
        {"consent_id": "C-0000-0000"},
        {"object_id": "kari"},
        {"epoch": 1},
        {"detail": "emergency"},
        {"rev": 4},
        {"state": bytes(32)},
    ],
    ids=lambda c: next(iter(c)),
)
def test_v3_an_edited_audit_entry_no_longer_hashes(change: dict[str, Any]) -> None:
    for row in _audit_rows():
        edited = dataclasses.replace(row, **change)
        assert audit.entry_hash(row.prev, edited) != row.hash


def test_v3_an_audit_batch_claimed_by_another_actor_or_range_is_refused() -> None:
    last = _audit_rows()[-1]
    sig, c = hx(V3["audit"]["sig"]), chain()
    start = V3["audit"]["batch_start"]
    for first, row, signer in (
        (start, dataclasses.replace(last, actor="bob"), "bob"),
        (start + 1, last, "anne"),
        (start, dataclasses.replace(last, epoch=1), "anne"),
    ):
        key = c.signer_key(signer, row.epoch or 0)
        assert key is not None
        assert not crypto.verify(key, audit.batch_message(VAULT_ID, first, row), sig)
