"""A private Postfix for the tests: its own configuration directory, queue
and log under a temporary folder, listening on a free loopback port, with
a transport map that sends the reply domain to casemail.

Nothing of the system's own Postfix is touched; ``postfix -c DIR`` runs
an instance of its own. The queue timers are short so a deferred message
is tried again within seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

# Every service Postfix needs to take mail in over SMTP and hand it on over
# SMTP or LMTP, none chrooted (a chroot would need copies of /etc files).
_SERVICES = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def installed() -> bool:
    return shutil.which("postfix") is not None or Path(POSTFIX).exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostfix:
    def __init__(self, folder: Path, transports: dict[str, str],
                 relay_domains: list[str]) -> None:
        self.dir = folder
        self.port = free_port()
        self.transports = transports
        self.relay_domains = relay_domains

    def _main_cf(self) -> str:
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.dir / "queue",
            "data_directory": self.dir / "data",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "edge.example.test",
            "mydomain": "example.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": ", ".join(self.relay_domains),
            "transport_maps": f"texthash:{self.dir / 'transport'}",
            "smtpd_relay_restrictions":
                "permit_mynetworks, reject_unauth_destination",
            "maillog_file": self.dir / "maillog",
            "maillog_file_prefixes": self.dir,
            "alias_maps": "", "alias_database": "",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            # Try a deferred message again within seconds, not minutes.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "lmtp_connect_timeout": "5s",
        }
        return "".join(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> PrivatePostfix:
        for folder in (self.dir, self.dir / "queue", self.dir / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")
        (self.dir / "main.cf").write_text(self._main_cf())
        (self.dir / "master.cf").write_text(
            _SERVICES.format(listen=f"127.0.0.1:{self.port}"))
        (self.dir / "transport").write_text("".join(
            f"{domain} {nexthop}\n"
            for domain, nexthop in self.transports.items()))
        self._postfix("start")
        self._wait_listening()
        return self

    def stop(self) -> None:
        self._postfix("stop", check=False)

    def _postfix(self, command: str, *, check: bool = True) -> None:
        done = subprocess.run([POSTFIX, "-c", str(self.dir), command],
                              capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"postfix {command} failed: {done.stderr}"
                               f"{self.log()[-2000:]}")

    def _wait_listening(self, deadline: float = 20) -> None:
        # The master process binds the port shortly after "start" returns.
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"postfix never listened: {self.log()[-2000:]}")

    def queue(self) -> list[dict[str, object]]:
        """The messages still queued (``postqueue -j``), one dict each."""
        done = subprocess.run(
            ["postqueue", "-c", str(self.dir), "-j"], capture_output=True,
            text=True, timeout=30, env={**os.environ, "LANG": "C"})
        return [json.loads(line) for line in done.stdout.splitlines() if line]

    def flush(self) -> None:
        """Ask the queue manager to try every deferred mail now
        (``postqueue -f``), as an operator would."""
        subprocess.run(["postqueue", "-c", str(self.dir), "-f"],
                       capture_output=True, timeout=30,
                       env={**os.environ, "LANG": "C"})

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""
