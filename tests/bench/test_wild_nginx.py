"""The wild part's server: its configuration (pure), and finding or installing nginx."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from benchmarks.suite.wild import nginx
from benchmarks.suite.wild.nginx import (
    INSTALL_HINT,
    Listener,
    NginxMissing,
    NginxSetup,
    TlsFiles,
    cpu_mask,
    ensure_nginx,
    find_nginx,
    render_config,
    split_cores,
)
from haorui_async._defaults import SEND_SMS_PATH

#: Found before a test narrows PATH.
MKDIR = shutil.which("mkdir")
CHMOD = shutil.which("chmod")
TLS = TlsFiles(ca=Path("/t/ca.pem"), cert=Path("/t/cert.pem"), key=Path("/t/key.pem"))
LISTENERS = (
    Listener(port=8001, tls=False, latency=0.0),
    Listener(port=8002, tls=True, latency=0.0),
    Listener(port=8003, tls=False, latency=0.1),
)


def _server_blocks(config: str) -> list[str]:
    return config.split("    server {")[1:]


def test_the_config_runs_one_pinned_worker_in_the_foreground_with_its_own_files() -> None:
    config = render_config(
        NginxSetup(
            directory=Path("/run/bench"),
            echo_module="/mods/echo.so",
            listeners=LISTENERS,
            tls=TLS,
            cpu=1,
            open_files=20000,
        )
    )
    assert config.startswith("# Written by")
    for line in (
        "load_module /mods/echo.so;",
        "worker_processes 1;",
        "worker_cpu_affinity 10;",
        "daemon off;",
        "pid /run/bench/nginx.pid;",
        "error_log /run/bench/error.log warn;",
        "worker_rlimit_nofile 20000;",
        "worker_connections 16384;",
        "access_log off;",
        "keepalive_requests 1000000000;",
        "client_body_temp_path /run/bench/body;",
    ):
        assert line in config


def test_each_listener_is_a_loopback_server_answering_sendsms_with_the_uid_echoed() -> None:
    config = render_config(
        NginxSetup(
            directory=Path("/d"), echo_module="/e.so", listeners=LISTENERS, tls=TLS, cpu=None
        )
    )
    plain, tls, slow = _server_blocks(config)
    assert "listen 127.0.0.1:8001 backlog=4096;" in plain
    assert "ssl" not in plain
    assert "listen 127.0.0.1:8002 ssl backlog=4096;" in tls
    assert "ssl_certificate /t/cert.pem;" in tls
    assert "ssl_certificate_key /t/key.pem;" in tls
    for block in (plain, tls, slow):
        assert f"location = {SEND_SMS_PATH} {{" in block
        assert "echo_read_request_body;" in block
        assert '"status":"S"' in block
        assert '"uid":"$sendsms_uid"' in block
        assert "return 200 '" in block
    assert "echo_sleep" not in plain + tls
    assert "echo_sleep 0.1;" in slow
    # The uid comes from the JSON body, else from the query string (GET).
    assert "map $request_body $sendsms_uid {" in config
    assert "default $arg_uid;" in config
    assert "worker_cpu_affinity" not in config


def test_a_tls_listener_without_certificate_files_is_refused() -> None:
    setup = NginxSetup(directory=Path("/d"), echo_module="/e.so", listeners=LISTENERS[1:2])
    with pytest.raises(ValueError, match="port 8002 is TLS"):
        render_config(setup)


def test_worker_connections_fit_in_the_open_files_limit() -> None:
    setup = NginxSetup(directory=Path("/d"), echo_module="/e.so", listeners=(), open_files=4096)
    assert setup.connections == 4032
    assert "worker_connections 4032;" in render_config(setup)


@pytest.mark.parametrize(("cpu", "mask"), [(0, "1"), (1, "10"), (3, "1000")])
def test_the_cpu_mask_sets_one_bit(cpu: int, mask: str) -> None:
    assert cpu_mask(cpu) == mask


def test_a_negative_cpu_has_no_mask() -> None:
    with pytest.raises(ValueError, match="got -1"):
        cpu_mask(-1)


def test_server_and_client_get_the_first_two_cores_and_one_core_pins_nothing() -> None:
    assert split_cores([3, 1, 2]) == (1, 2)
    assert split_cores([0]) == (None, None)
    assert split_cores([]) == (None, None)


def test_a_listener_url_is_loopback_with_its_scheme() -> None:
    assert LISTENERS[0].url == "http://127.0.0.1:8001"
    assert LISTENERS[1].url == "https://127.0.0.1:8002"


# -- finding and installing nginx -------------------------------------------------------------


def _executable(path: Path, body: str = "exit 0\n") -> Path:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_nginx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of only `tmp_path/bin`, and no nginx or echo module where Debian puts them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(nginx, "NGINX_CANDIDATES", (str(tmp_path / "sbin" / "nginx"),))
    monkeypatch.setattr(nginx, "ECHO_MODULE", str(tmp_path / "modules" / "echo.so"))
    return tmp_path


def test_find_nginx_needs_both_the_binary_and_the_echo_module(no_nginx: Path) -> None:
    assert find_nginx() is None
    (no_nginx / "sbin").mkdir()
    binary = _executable(no_nginx / "sbin" / "nginx")
    assert find_nginx() is None
    (no_nginx / "modules").mkdir()
    (no_nginx / "modules" / "echo.so").write_bytes(b"")
    found = find_nginx()
    assert found is not None
    assert found.binary == str(binary)
    assert found.echo_module == str(no_nginx / "modules" / "echo.so")


def test_without_nginx_and_without_root_the_error_says_how_to_install_it(
    no_nginx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NginxMissing) as raised:
        ensure_nginx()
    assert str(raised.value) == INSTALL_HINT
    assert "apt-get install -y nginx libnginx-mod-http-echo" in INSTALL_HINT


def test_as_root_nginx_and_the_module_are_installed_with_apt_get(
    no_nginx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for apt-get that installs both where Debian would.
    _executable(
        no_nginx / "bin" / "apt-get",
        f"""D="{no_nginx}"
{MKDIR} -p "$D/sbin" "$D/modules"
echo '#!/bin/sh' > "$D/sbin/nginx"; {CHMOD} +x "$D/sbin/nginx"
: > "$D/modules/echo.so"
echo "$@" >> "$D/apt.log"
""",
    )
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    found, how = ensure_nginx()
    assert found.binary == str(no_nginx / "sbin" / "nginx")
    assert how == "nginx and its echo module installed with apt-get"
    assert (no_nginx / "apt.log").read_text() == "install -y nginx libnginx-mod-http-echo\n"


def test_as_root_an_install_that_brings_nothing_still_says_how(
    no_nginx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _executable(no_nginx / "bin" / "apt-get")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(NginxMissing, match="apt-get could not install them"):
        ensure_nginx()
