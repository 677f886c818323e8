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
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, Pipe
from typing import Any, Generic, TypeVar

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
    Everything runs here with one process, a single chunk, or when this process runs
    other threads (a child forked while another thread holds a lock can hang on it). An
    exception raised by ``work``, or by ``chunks`` itself, is raised here at its place in
    the order, after the results before it. A child that dies (killed, out of memory)
    costs time, not results: its work and the rest are done here.
    """
    count = cores() if processes is None else processes
    source = _Source(iter(chunks))
    first = source.pull()
    second = None if first is None else source.pull()
    if first is None or second is None or count <= 1 or threading.active_count() > 1:
        yield from _here(work, [c for c in (first, second) if c is not None], source)
        return
    children = _Children(work, count)
    try:
        try:
            children.start()
        except OSError:
            # No process to spare (a ulimit, memory): the same work, on one core.
            children.stop()
            yield from _here(work, [first, second], source)
            return
        waiting = deque([first, second])
        pending: deque[tuple[_Child, list[T]]] = deque()
        # Read, and in no child's hands yet: if a child is lost, it is done here in order.
        loose: list[T] | None = None
        try:
            while (chunk := waiting.popleft() if waiting else source.pull()) is not None:
                loose = chunk
                if len(pending) < count:
                    child = children.all[len(pending)]
                    pending.append((child, chunk))
                    loose = None
                    child.give(chunk)
                    continue
                child, done = pending[0]
                result = child.answer(work, done)
                pending.popleft()
                pending.append((child, chunk))
                loose = None
                try:
                    child.give(chunk)
                except _Lost:
                    yield result
                    raise
                yield result
            while pending:
                child, done = pending[0]
                result = child.answer(work, done)
                pending.popleft()
                yield result
        except _Lost:
            children.stop()
            redo = [c for _, c in pending] + ([loose] if loose is not None else [])
            yield from _here(work, redo + list(waiting), source)
            return
        source.raise_if_failed()
    finally:
        children.stop()


def _here(work: Callable[[list[T]], R], first: list[list[T]], source: _Source[T]) -> Iterator[R]:
    """``first``, then the rest of ``source``, done in this process."""
    yield from map(work, first)
    while (chunk := source.pull()) is not None:
        yield work(chunk)
    source.raise_if_failed()


class _Source(Generic[T]):
    """The chunks, read one at a time; an exception from reading them is kept, to be
    raised after the results of the chunks before it."""

    def __init__(self, chunks: Iterator[list[T]]) -> None:
        self._chunks = chunks
        self._failed: Exception | None = None

    def pull(self) -> list[T] | None:
        if self._failed is not None:
            return None
        try:
            return next(self._chunks)
        except StopIteration:
            return None
        except Exception as exc:
            self._failed = exc
            return None

    def raise_if_failed(self) -> None:
        if self._failed is not None:
            raise self._failed


class _Lost(Exception):
    """A child stopped answering (killed, out of memory): its pipe broke or closed."""


class _Child:
    def __init__(self, pid: int, tasks: Connection, results: Connection) -> None:
        self.pid = pid
        self.tasks = tasks
        self.results = results

    def give(self, chunk: list[Any]) -> None:
        try:
            self.tasks.send_bytes(marshal.dumps(chunk))
        except OSError:
            raise _Lost from None

    def answer(self, work: Callable[[list[T]], R], chunk: list[T]) -> R:
        try:
            raw = self.results.recv_bytes()
        except (OSError, EOFError):
            raise _Lost from None
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
            self._fork()

    def _fork(self) -> None:
        task_out, task_in = Pipe(duplex=False)
        result_out, result_in = Pipe(duplex=False)
        # Ctrl-C is held back across the fork, so a child never sees it before it has
        # set it aside (it would unwind through the parent's code), and the parent has
        # recorded the child (so that stop() reaps it) before it can see Ctrl-C either.
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
        self.all.append(_Child(pid, task_in, result_out))
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        task_out.close()
        result_in.close()

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
