"""Need-to-know: a person's consent opens only for its contact person, colleagues granted
access and the admins, and cryptography enforces it (issue 17).

The adversary is a colleague: she holds her own passphrase, the team key and a copy of the
vault file. She sees that a consent exists, its id, status and contact person; nothing
personal reaches her through any command, and no key she holds opens it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from nokcli import dates
from tests.conftest import ADMIN, CLOCK_ENV, NOW, keys_that_open, run_nok
from vault import Vault, access, consents, crypto, grants, notes, seeds, staff, states
from vault.errors import NokError
from vault.session import Unlocked

KARI = "kari"
KARI_PASS = "kari horse battery staple"
OLA = "ola"
OLA_PASS = "ola horse battery staple"
SECRET_ALIAS = "ALIAS-ONLY-ANNE-READS"
SECRET_TEXT = "NOTE-ONLY-ANNE-READS"


@pytest.fixture
def team(unlocked: Unlocked) -> Unlocked:
    """anne (admin) and two colleagues, kari and ola (staff)."""
    staff.add(unlocked, KARI, passphrase=KARI_PASS.encode())
    staff.add(unlocked, OLA, passphrase=OLA_PASS.encode())
    return unlocked


def as_(name: str, secret: str, vault_path: Path, *, days: int = 0) -> Unlocked:
    return Vault.open(vault_path).unlock(
        name, secret.encode(), now=NOW + dt.timedelta(days=days, minutes=1)
    )


@pytest.fixture
def private(team: Unlocked) -> str:
    """A consent ola registers (he is its contact person), with a note."""
    c = consents.add(
        team,
        consents.ConsentInput(
            subject=SECRET_ALIAS, purpose="PURPOSE-SECRET", categories=("safety",), contact=OLA
        ),
    )
    notes.add(team, c.id, SECRET_TEXT)
    return c.id


def env_of(env: dict[str, str], name: str, secret: str) -> dict[str, str]:
    return {**env, **CLOCK_ENV, "NOK_USER": name, "NOK_PASSPHRASE": secret}


@pytest.fixture
def env(nok_env: dict[str, str]) -> dict[str, str]:
    return dict(nok_env)


def test_a_colleague_without_access_gets_nothing_personal_from_any_command(
    private: str, team: Unlocked, env: dict[str, str], tmp_path: Path
) -> None:
    team.close()
    kari = env_of(env, KARI, KARI_PASS)
    outputs = []
    for args in (
        ("consent", "list", "--json"),
        ("consent", "show", private, "--json"),
        ("note", "list", "--json"),
        ("note", "list", "--consent", private, "--json"),
        ("note", "search", "ONLY", "--json"),
        ("stats", "--json"),
        ("export", private, "--format", "json"),
    ):
        result = run_nok(*args, env=kari)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode in (0, 11), (args, result.stderr)
    shell = run_nok("shell", env=kari, input=f"note list\nconsent show {private}\nexit\n")
    outputs.append(shell.stdout + shell.stderr)
    completion = run_nok(
        env={
            **kari,
            "NOK_COMPLETE": "bash_complete",
            "COMP_WORDS": "nok note add C",
            "COMP_CWORD": "3",
        }
    )
    outputs.append(completion.stdout)
    for text in outputs:
        for secret in (SECRET_ALIAS, SECRET_TEXT, "PURPOSE-SECRET"):
            assert secret not in text
    listing = json.loads(run_nok("consent", "list", "--json", env=kari).stdout)
    shown = next(c for c in listing if c["id"] == private)
    assert shown["access"] is False
    assert shown["subject"] is None
    assert shown["contact"] == OLA
    export = run_nok("export", private, env=kari)
    assert export.returncode == 11


def test_no_key_a_colleague_holds_opens_the_consent(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    """With her own passphrase and the raw file: every wrap in the file, tried with every
    secret she holds (her own box and wrap keys, the team seed's), opens no data key that
    decrypts the consent's record."""
    row = team.store.get_consent(private)
    assert row is not None
    team.close()
    kari = as_(KARI, KARI_PASS, vault_path)
    opened = keys_that_open(
        [kari.keys, kari.team], kari.vault_id, private, kari.store.wraps(private)
    )
    assert opened == []
    with pytest.raises(access.NoAccess):
        access.open_key(kari, row, admin_ok=True)
    # She holds no admin seed, and the team seed opens no need-to-know consent.
    assert kari.admin is None
    with pytest.raises(seeds.KeyReplaced):
        seeds.open_seed(
            kari.store,
            vault_id=kari.vault_id,
            purpose="admin",
            holder=ADMIN,
            box_secret=kari.keys.box_secret,
            expect=kari.epoch.keys.admin,
            version=kari.epoch.keys.admin_version,
        )
    kari.close()


def test_a_grant_opens_a_revocation_rekeys_and_an_old_wrap_opens_nothing_new(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    grants.grant(team, private, KARI, reason="covering")
    team.close()
    kari = as_(KARI, KARI_PASS, vault_path)
    assert consents.show(kari, private).subject == SECRET_ALIAS
    assert [n.text for n in notes.list_notes(kari, consent_id=private)] == [SECRET_TEXT]
    old_wrap = next(w for w in kari.store.wraps(private) if w[0] == KARI)
    old_key = access.unwrap(kari, private, *old_wrap)
    kari.close()
    ola = as_(OLA, OLA_PASS, vault_path)
    row = grants.revoke(ola, private, KARI)
    assert row.key_version == 2
    written = notes.add(ola, private, "WRITTEN-AFTER-REVOCATION")
    ola.close()
    kari = as_(KARI, KARI_PASS, vault_path)
    assert consents.show(kari, private).access is False
    assert kari.store.wrap_for(private, [KARI]) == []
    after = kari.store.get_note(written.id)
    assert after is not None
    assert after.key_version == 2
    with pytest.raises(NokError):
        notes.open_record(old_key, after)
    kari.close()


def test_a_revoked_grant_put_back_from_an_older_copy_is_refused(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    """kari keeps a copy from while she had access; after the revocation she writes the
    consent's rows back (its old signed state, her wrap, the old notes). Everything is
    signed and proved, but it is older than what the trail records: nothing opens it, and
    ola's next note is not written under the key kari holds."""
    import sqlite3

    grants.grant(team, private, KARI, reason="covering")
    team.close()
    old = sqlite3.connect(vault_path)
    saved = {
        table: old.execute(f"SELECT * FROM {table} WHERE {col} = ?", [private]).fetchall()  # noqa: S608
        for table, col in (
            ("consents", "id"),
            ("consent_keys", "consent_id"),
            ("notes", "consent_id"),
        )
    }
    old.close()
    ola = as_(OLA, OLA_PASS, vault_path)
    grants.revoke(ola, private, KARI)
    ola.close()
    db = sqlite3.connect(vault_path, isolation_level=None)
    for table, col in (("notes", "consent_id"), ("consent_keys", "consent_id"), ("consents", "id")):
        db.execute(f"DELETE FROM {table} WHERE {col} = ?", [private])  # noqa: S608
    for table in ("consents", "consent_keys", "notes"):
        for values in saved[table]:
            marks = ", ".join("?" for _ in values)
            db.execute(f"INSERT INTO {table} VALUES ({marks})", values)  # noqa: S608
    db.close()
    ola = as_(OLA, OLA_PASS, vault_path, days=1)
    with pytest.raises(states.StateRolledBack):
        notes.add(ola, private, "MUST-NOT-BE-UNDER-THE-OLD-KEY")
    with pytest.raises(states.StateRolledBack):
        consents.show(ola, private)
    ola.close()
    assert b"MUST-NOT-BE" not in vault_path.read_bytes()


def test_a_note_from_a_colleague_without_access_is_hers_to_write_not_to_read(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    team.close()
    kari = as_(KARI, KARI_PASS, vault_path)
    added = notes.add(kari, private, "KARI-TOOK-A-CALL")
    assert added.pending
    assert added.access is False
    assert notes.show(kari, added.id).access is False
    assert list(notes.list_notes(kari)) == []
    kari.close()
    ola = as_(OLA, OLA_PASS, vault_path)
    mine = {n.id: n for n in notes.list_notes(ola, consent_id=private)}
    assert mine[added.id].text == "KARI-TOOK-A-CALL"
    assert mine[added.id].author == KARI
    # The next note by someone with access folds it into the chain, under the data key.
    notes.add(ola, private, "ola follows up")
    folded = ola.store.get_note(added.id)
    assert folded is not None
    assert not folded.pending
    ola.close()
    assert b"KARI-TOOK-A-CALL" not in vault_path.read_bytes()


def test_a_pending_note_cannot_name_another_author(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    """kari seals a note to the consent's public key (anyone can) with ola's name inside
    and signs it with her own key: the contact person is not told ola wrote it."""
    from vault import keyring, states

    team.close()
    kari = as_(KARI, KARI_PASS, vault_path)
    added = notes.add(kari, private, "WRITTEN-BY-KARI")
    row = kari.store.get_note(added.id)
    consent = kari.store.get_consent(private)
    assert row is not None
    assert consent is not None
    assert isinstance(consent.consent_box, bytes)
    record = crypto.seal_to(
        consent.consent_box,
        keyring.encode_record((row.date, row.created, "session", OLA, "SIGNED-AS-OLA")),
        notes.pending_ad(row.id, private, row.key_version),
    )
    forged = dataclasses.replace(row, record=record)
    sig = kari.keys.sign(
        states.signed_message(
            notes.pending_digest_of(kari.vault_id, forged), KARI, kari.epoch.number
        )
    )
    with kari.store.write():
        kari.store.countersign_pending(row.id, KARI, kari.epoch.number, sig)
        kari.store.conn.execute("UPDATE notes SET record = ? WHERE id = ?", [record, row.id])
    kari.close()
    ola = as_(OLA, OLA_PASS, vault_path)
    with pytest.raises(states.StateForged):
        list(notes.list_notes(ola, consent_id=private))
    ola.close()


def test_an_admin_reads_outside_her_assignment_only_with_a_reason(
    private: str, team: Unlocked, env: dict[str, str]
) -> None:
    team.close()
    anne = {**env, **CLOCK_ENV}
    refused = run_nok("consent", "show", private, env=anne)
    assert refused.returncode == 11
    assert "--reason" in refused.stderr
    listing = json.loads(run_nok("note", "list", "--json", env=anne).stdout)
    assert all(n["consent_id"] != private for n in listing)
    shown = run_nok("consent", "show", private, "--json", "--reason", "nødstilfelle", env=anne)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["subject"] == SECRET_ALIAS
    review = json.loads(run_nok("audit", "review", "--json", env=anne).stdout)
    assert {
        "kind": "outside",
        "actor": ADMIN,
        "consent_id": private,
        "detail": "emergency",
    }.items() <= {k: v for f in review if f["kind"] == "outside" for k, v in f.items()}.items()
    export = json.loads(
        run_nok("export", private, "--format", "json", "--reason", "person-asked", env=anne).stdout
    )
    reads = [e for e in export["audit"] if e["detail"] == "emergency"]
    assert reads
    assert reads[0]["action"] == "consent.show"
    assert export["access"]["contact"] == OLA


def test_a_grant_that_ran_out_is_refused_and_then_rekeyed(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    today = team.today()
    grants.grant(team, private, KARI, reason="shared-follow-up", until=today)
    team.close()
    kari = as_(KARI, KARI_PASS, vault_path, days=2)
    with pytest.raises(access.GrantExpired):
        consents.show(kari, private)
    kari.close()
    ola = as_(OLA, OLA_PASS, vault_path, days=2)
    assert ola.expired == [private]
    row = ola.store.get_consent(private)
    assert row is not None
    assert row.key_version == 2
    assert access.readers_of(row) == ()
    ola.close()


def test_a_grant_that_ran_out_gives_no_action_before_the_rekeying(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    """Her wrap is still in the file until the contact person or an admin unlocks: from
    the day after the grant's last one, nothing she does opens it (a withdrawal, an
    extension, a correction), and an ending she signs for a day after it has no
    authority in any copy."""
    from vault import corrections, erasure

    today = team.today()
    grants.grant(team, private, KARI, reason="covering", until=today)
    (note_id,) = [n.id for n in notes.list_notes(team, consent_id=private)]
    team.close()
    kari = as_(KARI, KARI_PASS, vault_path, days=2)
    with pytest.raises(access.GrantExpired):
        erasure.withdraw(kari, private)
    with pytest.raises(access.GrantExpired):
        erasure.extend(kari, private, 30)
    with pytest.raises(access.GrantExpired):
        corrections.amend_note(kari, note_id, text="REWRITTEN")
    kari.close()
    ola = as_(OLA, OLA_PASS, vault_path, days=3)
    assert consents.show(ola, private).subject == SECRET_ALIAS
    assert [n.text for n in notes.list_notes(ola, consent_id=private)] == [SECRET_TEXT]
    ola.close()


def test_the_team_setting_opens_new_consents_to_everyone_and_old_ones_stay(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    from vault import settings

    settings.set_text(team, "access", "team")
    shared = consents.add(
        team, consents.ConsentInput(subject="SHARED", purpose="p", categories=("safety",))
    )
    team.close()
    kari = as_(KARI, KARI_PASS, vault_path)
    assert consents.show(kari, shared.id).subject == "SHARED"
    assert consents.show(kari, private).access is False
    kari.close()


def test_removing_a_member_removes_her_access_and_reassigns_her_consents(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    removal = staff.remove(team, OLA)
    assert removal.reassigned == (private,)
    row = team.store.get_consent(private)
    assert row is not None
    assert row.contact == ADMIN
    assert team.store.wrap_for(private, [OLA]) == []
    assert consents.show(team, private).subject == SECRET_ALIAS
    team.close()


def test_a_reader_list_edited_in_the_file_gives_no_access(
    private: str, team: Unlocked, vault_path: Path
) -> None:
    """Naming herself a reader in the plaintext column opens nothing: the columns are no
    longer those of a signed state, so nok refuses to decide anything with them (her
    listing shows the consent without its personal fields)."""
    import sqlite3

    team.close()
    db = sqlite3.connect(vault_path, isolation_level=None)
    db.execute(
        "UPDATE consents SET readers = ?, access = 'team' WHERE id = ?",
        [json.dumps([[KARI, ""]], separators=(",", ":")), private],
    )
    db.close()
    kari = as_(KARI, KARI_PASS, vault_path)
    with pytest.raises(states.StateForged):
        consents.show(kari, private)
    (listed,) = [c for c in consents.list_all(kari) if c.id == private]
    assert listed.access is False
    assert listed.subject is None
    kari.close()
    ola = as_(OLA, OLA_PASS, vault_path)
    with pytest.raises(NokError):
        consents.show(ola, private)
    ola.close()


def test_a_planted_data_key_wrap_is_refused(private: str, team: Unlocked, vault_path: Path) -> None:
    """Anyone can seal a key to a colleague's public key: one sealed to ola for a consent
    he works with opens, but names another consent public key than the state: refused."""
    row = team.store.get_consent(private)
    assert row is not None
    ola_box = team.epoch.staff[OLA].box
    vault_id = team.vault_id
    team.close()
    planted = crypto.new_key()
    import sqlite3

    ad = access.wrap_ad(vault_id, private, OLA, row.key_version)
    db = sqlite3.connect(vault_path, isolation_level=None)
    db.execute(
        "UPDATE consent_keys SET how = 'box', wrapped = ? WHERE consent_id = ? AND reader = ?",
        [crypto.seal_to(ola_box, planted, ad), private, OLA],
    )
    db.close()
    ola = as_(OLA, OLA_PASS, vault_path)
    with pytest.raises(access.KeyPlanted):
        notes.add(ola, private, "must not be written under a planted key")
    ola.close()


def test_a_grant_until_a_weekday_lasts_to_the_coming_one(cli_vault, monkeypatch) -> None:
    """A covering colleague given access "until friday" keeps it to the Friday ahead, not
    the one gone by (which nok would refuse as a date in the past)."""
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", KARI_PASS)
    assert cli_vault("staff", "add", KARI).exit_code == 0
    added = cli_vault(
        "consent", "add", "--subject", "A", "--purpose", "p", "--category", "c", "--json"
    )
    consent_id = json.loads(added.stdout)["id"]
    assert NOW.date().isoformat() == "2026-11-23"  # a Monday
    for word, last_day in [
        ("friday", "2026-11-27"),
        ("fredag", "2026-11-27"),
        ("tomorrow", "2026-11-24"),
        ("i morgen", "2026-11-24"),
        ("monday", "2026-11-23"),
    ]:
        given = cli_vault(
            "access", "grant", consent_id, KARI, "--reason", "covering", "--until", word, "--json"
        )
        assert given.exit_code == 0, given.stderr
        assert json.loads(given.stdout)["until"] == last_day, word
    # Looking back (--since, --date), the same word is the Friday gone by.
    assert dates.resolve("friday", NOW, field="--since") == "2026-11-20"
    assert dates.resolve("monday", NOW, field="--since") == "2026-11-23"
