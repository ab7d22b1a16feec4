"""One run at a time per campaign on the embedded store: a lock file next to ``store.sqlite``.

``<campaign>/campaign.lock`` is held with ``fcntl.flock`` (Linux / macOS; the kernel releases it
when the holder dies, even by SIGKILL) and holds who has it: pid, host, start time, command.  A
second ``pftflow run`` of the campaign refuses with that holder named, or waits for it
(``--wait``).  A lock left by a dead run is taken over and reported: the kernel has already
released a dead holder's flock (its info is still in the file), and a flock kept alive by a
leftover child of a dead run on this host (a forked worker inherits it) is abandoned by replacing
the file.

Written by hand: the standard library has ``fcntl.flock`` but nothing that names the holder or
detects a stale one (``filelock`` / ``portalocker`` do neither).  A MongoDB store is not locked
here: its runs may live on several machines.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self  # Python >= 3.11; annotations are not evaluated here

LOCK_FILE = "campaign.lock"


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), to tell a
    reused pid from the holder; None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """True if process ``pid`` exists (and, given ``start``, is the same process, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is not None:
        now = _proc_start(pid)
        return now is None or now == start
    return True


@dataclass
class LockHolder:
    """Who holds (or last held) a campaign lock."""

    pid: int
    host: str
    started_at: float
    campaign: str = ""
    command: str = ""
    proc_start: str | None = None

    @classmethod
    def read(cls, path: Path) -> LockHolder | None:
        try:
            data = json.loads(Path(path).read_text() or "null")
            return None if not data else cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError):
            return None

    @property
    def on_this_host(self) -> bool:
        return self.host == platform.node()

    def alive(self) -> bool:
        """True unless it is known dead (a holder on another host is taken as alive)."""
        return not self.on_this_host or pid_alive(self.pid, self.proc_start)

    def describe(self) -> str:
        since = dt.datetime.fromtimestamp(self.started_at).strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {self.pid} on host {self.host}, started {since}" + (f" ({self.command})" if self.command else "")


class CampaignLocked(RuntimeError):
    """Another live run holds the campaign (the message names it and says what to do)."""

    def __init__(self, message: str, holder: LockHolder | None):
        super().__init__(message)
        self.holder = holder


class CampaignLock:
    """``with CampaignLock(store_dir, campaign, wait_s=0):`` — hold the campaign for a run.

    ``wait_s``: how long to wait for a live holder before refusing (0: refuse at once; ``inf``:
    wait as long as it takes).  After acquiring, ``stale`` is the dead run whose lock was taken
    over (None if there was none).
    """

    def __init__(self, store_dir: str | os.PathLike, campaign: str, *, wait_s: float = 0.0, poll_s: float = 0.5):
        self.path = Path(store_dir) / LOCK_FILE
        self.campaign = campaign
        self.wait_s = float(wait_s)
        self.poll_s = float(poll_s)
        self.stale: LockHolder | None = None
        self.waited_s = 0.0
        self._fd: int | None = None

    # ------------------------------------------------------------------ acquire / release
    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _same_file(self, fd: int) -> bool:
        """The file we locked is still the one at ``path`` (not replaced by a takeover)."""
        try:
            a, b = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def acquire(self) -> Self:
        t0 = time.monotonic()
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = LockHolder.read(self.path)
                if holder is not None and not holder.alive():
                    # its run is dead but a forked child still holds the flock: abandon that file
                    # (after a second look: a new holder may have locked it and not written yet)
                    time.sleep(self.poll_s)
                    if LockHolder.read(self.path) != holder:
                        continue
                    self.stale = holder
                    try:
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
                    continue
                waited = time.monotonic() - t0
                if waited >= self.wait_s:
                    who = holder.describe() if holder else "another process (no holder recorded yet)"
                    raise CampaignLocked(
                        f"campaign '{self.campaign}' is being run by {who} (lock {self.path}); "
                        f"wait for it to finish, or rerun with `pftflow run --wait` to queue behind it", holder)
                time.sleep(min(self.poll_s, max(self.wait_s - waited, 0.01)))
                continue
            if not self._same_file(fd):  # replaced while we waited for it: lock the new file
                os.close(fd)
                continue
            break
        self.waited_s = time.monotonic() - t0
        previous = LockHolder.read(self.path)
        if previous is not None and previous.pid != os.getpid():
            self.stale = previous  # its flock is gone: the holder died without releasing it
        me = LockHolder(pid=os.getpid(), host=platform.node(), started_at=time.time(), campaign=self.campaign,
                        command=" ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200], proc_start=_proc_start(os.getpid()))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me.__dict__).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        self.holder = me
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # an empty file: nobody holds it (the file stays: others may have it open)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def current_holder(store_dir: str | os.PathLike) -> LockHolder | None:
    """The live run holding the campaign, or None (read only: never takes the lock)."""
    holder = LockHolder.read(Path(store_dir) / LOCK_FILE)
    return holder if holder is not None and holder.alive() else None
