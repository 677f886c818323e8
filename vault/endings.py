"""How a consent ended, as signed statements, and when nok may act on one.

When a consent is withdrawn or expires, its row keeps a *tombstone*: how and when it
ended and who ended it (vault.states.Ending), signed by that staff member or the job. The
same statement is appended to the erasure log beside the vault (``<vault>.erasures``, one
JSON line each), so that a restore from an older backup can erase the consent again even
when the vault itself was lost, and recorded in the signed audit trail.

An ending tells nok to erase that consent in a copy that still holds it (a backup, an
older copy put back, rows pasted in) only when (:func:`authentic`):

* its signature checks out with the key the live vault's signed chain lists for its
  signer, in the epoch it names (a log line or a status edited in the file has none);
* it names the same consent, given and registered on the same days, as the copy holds;
* the copy's own state of that consent is authentic (its signature and its proof, which
  the one acting checks with the consent's data key, or the job with the proof key);
* its signer had the authority: for a withdrawal, an admin or the consent's contact
  person or a reader in that state; for an expiry, also the job, and only if that state
  was past its deadline on the day it ended.

Anything else is reported (``nok status``, ``nok verify``) and never acted on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vault import audit, crypto, files, ids, states
from vault.dates import day
from vault.epochs import Chain
from vault.errors import BadInput, IntegrityError, NotFound, StorageError, SymlinkRefused
from vault.store import AuditRow, ConsentRow, Store

WITHDRAWN = "withdrawn"
EXPIRED = "expired"
LOG_SUFFIX = ".erasures"
LOG_VERSION = 3


@dataclass(frozen=True)
class Signed:
    """An ending and its signature."""

    ending: states.Ending
    epoch: int
    sig: bytes
    # Rebuilt from an audit entry whose batch signature the caller checked (from_entry).
    vouched: bool = False
    # Who signed it: who ended the consent, or the admin who upgraded a format-2 vault
    # and vouched for the endings it held (None: ``ending.ended_by``).
    by: str | None = None

    @property
    def signer(self) -> str:
        return self.by or self.ending.ended_by

    @property
    def consent_id(self) -> str:
        return self.ending.consent_id

    def to_line(self) -> bytes:
        e = self.ending
        value = {
            "v": LOG_VERSION,
            "consent_id": e.consent_id,
            "status": e.status,
            "given": e.given,
            "created": e.created,
            "ended": e.ended,
            "reason": e.reason,
            "ended_by": e.ended_by,
            "signer": self.signer,
            "epoch": self.epoch,
            "sig": self.sig.hex(),
        }
        return json.dumps(value, separators=(",", ":")).encode() + b"\n"


class Actor(Protocol):
    """Whoever acts on endings: a staff member (vault.session.Unlocked) or the scheduled
    job (vault.jobs.JobUnlocked)."""

    name: str
    now: dt.datetime
    chain: Chain

    @property
    def vault_id(self) -> str: ...

    @property
    def is_job(self) -> bool: ...

    def signer(self) -> audit.Signer: ...

    def today(self) -> str: ...

    def proof_key(self, store: Store, row: ConsentRow) -> bytes | None: ...


def sign(actor: Actor, ending: states.Ending) -> Signed:
    """``ending`` signed by ``actor`` (who vouches for it, when she did not end it)."""
    signer = actor.signer()
    digest = states.ending_digest(signer.vault_id, ending)
    sig = signer.keys.sign(states.signed_message(digest, signer.name, signer.epoch))
    return Signed(
        ending, signer.epoch, sig, by=None if signer.name == ending.ended_by else signer.name
    )


def from_row(row: ConsentRow) -> Signed | None:
    """The ending a tombstone row holds (None when the row has none, or holds no
    signature: a status changed in the file)."""
    if row.status == states.ACTIVE or not isinstance(row.state_sig, bytes):
        return None
    if not isinstance(row.state_epoch, int) or row.ended is None or row.ended_by is None:
        return None
    ending = states.Ending(
        row.id,
        row.status,
        row.given,
        row.created,
        row.ended,
        row.end_reason or row.status,
        row.ended_by,
    )
    signer = row.state_signer or row.ended_by
    return Signed(
        ending, row.state_epoch, row.state_sig, by=None if signer == row.ended_by else signer
    )


def from_entry(vault_id: str, entry: AuditRow, row: ConsentRow) -> Signed | None:
    """The ending an audit entry of an erasure records, rebuilt with the given and
    registered days of ``row`` (the copy's): the entry holds the ending's digest, so this
    is that ending only if every field matches (else None). Vouched for by the entry's
    batch signature, which the caller checks (vault.audit.entry_signed)."""
    if entry.consent_id != row.id or not isinstance(entry.state, bytes):
        return None
    status = EXPIRED if entry.action == "consent.expire" else WITHDRAWN
    ending = states.Ending(
        row.id, status, row.given, row.created, entry.ts, entry.detail or status, entry.actor
    )
    if not crypto.same(states.ending_digest(vault_id, ending), entry.state):
        return None
    return Signed(ending, entry.epoch or 0, b"", vouched=True)


def signature_valid(chain: Chain, signed: Signed) -> bool:
    if signed.vouched:
        return True
    digest = states.ending_digest(chain.current.vault_id, signed.ending)
    key = chain.signer_key(signed.signer, signed.epoch)
    return states.signature_valid(digest, signed.signer, signed.epoch, signed.sig, key)


def _authority(chain: Chain, signed: Signed, target: ConsentRow, zone: str, today: str) -> bool:
    """Whether ``signed``'s signer could end ``target`` as its (authentic) state stands,
    on the day it says (a grant that had run out by then gave none), no later than
    ``today``: whoever signs an ending chooses its date."""
    e = signed.ending
    at = chain.at(signed.epoch)
    if at is None:
        return False
    ended_on = _day_of(e.ended, zone)
    readers = {
        r.name
        for r in states.decode_readers(target.readers or "[]", consent_id=target.id)
        if r.until is None or (ended_on is not None and ended_on <= r.until)
    }
    who = signed.signer
    member = at.staff.get(who)
    if who != e.ended_by and (member is None or member.role != "admin"):
        # Only an admin vouches for an ending someone else made (an upgrade, a
        # countersignature); anyone else signs her own.
        return False
    staff_ok = member is not None and (
        member.role == "admin" or who == target.contact or who in readers
    )
    if e.status == WITHDRAWN:
        return staff_ok
    if e.status != EXPIRED or not (staff_ok or who in at.jobs):
        return False
    from vault.consents import deadline

    retention = int(at.settings.get("retention_days", 730))
    ended_day = _day_of(e.ended, zone)
    return (
        ended_day is not None
        and ended_day <= today
        and deadline(target.given, target.last_activity, target.retain_days or retention)
        < ended_day
    )


def _day_of(stamp: str, zone: str) -> str | None:
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return day(when, zone)


def state_authentic(actor: Actor, store: Store, row: ConsentRow) -> bool:
    """Whether ``row`` (in ``store``, the vault or a copy) carries a state signed by a
    staff member the chain lists, with a proof ``actor`` can check (with the data key or
    the proof key). False when ``actor`` cannot check it."""
    from vault import consents

    if row.status != states.ACTIVE:
        return False
    key = actor.proof_key(store, row)
    if key is None:
        return False
    digest = consents.state_digest(actor.vault_id, row)
    signer_key = actor.chain.staff_key(str(row.state_signer), row.state_epoch or 0)
    return states.proof_valid(key, digest, row.proof) and states.signature_valid(
        digest, row.state_signer, row.state_epoch, row.state_sig, signer_key
    )


def authentic(actor: Actor, store: Store, signed: Signed, target: ConsentRow, zone: str) -> bool:
    """Whether ``actor`` may erase ``target`` (active in ``store``) on ``signed``'s word;
    see the module docstring."""
    e = signed.ending
    if target.id != e.consent_id or target.given != e.given or target.created != e.created:
        return False
    if not signature_valid(actor.chain, signed):
        return False
    if not state_authentic(actor, store, target):
        return False
    return _authority(actor.chain, signed, target, zone, actor.today())


# -- the erasure log ------------------------------------------------------------------------


def log_path(vault_path: Path) -> Path:
    """The erasure log beside the vault: ``<vault path>.erasures``."""
    return vault_path.with_name(vault_path.name + LOG_SUFFIX)


def _open_log(path: Path, group: str | None) -> int:
    try:
        if not path.exists() and not path.is_symlink():
            with contextlib.suppress(FileExistsError):
                files.create_private_file(path, group)
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefused(path=str(path)) from None
        raise StorageError(
            "could not write the erasure log {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None


def append_log(path: Path, records: Sequence[Signed], *, group: str | None = None) -> None:
    """Append signed endings to the erasure log (created 0600, or 0660 for a group vault),
    fsynced.

    Raises:
        SymlinkRefused: the log is a symbolic link.
        UnsafePermissions: other users can read the log, or it is not a regular file.
        StorageError: it cannot be written (the caller's transaction then rolls back).
    """
    if not records:
        return
    fd = _open_log(path, group)
    try:
        st = os.fstat(fd)
        files.check_regular(path, st.st_mode)
        files.check_mode(path, st.st_mode, group_ok=group is not None)
        size = st.st_size
        # A line torn by a crash must not swallow the next record.
        lead = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
        data = lead + b"".join(r.to_line() for r in records)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(
            "could not write the erasure log {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    finally:
        os.close(fd)


def _parse(line: str) -> Signed:
    raw = json.loads(line)
    if not isinstance(raw, dict) or raw.get("v") != LOG_VERSION:
        raise ValueError("not a format-3 ending")
    fields = ("consent_id", "status", "given", "created", "ended", "reason", "ended_by")
    values = [raw.get(f) for f in fields]
    if not all(isinstance(v, str) for v in values) or not isinstance(raw.get("epoch"), int):
        raise ValueError("missing field")
    consent_id, status, given, created, ended, reason, ended_by = (str(v) for v in values)
    if status not in (WITHDRAWN, EXPIRED):
        raise ValueError("unknown status")
    dt.datetime.fromisoformat(ended.replace("Z", "+00:00"))
    canonical = ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent")
    ending = states.Ending(canonical, status, given, created, ended, reason, ended_by)
    signer = raw.get("signer", ended_by)
    if not isinstance(signer, str):
        raise ValueError("signer")
    sig = bytes.fromhex(str(raw.get("sig", "")))
    return Signed(ending, int(raw["epoch"]), sig, by=None if signer == ended_by else signer)


@dataclass(frozen=True)
class Log:
    """The erasure log as read: its endings (first per consent), and the numbers of lines
    that are not endings (damaged or planted)."""

    records: tuple[Signed, ...]
    bad_lines: tuple[int, ...]


def read_log(path: Path, *, missing_ok: bool = False, chain: Chain | None = None) -> Log:
    """The endings recorded in ``path``, in file order, one per consent: the first whose
    signature checks out with ``chain`` (an ending countersigned when its signer's key
    stopped counting follows the original: vault.countersign), else the first. A last
    line without its newline (torn by a crash mid-write) is skipped; any other line that
    is not an ending is counted in ``bad_lines`` (never acted on).

    Raises:
        NotFound: no file at ``path`` (unless ``missing_ok``, which gives an empty log).
        UnsafePermissions: it is not a regular file (a FIFO that would block).
        StorageError: the file cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        if missing_ok:
            return Log((), ())
        raise NotFound("there is no erasure log at {path}", path=str(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefused(path=str(path)) from None
        raise StorageError(
            "could not read the erasure log {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    with os.fdopen(fd, "rb") as handle:
        files.check_regular(path, os.fstat(handle.fileno()).st_mode)
        text = handle.read().decode("utf-8", errors="replace")
    complete = text.split("\n")[:-1]
    seen: dict[str, Signed] = {}
    bad = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = _parse(line)
        except (ValueError, BadInput, IntegrityError):
            bad.append(number)
            continue
        have = seen.get(record.consent_id)
        if have is None or (
            chain is not None
            and not signature_valid(chain, have)
            and signature_valid(chain, record)
        ):
            seen[record.consent_id] = record
    return Log(tuple(seen.values()), tuple(bad))
