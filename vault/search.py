"""Search in note bodies by decrypting them in bulk (design and what it reveals: docs/search.md).

Bodies are encrypted with each consent's data key, so nothing on disk can be searched.
Search streams the sealed records of the notes under active consents, opens each (one AEAD
call per note), and matches the text case-insensitively (Unicode case folding and NFC, so
"Å" and an "A" with a combining ring both match "å"; runs of white space count as one
space). No index is kept, so nothing beyond the note
dates already on disk is revealed, and a withdrawn consent's notes are gone from search the
moment they are erased.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator

from vault import access, consents, notes
from vault.dates import parse_day
from vault.errors import BadInput
from vault.notes import Note
from vault.session import Unlocked

MAX_QUERY = 200


def fold(text: str) -> str:
    """Case-folded and composed (NFC): "Å", "å" and "a" + combining ring all become "å"."""
    return unicodedata.normalize("NFC", text.casefold())


def matcher(text: str) -> Callable[[str], bool]:
    """A test for "this body contains ``text``", ignoring case and runs of white space.

    Raises:
        BadInput: the text is empty or longer than MAX_QUERY.
    """
    words = fold(text).split()
    phrase = " ".join(words)
    if not phrase:
        raise BadInput("the search text is empty")
    if len(phrase) > MAX_QUERY:
        raise BadInput(
            "the search text is {size} characters; the limit is {limit}",
            size=len(phrase),
            limit=MAX_QUERY,
        )
    first = words[0]

    def test(body: str) -> bool:
        folded = fold(body)
        # Most bodies fail the cheap test; only candidates pay for the white-space pass.
        if first not in folded:
            return False
        return len(words) == 1 or phrase in " ".join(folded.split())

    return test


def search(
    vault: Unlocked,
    text: str,
    *,
    consent_id: str | None = None,
    since: str | None = None,
    processes: int | None = None,
) -> Iterator[Note]:
    """Notes whose body contains ``text`` (ignoring case), by date, streamed; the notes
    are opened on ``processes`` cores (default: all; see notes.decrypt_stream).

    Arguments are checked and the search is audited (without its text) before this
    returns; the notes are decrypted as the iterator is consumed.

    Raises:
        BadInput: empty or too long text, a malformed consent id or date.
        NotFound: ``consent_id`` names no consent.
        IntegrityError: a note or data key was altered (while iterating); with
            ``consent_id``, a note of it was deleted or put back (before any is read).
    """
    test = matcher(text)
    store = vault.store
    row = None if consent_id is None else consents.get_row(store, consent_id)
    if since is not None:
        parse_day(since, field="--since")
    if row is not None:
        if not consents.readable(vault, row):
            with store.write():
                vault.record("note.search", consent_id=row.id)
            return iter(())
        with store.write():
            key = access.open_key(vault, row, admin_ok=True)
            consents.check_notes(vault, row, key)
            vault.record(
                "note.search", consent_id=row.id, detail=consents.out_of_assignment(vault, row)
            )
        rows = store.iter_note_bodies(consent_ids=[row.id], since=since)
        return notes.decrypt_stream(vault, rows, test, processes=processes)
    with store.write():
        found = notes.scope(vault, since=since)
        vault.record("note.search", detail=vault.read_reason if found.outside else None)
    if found.everything:
        every = store.iter_note_bodies(since=since, reader=access.ADMIN_READER)
        rows = (r for r in every if r.consent_id in found.ids)
    else:
        rows = store.iter_note_bodies(consent_ids=sorted(found.ids), since=since)
    return notes.decrypt_stream(vault, rows, test, processes=processes)
