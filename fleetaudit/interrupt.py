"""Ctrl-C (SIGINT) and SIGTERM end every command the same way, from its first line to its
exit: exit code 130 and one line saying what was stopped.

Kept light (standard library only) because the handlers must be in place before the
heavy imports: under load those take seconds, and a SIGTERM there used to kill the
process silently (143), a SIGINT to print a KeyboardInterrupt traceback.

A signal never raises inside the event loop: while `run` drives a coroutine, the handler
only schedules the cancellation of that coroutine's task, as asyncio.run does for
Ctrl-C, so the audit's own clean-up (stopping nmap) runs. Outside the loop the first
signal raises `Interrupted` at once; a signal that arrives while `deferred()` holds
(a report being swapped into place) is acted on when it ends. Only the first signal
counts: a second one cannot interrupt the clean-up the first started.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # asyncio itself is imported by `run`: not before the handlers are in
    import asyncio

__all__ = ["Interrupted", "deferred", "exiting", "install", "received", "run",
           "say_interrupted"]

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` takes it for a failure; not a KeyboardInterrupt, which click
    would turn into "Aborted!" and exit code 1."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received
        self.raised = False  # Interrupted was raised for it (or is due on leaving a block)
        self.defer = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.exiting = False  # the exit code is decided: a signal now changes nothing


_state = _State()
# What the one line says; the CLI updates it as the run advances.
message = "Interrupted: stopped; nothing was written."


def received() -> int | None:
    """The signal that asked us to stop, if one did."""
    return _state.signum


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.signum is not None or _state.exiting:
        return  # already stopping (the first signal's clean-up must finish), or exiting
    _state.signum = signum
    if _state.loop is not None and _state.task is not None:
        # In the loop: cancel the work; never raise inside the loop's own code.
        _state.loop.call_soon_threadsafe(_state.task.cancel)
        return
    if _state.defer:
        return  # raised when the deferred block ends
    _state.raised = True
    raise Interrupted(signum)


def exiting() -> None:
    """The exit code is decided: later signals are ignored. SIG_IGN, not a flag: the
    interpreter puts Python handlers back to SIG_DFL as it finalizes, which let a late
    SIGTERM kill an exiting process (143)."""
    _state.exiting = True
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def install() -> None:
    """Take SIGINT and SIGTERM for the rest of the process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    signal.signal(signal.SIGALRM, _again)
    if sys.unraisablehook is not _unraisable:
        global _default_unraisable
        _default_unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable


_default_unraisable = sys.unraisablehook
RETRY = 0.01  # seconds before a stop that could not be raised is raised again


def _unraisable(hook: Any) -> None:
    """Interrupted raised where Python cannot propagate it (a weakref callback, such as an
    import lock's clean-up while a command imports lazily, or a __del__) is neither a stop
    to lose nor a traceback to print (seen under load: 'Exception ignored in: <function
    _get_module_lock.<locals>.cb>' and six lines before the one line): it is raised again
    moments later (SIGALRM), from whatever line then runs."""
    if isinstance(hook.exc_value, Interrupted) and _state.signum is not None:
        _state.raised = False
        signal.setitimer(signal.ITIMER_REAL, RETRY)
        return
    _default_unraisable(hook)


def _again(signum: int, frame: FrameType | None) -> None:
    if _state.signum is None or _state.raised or _state.exiting:
        return
    if _state.defer:
        return  # raised when the deferred block ends
    _state.raised = True
    raise Interrupted(_state.signum)


def _raise_if_received() -> None:
    if _state.signum is not None and not _state.raised:
        _state.raised = True
        raise Interrupted(_state.signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block a signal must not cut in two; a signal received meanwhile raises after it."""
    _state.defer += 1
    try:
        yield
    finally:
        _state.defer -= 1
    if not _state.defer:
        _raise_if_received()


def run(work: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(work), where Ctrl-C and SIGTERM cancel `work` (its finally blocks and
    the tasks it cancels in turn run to their end) and then raise Interrupted.

    A signal before the task exists (the loop starting) is held and cancels the task
    as soon as it starts; one after it ended (the loop closing) raises once the loop is
    closed. Should `work` swallow its cancellation and return, Interrupted is raised all
    the same: a stop that was asked for is never lost.
    """
    import asyncio
    import socket

    async def main() -> T:
        loop = asyncio.get_running_loop()
        # The kernel may hand a signal to any thread (nmap's, to_thread's); the Python
        # handler runs only once the main thread runs bytecode, and the loop's thread may
        # sleep in epoll meanwhile, for as long as the scan is quiet. A byte on the wakeup
        # fd wakes it, as loop.add_signal_handler does, but keeps our handler in place
        # (removing the loop's would put SIG_DFL back: a window where SIGTERM kills).
        wake, wakeup = socket.socketpair()
        wake.setblocking(False)
        wakeup.setblocking(False)
        loop.add_reader(wake.fileno(), _drain, wake)
        main_thread = threading.current_thread() is threading.main_thread()
        previous = (signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
                    if main_thread else -1)
        with deferred_raise():
            _state.loop, _state.task = loop, asyncio.current_task()
        try:
            if _state.signum is not None:
                raise asyncio.CancelledError
            return await work
        finally:
            _state.loop = _state.task = None
            if main_thread:
                signal.set_wakeup_fd(previous)
            loop.remove_reader(wake.fileno())
            wake.close()
            wakeup.close()
            work.close()  # never awaited when cancelled before it began: no warning

    try:
        with deferred_raise():
            result = asyncio.run(main())
    except asyncio.CancelledError:
        if _state.signum is None:
            raise
        _state.raised = True
        raise Interrupted(_state.signum) from None
    _raise_if_received()
    return result


def _drain(sock: Any) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(256):
            pass


@contextlib.contextmanager
def deferred_raise() -> Iterator[None]:
    """Like `deferred`, but leaves the raising to the caller (used around the loop)."""
    _state.defer += 1
    try:
        yield
    finally:
        _state.defer -= 1


def say_interrupted() -> None:
    """The one line, on stderr. Plain write: the signal may have come before rich loaded."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
