"""A raw loopback HTTP/1.1 client for upload tests: drip, hold back, stall, flood.

Built on a plain socket (so the test decides exactly when each byte leaves)
and h11 (so responses are parsed by a real HTTP implementation).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import h11


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class Upload:
    """One request whose body is sent piece by piece under the test's control."""

    sock: socket.socket
    chunked: bool
    sent: int = 0
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))

    def send(self, data: bytes) -> None:
        """Send one piece of the body (as one chunk when chunked)."""
        if self.chunked:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.sock.sendall(data)
        self.sent += len(data)

    def end(self) -> None:
        if self.chunked:
            self.sock.sendall(b"0\r\n\r\n")

    def response(self, timeout: float = 20.0) -> Reply:
        """Read and parse the whole response (the server may close right after)."""
        self.sock.settimeout(timeout)
        conn = self.conn
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())  # only to put h11 into the state that reads a response
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = [(k, v) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return Reply(status, headers, bytes(body))

    def close(self) -> None:
        self.sock.close()


def start_upload(
    port: int,
    path: str,
    *,
    content_length: int | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
    method: str = "POST",
) -> Upload:
    """Connect and send the request head; the body follows through :meth:`Upload.send`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if content_length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {content_length}")
    lines += [f"{name}: {value}" for name, value in extra_headers]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return Upload(sock, chunked=content_length is None)


def get(port: int, path: str, timeout: float = 20.0) -> Reply:
    """A plain GET on its own connection."""
    upload = start_upload(port, path, content_length=0, method="GET")
    try:
        return upload.response(timeout)
    finally:
        upload.close()
