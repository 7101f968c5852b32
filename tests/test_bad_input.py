"""Every bad argument gets TypeError, ValueError or ThreadNotFoundError naming it."""

from __future__ import annotations

import threading

import pytest
from conftest import JOIN_TIMEOUT

import threadinject
from threadinject import ThreadNotFoundError


class NotAThread:
    ident = 1


class UninitialisedThread(threading.Thread):
    def __init__(self) -> None:  # forgets Thread.__init__
        pass


BAD_THREADS = [None, "1", 1.5, True, NotAThread(), b"\x01", [1]]
BAD_EXCS = [None, 1, "ValueError", object, int, object(), Exception.__init__, [ValueError]]


@pytest.mark.parametrize("bad", BAD_THREADS, ids=repr)
def test_thread_of_wrong_type_is_a_type_error(api, bad):
    for call, name in ((lambda: api.inject(bad, KeyError), "inject"),
                       (lambda: api.cancel(bad), "cancel"),
                       (lambda: api.pending(bad), "pending"),
                       (lambda: api.kill(bad, 0), "kill")):
        with pytest.raises(TypeError, match=rf"{name}\(\) argument 'thread' must be a threading.Thread"):
            call()


@pytest.mark.parametrize("bad", BAD_EXCS, ids=repr)
def test_exc_of_wrong_type_is_a_type_error(api, bad):
    with pytest.raises(TypeError, match=r"inject\(\) argument 'exc' must be a BaseException"):
        api.inject(threading.current_thread(), bad)


@pytest.mark.parametrize("ident", [-1, -(2 ** 70), 2 ** 64, 2 ** 200])
def test_ident_out_of_range_is_a_value_error(api, ident):
    with pytest.raises(ValueError, match=r"inject\(\) argument 'thread' must be a thread ident"):
        api.inject(ident, KeyError)


def test_unknown_ident(api):
    idents = {t.ident for t in threading.enumerate()}
    unknown = next(i for i in range(12345, 10 ** 6) if i not in idents)
    for call in (lambda: api.inject(unknown, KeyError), lambda: api.cancel(unknown),
                 lambda: api.pending(unknown), lambda: api.kill(unknown, 0)):
        expected = rf"thread={unknown} is not the ident of a running thread"
        with pytest.raises(ThreadNotFoundError, match=expected):
            call()


def test_unstarted_thread(api):
    thread = threading.Thread(target=lambda: None)
    for call in (lambda: api.inject(thread, KeyError), lambda: api.cancel(thread),
                 lambda: api.pending(thread), lambda: api.kill(thread, 0)):
        with pytest.raises(ThreadNotFoundError, match="has not been started"):
            call()


def test_thread_whose_init_was_not_called(api):
    thread = UninitialisedThread()
    with pytest.raises(ThreadNotFoundError, match="has not been started"):
        api.inject(thread, KeyError)


def test_finished_thread(api):
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join(JOIN_TIMEOUT)
    for call in (lambda: api.inject(thread, KeyError), lambda: api.cancel(thread),
                 lambda: api.pending(thread)):
        with pytest.raises(ThreadNotFoundError, match="is not running"):
            call()
    assert api.kill(thread, 0) is True  # already ended: kill has nothing left to do


def test_thread_not_found_is_a_lookup_error():
    assert issubclass(ThreadNotFoundError, LookupError)
    assert threadinject.ThreadNotFoundError is ThreadNotFoundError


@pytest.mark.parametrize("nargs", [0, 1, 3])
def test_wrong_number_of_arguments(api, nargs):
    args = [threading.current_thread(), KeyError, None][:nargs]
    with pytest.raises(TypeError):
        api.inject(*args)


@pytest.mark.parametrize("timeout", ["1", [], True])
def test_kill_timeout_of_wrong_type(api, timeout):
    with pytest.raises(TypeError, match=r"kill\(\) argument 'timeout'"):
        api.kill(threading.current_thread(), timeout)


@pytest.mark.parametrize("timeout", [-1, -0.5, float("nan")])
def test_kill_negative_timeout(api, timeout):
    with pytest.raises(ValueError, match=r"kill\(\) argument 'timeout' must be >= 0"):
        api.kill(threading.current_thread(), timeout)
