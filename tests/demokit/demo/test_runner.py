"""The demo runner's pieces around the steps: the gateway's socket and the signal flag."""

from __future__ import annotations

import signal

import pytest

from demokit.demo.runner import DemoError, StopFlag, bind_socket


def test_a_taken_port_fails_before_anything_starts() -> None:
    first = bind_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        first.listen()
        with pytest.raises(DemoError, match=rf"127\.0\.0\.1:{port} .*--port"):
            bind_socket("127.0.0.1", port)
    finally:
        first.close()


def test_the_stop_flag_catches_sigterm_while_installed() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = StopFlag()
    with stop.installed():
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested
    assert signal.getsignal(signal.SIGTERM) is before
