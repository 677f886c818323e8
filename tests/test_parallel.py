"""List and search of every note run on every core (vault.parallel): the same notes in the
same order as on one core, errors raised where they belong, and no child process left
behind however the iteration ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ADMIN, NOW, PASSPHRASE, days_ago

from vault import Vault, audit, corrections, importer, notes, parallel, search, verify
from vault.errors import BadInput, IntegrityError
from vault.session import Unlocked

# Enough notes for several batches, so children really run.
COUNT = 3 * parallel.BATCH + 100
NEEDLE = "fjellvann"


def children(pid: int | None = None) -> set[int]:
    """The pids of the live children of ``pid`` (this process by default; Linux)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid or os.getpid()}/task").iterdir():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (task / "children").read_text().split())
    return found


def import_lines() -> list[bytes]:
    """COUNT notes in 64 consents; every 97th mentions NEEDLE (in any case)."""
    lines = []
    number = 0
    for consent in range(64):
        batch = []
        for _ in range(COUNT // 64 + 1):
            if number == COUNT:
                break
            word = NEEDLE.upper() if number % 194 == 0 else NEEDLE
            text = f"Notat {number}: samtale" + (f" om {word}" if number % 97 == 0 else "")
            batch.append({"date": days_ago(1 + number % 300), "text": text})
            number += 1
        record = {"subject": f"P{consent}", "purpose": "oppfølging", "categories": ["safety"]}
        lines.append(json.dumps({**record, "given": days_ago(400), "notes": batch}).encode())
    return lines


@pytest.fixture
def many(unlocked: Unlocked) -> Unlocked:
    """A vault holding :func:`import_lines`, imported on every core."""
    importer.write(unlocked, import_lines())
    return unlocked


def squares(chunk: list[int]) -> tuple[int, list[int]]:
    return os.getpid(), [n * n for n in chunk]


def test_ordered_map_gives_the_serial_results_in_order_from_children() -> None:
    chunks = [list(range(start, start + 7)) for start in range(0, 700, 7)]
    results = list(parallel.ordered_map(squares, chunks, processes=3))
    assert [r[1] for r in results] == [[n * n for n in c] for c in chunks]
    used = {pid for pid, _ in results}
    assert os.getpid() not in used
    assert len(used) == 3
    assert children() == set()


def fails_at_50(chunk: list[int]) -> list[int]:
    if 50 in chunk:
        raise BadInput("chunk with {n}", n=50)
    return chunk


def test_an_error_is_raised_in_the_parent_at_its_place_in_the_order() -> None:
    chunks = [[n] for n in range(100)]
    seen: list[int] = []

    def read_all() -> None:
        for result in parallel.ordered_map(fails_at_50, chunks, processes=2):
            seen.extend(result)

    with pytest.raises(BadInput, match="chunk with 50"):
        read_all()
    assert seen == list(range(50))
    assert children() == set()


def test_children_are_gone_when_the_reader_stops_early() -> None:
    stream = parallel.ordered_map(squares, ([n] for n in range(10_000)), processes=2)
    next(stream)
    assert len(children()) == 2
    stream.close()
    assert children() == set()


def slow(chunk: list[int]) -> list[int]:
    time.sleep(0.01)
    return chunk


@pytest.mark.parametrize(
    "sent",
    [signal.SIGINT, signal.SIGKILL],
    ids=["ctrl-c is the parent's to handle", "a killed child costs time, not results"],
)
def test_a_signal_to_the_children_loses_no_result(sent: signal.Signals) -> None:
    stream = parallel.ordered_map(slow, ([n] for n in range(80)), processes=2)
    out = list(next(stream))
    for pid in children():
        os.kill(pid, sent)
    for result in stream:
        out.extend(result)
    assert out == list(range(80))
    assert children() == set()


def test_without_a_process_to_spare_the_work_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise BlockingIOError("fork: resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    chunks = [[n] for n in range(20)]
    assert [r[0] for r in parallel.ordered_map(squares, chunks, processes=2)] == [os.getpid()] * 20


# -- through the vault API --------------------------------------------------------------


def test_list_on_every_core_equals_list_on_one(many: Unlocked) -> None:
    one = list(notes.list_notes(many, processes=1))
    assert len(one) == COUNT
    assert list(notes.list_notes(many, processes=2)) == one
    assert [(n.date, n.created, n.id) for n in one] == sorted(
        (n.date, n.created, n.id) for n in one
    )
    assert children() == set()


def test_search_on_every_core_equals_search_on_one(many: Unlocked) -> None:
    one = list(search.search(many, NEEDLE, processes=1))
    assert len(one) == len(range(0, COUNT, 97))
    assert list(search.search(many, NEEDLE, processes=2)) == one
    assert all(NEEDLE in n.text.casefold() for n in one)


def test_an_amended_note_shows_its_amendment_from_a_child(many: Unlocked) -> None:
    target = list(notes.list_notes(many, processes=1))[COUNT - 5]
    corrections.amend_note(many, target.id, text=f"Rettet: {NEEDLE} i dag")
    (found,) = [n for n in notes.list_notes(many, processes=2) if n.id == target.id]
    assert found.text == f"Rettet: {NEEDLE} i dag"
    assert found.amended is not None
    assert found.amended_by == many.name


def test_a_tampered_note_deep_in_the_vault_stops_a_parallel_list(
    many: Unlocked, vault_path: Path
) -> None:
    victim = list(notes.list_notes(many, processes=1))[2 * parallel.BATCH + 10]
    with contextlib.closing(sqlite3.connect(vault_path, isolation_level=None)) as db:
        (record,) = db.execute("SELECT record FROM notes WHERE id = ?", (victim.id,)).fetchone()
        flipped = record[:40] + bytes([record[40] ^ 1]) + record[41:]
        db.execute("UPDATE notes SET record = ? WHERE id = ?", (flipped, victim.id))
    shown: list[str] = []

    def read_all() -> None:
        shown.extend(note.id for note in notes.list_notes(many, processes=2))

    with pytest.raises(IntegrityError, match=victim.id):
        read_all()
    assert victim.id not in shown
    assert children() == set()


def test_a_moved_date_is_caught_for_a_note_search_shows(many: Unlocked, vault_path: Path) -> None:
    victim = next(iter(search.search(many, NEEDLE, processes=1)))
    with contextlib.closing(sqlite3.connect(vault_path, isolation_level=None)) as db:
        db.execute("UPDATE notes SET date = ? WHERE id = ?", (days_ago(2), victim.id))
    with pytest.raises(IntegrityError, match="date"):
        list(search.search(many, NEEDLE, processes=2))


def test_peak_batches_in_flight_stay_bounded(many: Unlocked) -> None:
    """Memory stays flat: the parent reads ahead at most one batch per child."""
    pulled = 0

    def counting(rows: Iterator[object]) -> Iterator[object]:
        nonlocal pulled
        for row in rows:
            pulled += 1
            yield row

    stream = parallel.ordered_map(
        squares, parallel.batches(counting(iter(range(100 * parallel.BATCH)))), processes=2
    )
    next(stream)
    assert pulled <= 3 * parallel.BATCH
    stream.close()


# -- as a user runs it --------------------------------------------------------------------


def test_ctrl_c_during_a_list_stops_every_process_quietly(
    many: Unlocked, nok_env: dict[str, str]
) -> None:
    """A real `nok note list` blocked on a full pipe, then Ctrl-C: one line, exit 130, and
    the children are gone with it (none left holding note text)."""
    many.close()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nokcli", "note", "list", "--json"],
        env={**full_env, **nok_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        kids: set[int] = set()
        while len(kids) < 2 and time.monotonic() < deadline:
            kids = children(proc.pid)
            time.sleep(0.02)
        assert len(kids) == 2, "the list never started its children"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert b"Traceback" not in err
    assert err.decode().strip().startswith("nok: error: interrupted")
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists()


# -- import ---------------------------------------------------------------------------------


def test_an_import_on_every_core_writes_what_one_core_writes(
    many: Unlocked, tmp_path: Path
) -> None:
    other = Vault.create(
        tmp_path / "one" / "vault.db",
        admin=ADMIN,
        passphrase=PASSPHRASE.encode(),
        now=NOW,
        kdf="interactive",
    )
    try:
        importer.write(other, import_lines(), processes=1)

        def content(u: Unlocked) -> list[tuple[str, str, str, str | None]]:
            listed = notes.list_notes(u, processes=1)
            return sorted((n.date, n.kind, n.text, n.author) for n in listed)

        assert content(many) == content(other)
        assert len(content(many)) == COUNT
        assert verify.verify(many).ok
        assert verify.verify(other).ok
        entries = [
            e
            for e in audit.list_entries(many.store, chain=many.chain)
            if e.action == importer.AUDIT_ACTION
        ]
        assert len(entries) == 64
        assert children() == set()
    finally:
        other.close()


def test_a_bad_last_line_imports_nothing_on_every_core(unlocked: Unlocked) -> None:
    lines = [*import_lines(), b'{"subject": "late"}']
    with pytest.raises(importer.ImportRejected):
        importer.write(unlocked, lines, processes=2)
    assert unlocked.store.count_notes() == 0
    assert children() == set()


def test_import_progress_counts_what_was_written(unlocked: Unlocked) -> None:
    seen: list[importer.Progress] = []
    importer.write(unlocked, import_lines(), progress=seen.append, processes=2)
    assert [p.notes for p in seen] == sorted(p.notes for p in seen)
    assert seen[-1] == importer.Progress(64, COUNT)


# -- what a fresh-eyes review found -----------------------------------------------------


def chunks_failing_at(n: int) -> Iterator[list[int]]:
    for i in range(10):
        if i == n:
            raise BadInput("chunk {n} could not be read", n=n)
        yield [i]


@pytest.mark.parametrize("processes", [1, 3])
def test_an_error_reading_the_input_comes_after_the_results_before_it(processes: int) -> None:
    seen: list[int] = []

    def read_all() -> None:
        for result in parallel.ordered_map(squares, chunks_failing_at(3), processes=processes):
            seen.extend(result[1])

    with pytest.raises(BadInput, match="chunk 3"):
        read_all()
    assert seen == [0, 1, 4]
    assert children() == set()


def test_ctrl_c_while_the_children_start_leaves_none_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = signal.pthread_sigmask
    parent = os.getpid()
    restores = []

    def interrupted(how: int, mask: object) -> object:
        old = real(how, mask)  # type: ignore[arg-type]
        if how == signal.SIG_SETMASK and os.getpid() == parent:
            restores.append(how)
            if len(restores) == 2:
                raise KeyboardInterrupt  # as Python does when the held Ctrl-C is let through
        return old

    monkeypatch.setattr(signal, "pthread_sigmask", interrupted)
    with pytest.raises(KeyboardInterrupt):
        list(parallel.ordered_map(squares, ([n] for n in range(50)), processes=3))
    assert children() == set()


def test_a_process_running_threads_does_the_work_itself() -> None:
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        results = list(parallel.ordered_map(squares, [[n] for n in range(20)], processes=2))
    finally:
        stop.set()
        other.join()
    assert {pid for pid, _ in results} == {os.getpid()}


def test_batches_in_flight_never_get_the_same_id(
    unlocked: Unlocked, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fresh ids are checked against the vault and against batches not yet written: with
    two candidate ids for two one-consent batches in flight, each gets its own."""
    from vault import ids

    real = ids.new_id
    pool: list[str] = []

    def few(prefix: str) -> str:
        if prefix != ids.CONSENT_PREFIX:
            return real(prefix)
        pool.append(pool.pop(0))  # the two candidates take turns
        return pool[-1]

    monkeypatch.setattr(ids, "new_id", few)
    monkeypatch.setattr(importer, "BATCH_CONSENTS", 1)
    line = json.dumps({"subject": "P", "purpose": "oppfølging", "categories": ["safety"]})
    for round_ in range(10):
        pool[:] = [f"C-{round_:04d}-AAAA", f"C-{round_:04d}-BBBB"]
        importer.write(unlocked, [line.encode()] * 2, processes=2, force=True)
        assert unlocked.store.count_consents("active") == 2 * (round_ + 1)
