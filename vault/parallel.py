"""Bulk work over every core, in order, with flat memory: opening every note for a list,
search or statistics, and sealing every note of an import.

Opening or sealing a note is one AEAD call plus Python work around it (encoding or
decoding the record, folding the text for search), and the Python part holds the GIL:
threads do not help, processes do. The parent keeps the database: it reads the rows (or
the import file) and writes, and hands batches to forked children, which do the
cryptography and send back what the caller asked for. A list or search gives them
(data key, sealed row) pairs the parent unwrapped; an import gives them fresh data keys
and the notes' text. A forked child holds what the parent held (the master key too), but
nothing is sent to it beyond its batch.

Why the children never touch SQLite: a process forked from one with an open connection
inherits SQLite's in-memory lock bookkeeping but not the locks themselves, so a
connection it opened could read pages a checkpoint is rewriting. Keys and note text
cross a pipe between processes of the same user, never a file.

The pool is a few lines over os.fork and pipes rather than multiprocessing.Pool, whose
three helper threads in the parent fight the parent's own work for the GIL (measured:
a list of every note got slower on two cores). Each child has at most one batch; the
parent reads a child's answer before giving it the next, so neither side can block the
other on a full pipe. Children start at once (fork; nothing to import), ignore Ctrl-C
(the parent stops them, so no child prints a traceback) and leave with ``os._exit``, so
no atexit handler or inherited buffer of the parent runs twice. Results come back in
input order with at most ``processes`` batches in flight, so memory does not grow with
the vault.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, Pipe
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Items per batch: big enough that a pipe round trip is noise beside the work, small
# enough that a batch in flight holds little (1,024 notes, about 1 MiB).
BATCH = 1024


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# Batches and results cross the pipes as marshal data (built-in types only: tuples, lists,
# text, bytes, numbers, None): faster than pickle both ways, and it cannot name a class
# or function to call. Both ends are the same interpreter, so the format always agrees.

# A child's answer for a batch whose work raised: the parent runs that batch again
# itself, so the exception (tampering, a stale key, a bug) is raised in the parent
# exactly as it would have been without children.
_FAILED = b"nok-parallel-failed"


def ordered_map(
    work: Callable[[list[T]], R], chunks: Iterable[list[T]], *, processes: int | None = None
) -> Iterator[R]:
    """``work`` applied to each chunk, results in the order of ``chunks``; chunks and
    results are built-in values (see the note on marshal above).

    Spread over ``processes`` forked children (default: every core this process may use).
    With one process, or a single chunk, everything runs here. An exception raised by
    ``work`` is raised here, at its chunk's place in the order.
    """
    count = cores() if processes is None else processes
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        return
    second = next(it, None)
    if count <= 1 or second is None:
        yield work(first)
        if second is not None:
            yield work(second)
            yield from map(work, it)
        return
    children = _Children(work, count)
    try:
        children.start()
    except OSError:
        # No process to spare (a ulimit, memory): the same work, on one core.
        children.stop()
        yield from map(work, _chain(first, second, it))
        return
    try:
        pending: deque[tuple[_Child, list[T]]] = deque()
        for chunk in _chain(first, second, it):
            if len(pending) == count:
                child, done = pending.popleft()
                result = child.answer(work, done)
                child.give(chunk)
                pending.append((child, chunk))
                yield result
            else:
                child = children.all[len(pending)]
                child.give(chunk)
                pending.append((child, chunk))
        while pending:
            child, done = pending.popleft()
            yield child.answer(work, done)
    finally:
        children.stop()


class _Child:
    def __init__(self, pid: int, tasks: Connection, results: Connection) -> None:
        self.pid = pid
        self.tasks = tasks
        self.results = results

    def give(self, chunk: list[Any]) -> None:
        self.tasks.send_bytes(marshal.dumps(chunk))

    def answer(self, work: Callable[[list[T]], R], chunk: list[T]) -> R:
        raw = self.results.recv_bytes()
        if raw == _FAILED:
            return work(chunk)
        result: R = marshal.loads(raw)  # noqa: S302 - our own child, over a private pipe
        return result


class _Children:
    """``count`` forked children running ``work``; :meth:`stop` kills and reaps them."""

    def __init__(self, work: Callable[[list[Any]], Any], count: int) -> None:
        self.work = work
        self.count = count
        self.all: list[_Child] = []

    def start(self) -> None:
        for _ in range(self.count):
            self.all.append(self._fork())

    def _fork(self) -> _Child:
        task_out, task_in = Pipe(duplex=False)
        result_out, result_in = Pipe(duplex=False)
        # Ctrl-C is held back across the fork, so a child never sees it before it has
        # set it aside (it would unwind through the parent's code).
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            for end in (task_out, task_in, result_out, result_in):
                end.close()
            raise
        if pid == 0:  # pragma: no cover - runs in the child, measured by its results
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                task_in.close()
                result_out.close()
                for sibling in self.all:
                    sibling.tasks.close()
                    sibling.results.close()
                _serve(self.work, task_out, result_in)
                code = 0
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        task_out.close()
        result_in.close()
        return _Child(pid, task_in, result_out)

    def stop(self) -> None:
        for child in self.all:
            child.tasks.close()
            child.results.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        for child in self.all:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
        self.all.clear()


def _serve(work: Callable[[list[Any]], Any], tasks: Connection, results: Connection) -> None:
    while True:
        try:
            raw = tasks.recv_bytes()
        except EOFError:
            return
        try:
            chunk = marshal.loads(raw)  # noqa: S302 - our own parent, over a private pipe
            answer = marshal.dumps(work(chunk))
        except Exception:
            answer = _FAILED
        results.send_bytes(answer)


def _chain(first: list[T], second: list[T], rest: Iterator[list[T]]) -> Iterator[list[T]]:
    yield first
    yield second
    yield from rest
