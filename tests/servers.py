"""Real Redis and RabbitMQ servers for the end-to-end tests, as child processes.

Each server runs on free loopback ports with its data in a temporary directory and is
stopped when its fixture ends. ``scripts/test.sh`` installs the Debian packages when they
are missing; outside CI a missing binary skips the tests that need it (with the reason),
in CI it fails them, so CI never passes without running the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from helpers import free_port

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def require(binary: str | Path) -> None:
    """Fail (in CI) or skip (elsewhere) when a server binary is missing."""
    found = Path(binary).is_file() if os.sep in str(binary) else shutil.which(str(binary))
    if found:
        return
    message = f"{binary} is not installed: `bash scripts/test.sh` installs it from Debian"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_closed(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _accepts(port) and time.monotonic() < deadline:
        time.sleep(0.05)


class RedisServer:
    """``redis-server`` on a free loopback port; ``kill``/``start`` keep port and data.

    ``appendonly`` mirrors the generated compose file (AOF on, noeviction), so a restart
    keeps what was accepted, as it does in production.
    """

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        require("redis-server")
        self.port = free_port()
        self.password = password
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.log_path = self.dir / "redis.log"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        args = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.popen = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            assert self.popen.poll() is None, f"redis-server exited: {self.log()}"
            assert time.monotonic() < deadline, f"redis-server did not start: {self.log()}"
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would (what was fsynced to the AOF survives)."""
        self._signal(signal.SIGKILL)

    def make_durable(self) -> None:
        """Make every write Redis took so far durable now, instead of waiting for the
        once-a-second fsync (``appendfsync everysec``, compose's setting): switch to
        ``appendfsync always``, then make one write. With ``always`` Redis writes and
        fsyncs the AOF before it answers, so the answer to that write means everything
        before it is on disk. ``always`` lasts until the next :meth:`start` (a test's
        crash), which starts with compose's ``everysec`` again."""
        client = redis.Redis.from_url(self.url)
        try:
            client.config_set("appendfsync", "always")
            client.set("tests:aof-probe", str(time.time()), ex=600)
            info = client.info("persistence")
        finally:
            client.close()
        assert info["aof_enabled"] == 1 and info["aof_last_write_status"] == "ok", info

    def pause(self) -> None:
        """SIGSTOP: Redis hangs with its connections open (a stopped VM, a swapping host)."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGCONT)  # a paused server cannot stop
                self.popen.send_signal(sig)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        _wait_closed(self.port)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


class RabbitMQServer:
    """A throwaway RabbitMQ node (its own epmd, ports and data) on loopback.

    Started from ``/usr/lib/rabbitmq/bin/rabbitmq-server`` so that it runs as the
    current user without systemd; it accepts AMQP after about 6 s.
    """

    def __init__(self, workdir: Path, user: str = "app", password: str = "app-secret") -> None:
        require(RABBITMQ_SERVER)
        require("epmd")
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.user, self.password = user, password
        self.dir = workdir / f"rabbitmq-{self.port}"
        self.dir.mkdir(parents=True)
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.node = f"rabbit-{self.port}@localhost"
        self.epmd: subprocess.Popen[bytes] | None = None
        self.popen: subprocess.Popen[bytes] | None = None
        self._log = (self.dir / "server.out").open("ab")

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.dir),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
        }

    def start(self, timeout: float = 60) -> RabbitMQServer:
        env = self.env()
        # The generated compose file replaces the default guest user the same way; the
        # heartbeat is RabbitMQ's default (60 s), as in compose's image.
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            f"default_user = {self.user}\n"
            f"default_pass = {self.password}\n"
        )
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=env,
                start_new_session=True,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        self.popen = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            env=env,
            start_new_session=True,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self._amqp_ready():
            assert self.popen.poll() is None, f"rabbitmq-server exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"rabbitmq-server did not start:\n{self.log()}"
            time.sleep(0.25)
        return self

    def _amqp_ready(self) -> bool:
        """True once the broker answers an AMQP handshake (the port opens a bit earlier)."""
        if not _accepts(self.port):
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                return sock.recv(8).startswith(b"\x01\x00\x00")  # a Connection.Start frame
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the whole node (beam and its helpers), as a crash would."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        _wait_closed(self.port)

    def pause(self) -> None:
        """SIGSTOP of the whole node: it hangs with its connections open."""
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGCONT)  # a paused node cannot stop
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(5)
        _wait_closed(self.port)
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        parts = [(self.dir / "server.out").read_text(errors="replace")[-4000:]]
        for path in sorted((self.dir / "log").glob("*.log")):
            parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)
