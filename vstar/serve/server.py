"""Run the reward server with uvicorn: in the foreground (``vstar serve``) or on a thread
(tests, bench/serve.py). It binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from vstar.errors import VstarError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one); a clear error when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise VstarError(f"cannot listen on {host}:{port}: {exc.strerror}. Choose another --port or --host.") from None
    sock.listen(2048)
    return sock


def make_server(app, log_level: str = "warning") -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=log_level == "info"))


def serve_forever(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", on_ready=None) -> None:
    """Serve ``app`` until interrupted (Ctrl-C); ``on_ready(url)`` is called once it listens."""
    sock = bind(host, port)
    server = make_server(app, log_level)
    if on_ready is not None:
        threading.Thread(target=_announce, args=(server, _url(sock), on_ready), daemon=True).start()
    server.run(sockets=[sock])


class ServerThread:
    """The app served on a thread at a free loopback port; ``url``; use as a context manager."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.socket = bind(host, port)
        self.url = _url(self.socket)
        self.server = make_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _announce(server: uvicorn.Server, url: str, on_ready) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        on_ready(url)
