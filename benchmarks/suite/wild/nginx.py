"""The server of the wild part: nginx, one worker on its own core, never the limit.

nginx (Debian's package) with the echo module (`libnginx-mod-http-echo`) answers SendSMS at
`SEND_SMS_PATH`, POST or GET, with a fixed accepted answer that echoes the message's `uid`:
the SDK's answer reader (`haorui_async._protocol.read_response`) takes an answer carrying
another message's uid as `OutcomeUnknown`, so a fixed uid would fail every send. nginx reads
the request body (`echo_read_request_body`), a `map` takes the uid out of the JSON body
(`"uid":"..."`; for GET, the `uid` query argument), optionally waits (`echo_sleep`), then
answers from a named location with `return 200` (a `Content-Length` answer, as a gateway
sends, not echo's chunked one). The clients, the SDK included, keep their normal path: POST,
a JSON body, a fresh uid per message.

One nginx serves every variant at once, each on its own loopback port: plain and TLS, at
once and after 100 ms. It runs in a temporary directory with its own configuration (`daemon
off`, one worker, its error log and pid there, access log off, keep-alive unbounded), pinned
with `worker_cpu_affinity` to the server's core.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs

from haorui_async._defaults import SEND_SMS_PATH

from ..server import apt_install, can_apt_install

__all__ = [
    "ANSWER",
    "INSTALL_HINT",
    "Listener",
    "NginxInstall",
    "NginxMissing",
    "NginxServer",
    "NginxSetup",
    "TlsFiles",
    "cpu_mask",
    "ensure_nginx",
    "find_nginx",
    "make_tls",
    "render_config",
    "split_cores",
]

#: Where Debian puts nginx (`/usr/sbin` is not on every user's PATH) and the echo module.
NGINX_CANDIDATES: Final = ("/usr/sbin/nginx",)
ECHO_MODULE: Final = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
APT_PACKAGES: Final = ("nginx", "libnginx-mod-http-echo")
INSTALL_HINT: Final = (
    "the wild part needs nginx and its echo module (Debian: "
    "`apt-get install -y nginx libnginx-mod-http-echo`, as root; `nox -s bench` run as root "
    "installs them)"
)
#: The accepted SendSMS answer, `$sendsms_uid` the message's own uid (nginx's variable).
ANSWER: Final = (
    '{"message_id":"2026120600000000001","status":"S",'
    '"remarks":"Message Submitted Successfully","uid":"$sendsms_uid"}'
)
#: Connections one worker holds: 3,000 sends in flight, wrk's as many, and room.
WORKER_CONNECTIONS: Final = 16384
#: The listen queue: 1,000 connections opened at once must not overflow it (the kernel caps
#: it at net.core.somaxconn).
BACKLOG: Final = 4096
#: How long nginx may take to listen on every port.
START_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 10.0


class NginxMissing(RuntimeError):
    """nginx or its echo module is not installed (and could not be)."""


@attrs.frozen
class NginxInstall:
    """Where nginx and the echo module are."""

    binary: str
    echo_module: str


def find_nginx(
    candidates: Sequence[str] | None = None, echo_module: str | None = None
) -> NginxInstall | None:
    """nginx (on PATH, or at Debian's place) and the echo module, or None if either is missing.

    `candidates` and `echo_module` default to `NGINX_CANDIDATES` and `ECHO_MODULE`.
    """
    candidates = NGINX_CANDIDATES if candidates is None else candidates
    echo_module = ECHO_MODULE if echo_module is None else echo_module
    binary = shutil.which("nginx") or next((c for c in candidates if os.access(c, os.X_OK)), None)
    if binary is None or not os.path.isfile(echo_module):
        return None
    return NginxInstall(binary=binary, echo_module=echo_module)


def ensure_nginx() -> tuple[NginxInstall, str]:
    """nginx and the echo module, installed with apt-get when missing and root; and how.

    Raises `NginxMissing` (its text says how to install them) when they are missing still.
    """
    found = find_nginx()
    if found is not None:
        return found, "nginx and its echo module found"
    if not can_apt_install():
        raise NginxMissing(INSTALL_HINT)
    apt_install(*APT_PACKAGES)
    found = find_nginx()
    if found is None:
        raise NginxMissing(f"apt-get could not install them: {INSTALL_HINT}")
    return found, "nginx and its echo module installed with apt-get"


# -- TLS --------------------------------------------------------------------------------------


@attrs.frozen
class TlsFiles:
    """The run's own CA and the server's certificate (for 127.0.0.1 and localhost), as PEM."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> TlsFiles:
    """A fresh CA (trustme) and a server certificate it signed, written into `directory`."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(
        ca=directory / "ca.pem", cert=directory / "cert.pem", key=directory / "key.pem"
    )
    ca.cert_pem.write_to_path(str(files.ca))
    issued.private_key_pem.write_to_path(str(files.key))
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return files


# -- the configuration (pure) -----------------------------------------------------------------


@attrs.frozen
class Listener:
    """One variant on its own port: TLS or not, the latency before each answer (seconds)."""

    port: int
    tls: bool
    latency: float

    @property
    def url(self) -> str:
        """The base URL the clients are given."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


def cpu_mask(cpu: int) -> str:
    """`worker_cpu_affinity`'s bit mask for one CPU: `1` for CPU 0, `100` for CPU 2."""
    if cpu < 0:
        raise ValueError(f"cpu: expected a CPU number >= 0, got {cpu}")
    return "1" + "0" * cpu


def split_cores(available: Sequence[int]) -> tuple[int | None, int | None]:
    """`(server core, client core)`: the first two of `available`, or `(None, None)` on a
    single core (then nothing is pinned)."""
    cores = sorted(available)
    if len(cores) < 2:
        return None, None
    return cores[0], cores[1]


def _server_block(listener: Listener, tls: TlsFiles | None) -> list[str]:
    lines = ["    server {"]
    if listener.tls:
        if tls is None:
            raise ValueError(f"the listener on port {listener.port} is TLS: give the TLS files")
        lines += [
            f"        listen 127.0.0.1:{listener.port} ssl backlog={BACKLOG};",
            f"        ssl_certificate {tls.cert};",
            f"        ssl_certificate_key {tls.key};",
            "        ssl_protocols TLSv1.2 TLSv1.3;",
        ]
    else:
        lines.append(f"        listen 127.0.0.1:{listener.port} backlog={BACKLOG};")
    lines += [
        f"        location = {SEND_SMS_PATH} {{",
        "            echo_read_request_body;",
    ]
    if listener.latency > 0:
        lines.append(f"            echo_sleep {listener.latency:g};")
    lines += [
        "            echo_exec @sendsms_answer;",
        "        }",
        "        location @sendsms_answer {",
        f"            return 200 '{ANSWER}';",
        "        }",
        "    }",
    ]
    return lines


@attrs.frozen
class NginxSetup:
    """Everything the configuration says.

    Attributes:
        directory: the temporary directory (pid, error log, temp paths).
        echo_module: the echo module's shared object.
        listeners: one server block each.
        tls: the certificate and key of the TLS listeners.
        cpu: the core the worker is pinned to, or None.
        open_files: the worker's open-files limit (`worker_rlimit_nofile`): no more than the
            hard limit nginx starts under, which its worker cannot raise.
    """

    directory: Path
    echo_module: str
    listeners: tuple[Listener, ...]
    tls: TlsFiles | None = None
    cpu: int | None = None
    open_files: int = 2 * WORKER_CONNECTIONS

    @property
    def connections(self) -> int:
        """`worker_connections`: as many as the open-files limit leaves room for."""
        return max(64, min(WORKER_CONNECTIONS, self.open_files - 64))


def render_config(setup: NginxSetup) -> str:
    """The nginx.conf of `setup`."""
    d = setup.directory
    lines = [
        "# Written by benchmarks/suite/wild/nginx.py for one benchmark run.",
        f"load_module {setup.echo_module};",
        "worker_processes 1;",
    ]
    if setup.cpu is not None:
        lines.append(f"worker_cpu_affinity {cpu_mask(setup.cpu)};")
    lines += [
        f"worker_rlimit_nofile {setup.open_files};",
        "daemon off;",
        "master_process on;",
        "pcre_jit on;",
        f"pid {d / 'nginx.pid'};",
        f"error_log {d / 'error.log'} warn;",
        "events {",
        f"    worker_connections {setup.connections};",
        "}",
        "http {",
        "    access_log off;",
        "    server_tokens off;",
        "    default_type application/json;",
        # Keep-alive unbounded: a connection is never closed by the server mid-measurement.
        "    keepalive_requests 1000000000;",
        "    keepalive_timeout 600s;",
        # The body stays in memory, in one buffer, for the map below to read the uid.
        "    client_body_buffer_size 16k;",
        "    client_body_in_single_buffer on;",
        f"    client_body_temp_path {d / 'body'};",
        f"    proxy_temp_path {d / 'proxy'};",
        f"    fastcgi_temp_path {d / 'fastcgi'};",
        f"    uwsgi_temp_path {d / 'uwsgi'};",
        f"    scgi_temp_path {d / 'scgi'};",
        # The message's uid: from the JSON body (POST), else the query string (GET).
        "    map $request_body $sendsms_uid {",
        '        "~\\"uid\\"\\s*:\\s*\\"(?<body_uid>[^\\"]*)\\"" $body_uid;',
        "        default $arg_uid;",
        "    }",
    ]
    for listener in setup.listeners:
        lines += _server_block(listener, setup.tls)
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- the process ------------------------------------------------------------------------------


def _free_ports(number: int) -> list[int]:
    """`number` distinct free loopback ports (held open together, so never the same twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(number):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _open_files_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = 2 * WORKER_CONNECTIONS
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class NginxServer:
    """nginx serving every `(tls, latency)` variant asked for, until `stop()`.

    Use as a context manager. `url(tls, latency)` is the base URL of a variant. Raises
    `RuntimeError` (with nginx's error log) when nginx does not start.
    """

    def __init__(
        self,
        install: NginxInstall,
        variants: Sequence[tuple[bool, float]],
        *,
        tls: TlsFiles | None = None,
        cpu: int | None = None,
    ) -> None:
        self.install = install
        self.variants = list(dict.fromkeys(variants))
        self.tls = tls
        self.cpu = cpu
        self.listeners: tuple[Listener, ...] = ()
        self.config = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NginxServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The master process's id, while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id (the one that serves), found in /proc; None if unknown."""
        master = self.pid
        if master is None:
            return None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                text = (entry / "stat").read_text(encoding="ascii", errors="replace")
            except OSError:
                continue
            # The parent's id is the second field after the parenthesised command name.
            if int(text[text.rindex(")") + 2 :].split()[1]) == master:
                return int(entry.name)
        return None

    def url(self, tls: bool, latency: float) -> str:
        """The base URL of the variant; `KeyError` if it was not asked for."""
        for listener in self.listeners:
            if listener.tls == tls and listener.latency == latency:
                return listener.url
        raise KeyError((tls, latency))

    def start(self) -> None:
        """Write the configuration, start nginx, wait until every port answers."""
        self._tmp = tempfile.TemporaryDirectory(prefix="haorui-bench-nginx-")
        directory = Path(self._tmp.name)
        # A port taken between the choice and nginx's bind: choose again.
        for _ in range(3):
            ports = _free_ports(len(self.variants))
            self.listeners = tuple(
                Listener(port=port, tls=tls, latency=latency)
                for port, (tls, latency) in zip(ports, self.variants, strict=True)
            )
            setup = NginxSetup(
                directory=directory,
                echo_module=self.install.echo_module,
                listeners=self.listeners,
                tls=self.tls,
                cpu=self.cpu,
                open_files=_open_files_limit(),
            )
            self.config = render_config(setup)
            conf = directory / "nginx.conf"
            conf.write_text(self.config, encoding="utf-8")
            self._process = subprocess.Popen(
                [
                    self.install.binary,
                    "-p",
                    str(directory),
                    "-c",
                    str(conf),
                    "-e",
                    str(directory / "error.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_listening():
                return
            log = self.error_log()
            self._terminate()
            if "Address already in use" not in log:
                break
        self.stop()
        raise RuntimeError(f"nginx did not start: {log.strip()[-600:]}")

    def _wait_listening(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        waiting = {listener.port for listener in self.listeners}
        while time.monotonic() < deadline and self._process.poll() is None:
            waiting = {port for port in waiting if not _listening(port)}
            if not waiting:
                return True
            time.sleep(0.05)
        return False

    def error_log(self) -> str:
        """nginx's error log so far ("" when none)."""
        if self._tmp is None:
            return ""
        path = Path(self._tmp.name, "error.log")
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGTERM: nginx's fast shutdown, the master stops its worker.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung nginx
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop nginx and remove its directory (idempotent)."""
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
