"""Drive an interactive command in a pseudo-terminal and read its screen.

:class:`Terminal` runs a command with a pseudo-terminal of a fixed size (80x24 by
default) as its stdin, stdout and stderr, and feeds all it prints to a `pyte`
screen, a VT100/xterm emulator, so a test sees what a user would see: the rows of
the screen, each at most ``columns`` wide, a longer line cut or wrapped as the
program draws it. Keys are sent as the bytes a terminal sends (:data:`ENTER`,
:data:`DOWN`, ...). The emulator answers the program's cursor-position requests,
as prompt_toolkit (behind copier's questions) sends them. For example, accepting
every default of an interactive ``copier copy``::

    with Terminal(["copier", "copy", "--trust", src, dst], cwd=tmp_path) as term:
        term.wait_for("human name")      # the first question is on the screen
        term.send(ENTER)                 # accept its default
        ...
        assert term.wait_exit() == 0

Every wait is on the screen (or the process) with a deadline, never a fixed
sleep: :meth:`Terminal.wait_for` returns as soon as the screen matches and raises
:class:`TimeoutError` with the screen in its message when it does not in time, or
at once when the program has exited without drawing it. Leaving the ``with``
block kills the command's process group if it still runs, and closes the terminal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

import pyte

#: Keys, as a terminal sends them.
ENTER = "\r"
UP = "\x1b[A"
DOWN = "\x1b[B"
CTRL_C = "\x03"

#: Seconds a wait may take by default: generous, as a loaded CI machine can be slow.
TIMEOUT = 120.0


class _Screen(pyte.Screen):  # type: ignore[misc]
    """A pyte screen that sends its replies (cursor position, status) to the program."""

    def __init__(self, columns: int, lines: int, reply: Callable[[str], None]) -> None:
        super().__init__(columns, lines)
        self._reply = reply

    def write_process_input(self, data: str) -> None:
        self._reply(data)


class Terminal:
    """A command running in a pseudo-terminal of ``columns`` x ``lines``, its screen emulated.

    ``env`` is added to the current environment, with ``TERM=xterm`` and
    ``COLUMNS``/``LINES`` set to the terminal's size. ``timeout`` is the default
    deadline, in seconds, of every wait.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        columns: int = 80,
        lines: int = 24,
        timeout: float = TIMEOUT,
    ) -> None:
        self.columns = columns
        self.lines = lines
        self.timeout = timeout
        self._changed = threading.Condition()
        self._screen = _Screen(columns, lines, reply=self._write)
        self._stream = pyte.ByteStream(self._screen)
        self._transcript = bytearray()
        self._eof = False
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self._master = master
        try:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env={
                    **os.environ,
                    "TERM": "xterm",
                    "COLUMNS": str(columns),
                    "LINES": str(lines),
                    **(env or {}),
                },
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._reader = threading.Thread(target=self._read, name="tty-reader", daemon=True)
        self._reader.start()

    # --- the screen ------------------------------------------------------------

    def rows(self) -> list[str]:
        """The screen's rows, top to bottom, without trailing blanks."""
        with self._changed:
            return [row.rstrip() for row in self._screen.display]

    def text(self) -> str:
        """The screen's rows joined by newlines."""
        return "\n".join(self.rows())

    def cursor_row(self) -> str:
        """The row the cursor is on (where a prompt waits for its answer)."""
        with self._changed:
            return self._screen.display[self._screen.cursor.y].rstrip()

    def transcript(self) -> str:
        """Everything the command printed so far, escape sequences included."""
        with self._changed:
            return self._transcript.decode("utf-8", "replace")

    # --- input and waiting -----------------------------------------------------

    def send(self, keys: str) -> None:
        """Type ``keys`` (text, or key constants such as :data:`ENTER`)."""
        self._write(keys)

    def wait_for(
        self, expected: str | Callable[[list[str]], bool], timeout: float | None = None
    ) -> list[str]:
        """Wait until the screen shows ``expected`` (a text found in :meth:`text`, or
        a predicate over :meth:`rows`) and return the rows that matched."""
        matches: Callable[[list[str]], bool]
        if isinstance(expected, str):
            text = expected
            matches = lambda rows: text in "\n".join(rows)  # noqa: E731
            what = repr(text)
        else:
            matches = expected
            what = getattr(expected, "__name__", "the predicate")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._changed:
            while True:
                rows = [row.rstrip() for row in self._screen.display]
                if matches(rows):
                    return rows
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    why = "the command exited" if self._eof else "timed out"
                    screen = "\n".join(f"|{row}" for row in rows)
                    raise TimeoutError(f"{why} before the screen showed {what}:\n{screen}")
                self._changed.wait(remaining)

    def wait_exit(self, timeout: float | None = None) -> int:
        """Wait for the command to exit and its output to be read; its exit code."""
        code = self.process.wait(self.timeout if timeout is None else timeout)
        self._reader.join(self.timeout if timeout is None else timeout)
        return code

    def close(self) -> None:
        """Kill the command's process group if it still runs; close the terminal."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(self.timeout)
        self._reader.join(self.timeout)
        with contextlib.suppress(OSError):
            os.close(self._master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------

    def _write(self, data: str) -> None:
        payload = data.encode()
        while payload:
            payload = payload[os.write(self._master, payload) :]

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                chunk = b""
            with self._changed:
                if not chunk:
                    self._eof = True
                    self._changed.notify_all()
                    return
                self._transcript += chunk
                self._stream.feed(chunk)
                self._changed.notify_all()
