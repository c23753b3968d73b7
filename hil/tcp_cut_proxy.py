"""A loopback TCP relay whose link can be cut, to simulate a network outage.

Clients connect to ``proxy.port`` instead of the broker. ``cut()`` drops every open
connection and refuses new ones until ``restore()``; the broker itself keeps running,
so this differs from a broker restart: the broker sees the device vanish (and publishes
its will), the device sees connection failures until the link returns.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from hil.local_broker import free_port


class TcpCutProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self.cuts = 0
        self.restore()

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            lst = socket.socket()
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lst.bind((self.host, self.port))
            lst.listen(256)
            self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self.cuts += 1
            lst, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if lst is not None:
            with contextlib.suppress(OSError):
                lst.shutdown(socket.SHUT_RDWR)
            lst.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            # The timeout was for connecting only: a relayed link may be idle for as long
            # as the client's keep-alive, and must not be cut after 5 s of silence.
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not lst:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
