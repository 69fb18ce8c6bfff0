"""Workers on this host: the name a worker takes, and whether a process still runs."""

from __future__ import annotations

import hashlib
import os
import socket
from urllib.parse import urlsplit


def default_worker_name(database_url: str) -> str:
    """``host-dbhash``: stable across restarts of a worker on this host and database, so
    that a restarted worker takes its runs back at once (see :meth:`Worker.start`)."""
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]  # never the password
    url = parts._replace(netloc=host).geturl()
    return f"{socket.gethostname()[:60]}-{hashlib.sha256(url.encode()).hexdigest()[:6]}"


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
