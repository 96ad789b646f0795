"""The legacy app's manager tests, as its maintainers wrote them: only the
import line changed. They share the process-wide runtime and rely on the
package's pytest plugin to isolate them, in any order."""

import signal
import threading
import time

from last_call import GracefulShutdownManager


def test_singleton():
    assert GracefulShutdownManager() is GracefulShutdownManager()


def test_initial_state():
    manager = GracefulShutdownManager()
    assert manager.is_draining() is False
    assert manager.active_streams == 0


def test_draining_toggled():
    manager = GracefulShutdownManager()
    manager.set_draining(True)
    assert manager.is_draining() is True
    manager.set_draining(False)
    assert manager.is_draining() is False


def test_handle_sigterm_drains():
    manager = GracefulShutdownManager()
    manager.handle_sigterm(signal.SIGTERM, None)
    assert manager.is_draining() is True


def test_wait_for_shutdown_times_out():
    manager = GracefulShutdownManager()
    started = time.monotonic()
    assert manager.wait_for_shutdown(timeout=0.1) is False
    assert time.monotonic() - started >= 0.1


def test_wait_for_shutdown_woken_by_draining():
    manager = GracefulShutdownManager()
    threading.Timer(0.1, manager.set_draining, args=(True,)).start()
    assert manager.wait_for_shutdown(timeout=5) is True


def test_wait_for_shutdown_without_timeout_from_a_thread():
    manager = GracefulShutdownManager()
    result = []
    waiter = threading.Thread(target=lambda: result.append(manager.wait_for_shutdown()))
    waiter.start()
    time.sleep(0.1)
    assert waiter.is_alive()
    manager.set_draining(True)
    waiter.join(timeout=5)
    assert result == [True]


def test_concurrent_toggling():
    manager = GracefulShutdownManager()
    errors = []

    def toggle():
        try:
            for _ in range(200):
                manager.set_draining(True)
                manager.set_draining(False)
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=toggle) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert manager.is_draining() is False
