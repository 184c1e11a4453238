"""A TCP proxy for tests that cut one process's database connections while other processes
keep theirs: the process is pointed at the proxy, and the test cuts the line (every open
connection closed, new ones refused), stalls it (new connections accepted but never
answered, as a frozen server or a lost network would leave them) or restores it."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards connections to 127.0.0.1:``port`` (a free port) to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._stalled: list[socket.socket] = []
        self._mode = "up"  # up | stalled (accept, never answer)
        self._listener: socket.socket | None = None
        self.port = self._listen(0)

    @property
    def connections(self) -> int:
        """Connections forwarded now (each is two sockets)."""
        with self._lock:
            return len(self._sockets) // 2

    def cut(self) -> None:
        """Close every open connection and refuse new ones (``restore`` ends it)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._close_all()

    def stall(self) -> None:
        """Close every open connection; new ones are accepted and never answered."""
        self._mode = "stalled"
        self._close_all()

    def restore(self) -> None:
        self._mode = "up"
        with self._lock:
            stalled, self._stalled = self._stalled, []
        for sock in stalled:
            sock.close()
        if self._listener is None:
            self._listen(self.port)

    def close(self) -> None:
        self.cut()

    # -- internals ---------------------------------------------------------------------------

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return int(listener.getsockname()[1])

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            if self._mode == "stalled":
                with self._lock:
                    self._stalled.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _close_all(self) -> None:
        with self._lock:
            sockets, stalled = list(self._sockets), self._stalled
            self._stalled = []
        self._close(*sockets, *stalled)
