"""A real nginx on loopback, configured with the blocks the docs tell users to copy.

The docs page ``docs/middleware/proxy-headers.md`` holds each nginx configuration
as a fenced ``nginx`` block under an ``<!-- nginx: NAME -->`` marker; the tests
run exactly those blocks. :func:`nginx_config` wraps them in a complete
configuration whose pid file, logs and temporary paths live in the test's own
directory, with a TLS listener on a free 127.0.0.1 port (a test CA from
``trustme``), and the app's port in place of the docs' ``127.0.0.1:8000``.

Outside CI a missing nginx skips the test; in CI it fails, because .ci/run
installs it (Debian's ``nginx-light``), as it does redis-server.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
import trustme

from tests.conftest import IN_CI, ROOT, free_port, wait_for_port

__all__ = ("DOCS_PAGE", "Nginx", "StartNginx", "docs_nginx_block", "nginx_config", "start_nginx")

DOCS_PAGE: Path = ROOT / "docs" / "middleware" / "proxy-headers.md"
#: The upstream address the docs' blocks proxy to; replaced by the app's real port.
DOCS_UPSTREAM = "127.0.0.1:8000"

_MARKED_BLOCK = re.compile(r"<!-- nginx: ([\w-]+) -->\s*```nginx\n(.*?)```", re.DOTALL)


def docs_nginx_block(name: str) -> str:
    """The ``nginx`` block of the docs page marked ``<!-- nginx: name -->``."""
    blocks: dict[str, str] = dict(_MARKED_BLOCK.findall(DOCS_PAGE.read_text(encoding="utf-8")))
    if name not in blocks:
        raise KeyError(f"{DOCS_PAGE.name} has no block marked <!-- nginx: {name} -->")
    return blocks[name]


def _top_level_statements(text: str) -> list[str]:
    """``text`` cut into its top-level directives and blocks (comments dropped)."""
    statements: list[str] = []
    current: list[str] = []
    depth = 0
    for line in text.splitlines():
        code = line.split("#", 1)[0].rstrip()
        if not code.strip():
            continue
        current.append(code)
        depth += code.count("{") - code.count("}")
        if depth == 0 and code.endswith((";", "}")):
            statements.append("\n".join(current))
            current = []
    if current or depth:
        raise ValueError(f"unbalanced nginx block:\n{text}")
    return statements


def nginx_config(blocks: list[str], *, port: int, upstream_port: int | Path, workdir: Path) -> str:
    """A complete nginx.conf serving ``blocks`` (docs blocks) over TLS on ``port``, in
    front of the app on ``upstream_port`` (or on the Unix socket at that path).

    ``map`` blocks go into the ``http`` context and everything else into the
    ``server`` block, as the docs say where each part belongs.
    """
    http_part: list[str] = []
    server_part: list[str] = []
    for block in blocks:
        upstream = (
            f"unix:{upstream_port}"
            if isinstance(upstream_port, Path)
            else f"127.0.0.1:{upstream_port}"
        )
        text = block.replace(DOCS_UPSTREAM, upstream)
        for statement in _top_level_statements(text):
            (http_part if statement.lstrip().startswith("map ") else server_part).append(statement)
    temp = {name: workdir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the workdir
    return f"""{user}daemon off;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} info;
events {{ worker_connections 128; }}
http {{
    access_log {workdir / "access.log"};
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{_indent(http_part, 4)}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {workdir / "cert.pem"};
        ssl_certificate_key {workdir / "key.pem"};
{_indent(server_part, 8)}
    }}
}}
"""


def _indent(statements: list[str], spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for s in statements for line in s.splitlines())


def nginx_binary() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which("nginx", path=path)


class Nginx:
    """One running nginx; ``url`` is its https base URL, ``client_ssl`` trusts its certificate."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, workdir: Path, ca: trustme.CA):
        self.proc = proc
        self.port = port
        self.workdir = workdir
        self.url = f"https://localhost:{port}"
        self.client_ssl = ssl.create_default_context()
        ca.configure_trust(self.client_ssl)

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown of the master and its worker
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class StartNginx(Protocol):
    def __call__(self, blocks: list[str], upstream_port: int | Path) -> Nginx: ...


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[StartNginx]:
    """``start_nginx(blocks, upstream_port)``: nginx in front of the app (on a port, or on a
    Unix socket given as a Path); always stopped."""
    binary = nginx_binary()
    if binary is None:
        message = "nginx is not installed (apt-get install nginx-light)"
        if IN_CI:  # .ci/run installs it: never skip silently there
            pytest.fail(message)
        pytest.skip(message)
    started: list[Nginx] = []

    def start(blocks: list[str], upstream_port: int | Path) -> Nginx:
        workdir = tmp_path / f"nginx{len(started)}"
        workdir.mkdir()
        workdir.chmod(0o755)
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        port = free_port()
        config = workdir / "nginx.conf"
        config.write_text(
            nginx_config(blocks, port=port, upstream_port=upstream_port, workdir=workdir)
        )
        argv = [binary, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        server = Nginx(proc, port, workdir, ca)
        started.append(server)
        try:
            wait_for_port(port, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\nnginx error.log:\n{server.error_log()}") from None
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
