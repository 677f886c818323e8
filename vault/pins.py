"""What each user last saw of a vault, kept in her own state directory (as SSH keeps
known hosts): the vault's root fingerprint, the newest epoch and the end of the audit
trail.

A file writer can put an older copy of the vault in place (a backup copied by hand, a
`cp` taken before a withdrawal) or a consistent forgery; nothing in the vault's own
directory can prove it is the newest. A pin lives where that file writer cannot write
(``$XDG_STATE_HOME/nok/known-vaults.json``, else ``~/.local/state/nok/…``; the job keeps
its own, in its state directory), and at every unlock the vault must still hold the epoch
and the trail entry the pin names. A vault that went back is refused
(:class:`VaultRolledBack`) until an admin of the newer state signs an epoch that follows
it, the recovery key accepts it, or the user accepts it herself (``nok key accept``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from vault import crypto, files
from vault.epochs import BY_RECOVERY, RESTORE_EVENTS, Chain, message
from vault.errors import IntegrityError, StorageError, UnsafePermissions

FILE_NAME = "known-vaults.json"


class VaultRolledBack(IntegrityError):
    template = (
        "this vault is older than the one you last used: its keys are at version {found}, "
        "but you last saw version {pinned}: an older copy or a backup was put in place "
        "outside nok"
    )
    hint_template = (
        "if an admin restored it on purpose, ask her to confirm, then run 'nok key accept'; "
        "otherwise put the newest copy back"
    )


class TrailRolledBack(VaultRolledBack):
    template = (
        "this vault is older than the one you last used: its audit trail no longer holds "
        "entry {seq}, which you saw: an older copy was put in place, or the trail was cut, "
        "outside nok"
    )


class VaultKeysReplaced(IntegrityError):
    template = (
        "this vault's root key is {found}, but the vault you know under this id has {pinned}: "
        "the file was replaced by another vault or a forgery"
    )
    hint_template = (
        "if the vault was created anew on purpose, run 'nok key accept' after checking the "
        "fingerprint with an admin"
    )


@dataclass(frozen=True)
class Pin:
    """One vault as a user last saw it."""

    vault_id: str
    root: bytes
    epoch: int
    epoch_hash: bytes
    recovery: bytes
    made: str
    audit_seq: int = 0
    audit_hash: bytes = b""

    def to_json(self) -> dict[str, object]:
        raw = asdict(self)
        for key in ("root", "epoch_hash", "recovery", "audit_hash"):
            raw[key] = getattr(self, key).hex()
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Pin:
        return cls(
            vault_id=str(raw["vault_id"]),
            root=bytes.fromhex(str(raw["root"])),
            epoch=int(str(raw["epoch"])),
            epoch_hash=bytes.fromhex(str(raw["epoch_hash"])),
            recovery=bytes.fromhex(str(raw["recovery"])),
            made=str(raw["made"]),
            audit_seq=int(str(raw.get("audit_seq", 0))),
            audit_hash=bytes.fromhex(str(raw.get("audit_hash", ""))),
        )


def pin_of(chain: Chain, audit_seq: int = 0, audit_hash: bytes = b"") -> Pin:
    current = chain.current
    return Pin(
        vault_id=current.vault_id,
        root=chain.root,
        epoch=current.number,
        epoch_hash=current.hash,
        recovery=current.keys.recovery_sign,
        made=current.made,
        audit_seq=audit_seq,
        audit_hash=audit_hash,
    )


def default_directory(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/nok``, else ``~/.local/state/nok``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nok"


@dataclass(frozen=True)
class PinStore:
    """The pins of one user (or one job), in one private directory."""

    directory: Path

    @classmethod
    def default(cls) -> PinStore:
        return cls(default_directory())

    @property
    def path(self) -> Path:
        return self.directory / FILE_NAME

    def _read_all(self) -> dict[str, dict[str, object]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(
                "could not read your record of known vaults {path}: {reason}",
                path=str(self.path),
                reason=exc.strerror or type(exc).__name__,
            ) from None
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                raise UnsafePermissions(
                    "{path} is not a file of yours; nok keeps what you last saw of each "
                    "vault there",
                    path=str(self.path),
                    fix="600",
                    who="another user",
                    mode=f"{stat.S_IMODE(st.st_mode):04o}",
                )
            text = handle.read()
        try:
            raw = json.loads(text or b"{}")
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            return raw
        except ValueError:
            raise IntegrityError(where=f"your record of known vaults {self.path}") from None

    def get(self, vault_id: str) -> Pin | None:
        """The pin of ``vault_id``; None when this user never used it.

        Raises IntegrityError (a damaged file), UnsafePermissions, StorageError.
        """
        raw = self._read_all().get(vault_id)
        if raw is None:
            return None
        try:
            return Pin.from_json(raw)
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(where=f"your record of known vaults {self.path}") from None

    def put(self, pin: Pin) -> None:
        """Record ``pin`` (atomically; the directory 0700 and the file 0600).

        Raises StorageError when it cannot be written.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            everything = self._read_all()
            everything[pin.vault_id] = pin.to_json()
            data = json.dumps(everything, sort_keys=True, indent=1).encode() + b"\n"
            files.write_private(self.path, data)
        except OSError as exc:
            raise StorageError(
                "could not write your record of known vaults {path}: {reason}",
                path=str(self.path),
                reason=exc.strerror or type(exc).__name__,
            ) from None

    def forget(self, vault_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            everything = self._read_all()
            if everything.pop(vault_id, None) is not None:
                data = json.dumps(everything, sort_keys=True, indent=1).encode() + b"\n"
                files.write_private(self.path, data)


TrailLookup = Callable[[int], bytes | None]
"""The stored hash of audit entry ``seq``, or None when there is none."""


def check(chain: Chain, pin: Pin | None, trail: TrailLookup) -> None:
    """Raise unless the vault described by ``chain`` (and its trail) is the one ``pin``
    saw, or newer.

    Newer means: the chain still holds the pinned epoch unchanged (and, unless a restore
    was signed since, the trail still holds the pinned entry); or its newest epoch was
    signed by the recovery key the pin names, after the pinned epoch was made.

    Raises:
        VaultKeysReplaced: another root key.
        VaultRolledBack: an older chain or an older trail.
    """
    if pin is None:
        return
    if not crypto.same(pin.root, chain.root):
        from vault.identity import show_fingerprint

        raise VaultKeysReplaced(
            found=show_fingerprint(chain.root), pinned=show_fingerprint(pin.root)
        )
    seen = chain.at(pin.epoch)
    if seen is not None and crypto.same(seen.hash, pin.epoch_hash):
        later = chain.epochs[chain.epochs.index(seen) + 1 :]
        if any(e.event in RESTORE_EVENTS for e in later):
            return
        if pin.audit_seq and not _holds(trail, pin.audit_seq, pin.audit_hash):
            raise TrailRolledBack(seq=pin.audit_seq)
        return
    current = chain.current
    if (
        current.by == BY_RECOVERY
        and current.event == "recovery.accept"
        and current.made >= pin.made
        and crypto.verify(
            pin.recovery, message(current.vault_id, current.number, current.body), current.sig
        )
    ):
        return
    raise VaultRolledBack(found=current.number, pinned=pin.epoch)


def _holds(trail: TrailLookup, seq: int, digest: bytes) -> bool:
    found = trail(seq)
    return found is not None and crypto.same(found, digest)


def advance(pin: Pin | None, chain: Chain, audit_seq: int, audit_hash: bytes) -> Pin:
    """The pin after a successful :func:`check`: the newest epoch, the trail's end."""
    new = pin_of(chain, audit_seq, audit_hash)
    if pin is not None and pin.epoch == new.epoch and pin.audit_seq == audit_seq:
        return replace(pin, audit_hash=audit_hash)
    return new
