"""A TCP proxy in front of the broker that can hold back one Kafka request and deliver it late.

Every connection accepted on the proxy's port gets its own connection to the broker. Broker ->
client bytes are passed on as they come; client -> broker bytes are cut into Kafka frames:

    size:i32 | api_key:i16 api_version:i16 correlation_id:i32 client_id:nullable_string(i16) ...

``arm(api_key)`` makes the proxy keep the next request of that key (optionally only from one
client id) instead of forwarding it. From then on that connection forwards nothing more: the
client's later frames queue behind the held one, as they would behind a stalled TCP stream.
``release()`` writes the held frame and its queue to the ORIGINAL broker connection, also when the
client has since timed out and closed its side; the broker's answers then go to the client if it
is still there, else they are read and dropped, and the broker connection is closed once every
released request has its answer (or after ``RESPONSE_TIMEOUT_S``). The held request's answer is
kept on the ``Held`` record for the test to decode.

Threads only, standard library only: one accept thread, two threads per connection. ``close()``
shuts every socket and joins every thread.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from brokerproc import PORT_RANGE

FRAME_MAX_BYTES = 100 << 20  # larger, or below a header: not Kafka; pass the rest through raw
RESPONSE_TIMEOUT_S = 20.0  # how long a released request may wait for its answer
POLL_S = 0.2
JOIN_TIMEOUT_S = 5.0


@dataclass
class Request:
    """One client -> broker frame seen by the proxy (for reports)."""

    conn_id: int
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@dataclass
class Held:
    """The request being held, then released, and what became of it."""

    request: Request
    frame: bytes
    # Set when the client closes the connection the request came on (it gave up waiting).
    client_closed: threading.Event = field(default_factory=threading.Event)
    released: bool = False
    client_open_at_release: bool | None = None
    response: bytes | None = None  # the answer's frame without its size: header and body
    responded: threading.Event = field(default_factory=threading.Event)

    def wait_response(self, timeout_s: float) -> bytes | None:
        self.responded.wait(timeout_s)
        return self.response


class TxnProxy:
    """Listens on 127.0.0.1:``port`` (chosen and bound at construction, so that a broker can be
    told to advertise it before it starts) and forwards each connection to the upstream broker."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.listener = _listen()
        self.port = self.listener.getsockname()[1]
        self.requests: deque[Request] = deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._armed: tuple[int, str | None] | None = None
        self._held: Held | None = None
        self._held_conn: _Connection | None = None
        self._conns: list[_Connection] = []
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def arm(self, api_key: int, client_id: str | None = None) -> None:
        """Hold the next request of ``api_key`` (from ``client_id``, if given)."""
        with self._lock:
            assert self._held is None or self._held.released, "a request is held already"
            self._armed = (api_key, client_id)
            self._held = None
            self._held_conn = None

    def wait_held(self, timeout_s: float) -> Held | None:
        with self._changed:
            self._changed.wait_for(lambda: self._held is not None, timeout_s)
            return self._held

    def release(self) -> Held:
        """Sends the held request, and whatever queued behind it, on its own broker connection."""
        with self._lock:
            held, conn = self._held, self._held_conn
            assert held is not None and conn is not None, "nothing is held"
            assert not held.released, "released already"
        conn.release(held)
        return held

    def seen(self, client_id: str | None = None) -> list[Request]:
        """The requests forwarded or held so far, in the order they arrived."""
        return [r for r in list(self.requests)  # a copy: connections append meanwhile
                if client_id is None or r.client_id == client_id]

    def requests_of(self, api_key: int, client_id: str | None = None) -> list[Request]:
        return [r for r in self.seen(client_id) if r.api_key == api_key]

    def close(self) -> None:
        self._stopped.set()
        self._acceptor.join(JOIN_TIMEOUT_S)
        self.listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.shut()
        for conn in conns:
            conn.join()
        with self._lock:
            alive = [t.name for c in self._conns for t in c.threads if t.is_alive()]
        assert not alive and not self._acceptor.is_alive(), f"proxy threads left: {alive}"

    # --- called by connections -----------------------------------------------------------------

    def _seen(self, request: Request) -> None:
        self.requests.append(request)

    def _take_arm(self, conn: "_Connection", request: Request, frame: bytes) -> Held | None:
        with self._changed:
            if self._armed is None:
                return None
            api_key, client_id = self._armed
            if request.api_key != api_key or (client_id is not None
                                              and request.client_id != client_id):
                return None
            self._armed = None
            self._held = Held(request, frame)
            self._held_conn = conn
            self._changed.notify_all()
            return self._held

    def _accept(self) -> None:
        self.listener.settimeout(POLL_S)
        ids = 0
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            ids += 1
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # the broker is not there: the client sees a closed connection
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            conn = _Connection(self, ids, client, upstream)
            with self._lock:
                if self._stopped.is_set():
                    client.close()
                    upstream.close()
                    return
                self._conns.append(conn)
            conn.start()


class _Connection:
    """One client connection and its broker connection, with a thread for each direction."""

    def __init__(self, proxy: TxnProxy, conn_id: int, client: socket.socket,
                 upstream: socket.socket):
        self.proxy = proxy
        self.conn_id = conn_id
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.held: Held | None = None  # while set, nothing goes upstream
        self.released: Held | None = None  # the held request once sent on
        # Frames waiting behind the held one, with their correlation ids (None: not a frame).
        self.queue: list[tuple[int | None, bytes]] = []
        self.client_open = True
        self.awaiting: set[int] = set()  # released correlation ids without an answer yet
        self.release_deadline = 0.0
        self.threads = [
            threading.Thread(target=self._client_to_broker, daemon=True,
                             name=f"proxy-{conn_id}-up"),
            threading.Thread(target=self._broker_to_client, daemon=True,
                             name=f"proxy-{conn_id}-down"),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def shut(self) -> None:
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join(self) -> None:
        for t in self.threads:
            t.join(JOIN_TIMEOUT_S)
        self.client.close()
        self.upstream.close()

    def release(self, held: Held) -> None:
        with self.lock:
            assert self.held is held
            frames = [(held.request.correlation_id, held.frame), *self.queue]
            self.queue = []
            self.held = None
            self.released = held
            held.released = True
            held.client_open_at_release = self.client_open
            self.awaiting.update(corr for corr, _ in frames if corr is not None)
            self.release_deadline = time.monotonic() + RESPONSE_TIMEOUT_S
            for _, frame in frames:
                self._send_upstream(frame)

    # --- client -> broker ----------------------------------------------------------------------

    def _client_to_broker(self) -> None:
        buf = bytearray()
        raw = False  # the stream stopped looking like Kafka frames
        while True:
            try:
                data = self.client.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            if raw:
                self._forward(None, bytes(data))
                continue
            buf += data
            while len(buf) >= 4:
                size = struct.unpack_from(">i", buf)[0]
                if size < 8 or size > FRAME_MAX_BYTES:
                    raw = True
                    self._forward(None, bytes(buf))
                    buf.clear()
                    break
                if len(buf) < 4 + size:
                    break
                frame = bytes(buf[:4 + size])
                del buf[:4 + size]
                self._forward(_parse_request(self.conn_id, frame), frame)
        with self.lock:
            self.client_open = False
            held = self.held
            keep = held is not None or bool(self.awaiting)
        if held is not None:
            held.client_closed.set()
        if not keep:
            try:
                self.upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _forward(self, request: Request | None, frame: bytes) -> None:
        if request is not None:
            self.proxy._seen(request)
        with self.lock:
            if self.held is not None:
                self.queue.append((request.correlation_id if request else None, frame))
                return
            if request is not None:
                held = self.proxy._take_arm(self, request, frame)
                if held is not None:
                    self.held = held
                    return
            self._send_upstream(frame)

    def _send_upstream(self, frame: bytes) -> None:
        try:
            self.upstream.sendall(frame)
        except OSError:
            pass  # the broker went away; the other thread sees it and closes the client

    # --- broker -> client ----------------------------------------------------------------------

    def _broker_to_client(self) -> None:
        buf = bytearray()
        while not self.proxy._stopped.is_set():
            try:
                ready, _, _ = select.select([self.upstream], [], [], POLL_S)
                data = self.upstream.recv(1 << 16) if ready else None
            except (OSError, ValueError):
                data = b""
            if data == b"":
                break
            if data:
                self._to_client(data)
                buf += data
                self._responses(buf)
            if self._finished():
                break
        try:
            self.client.shutdown(socket.SHUT_RDWR)  # wakes the other thread
        except OSError:
            pass
        try:
            self.upstream.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _to_client(self, data: bytes) -> None:
        with self.lock:
            if not self.client_open:
                return
        try:
            self.client.sendall(data)
        except OSError:
            with self.lock:
                self.client_open = False

    def _responses(self, buf: bytearray) -> None:
        """Takes the complete answers off ``buf``; notes those of released requests."""
        while len(buf) >= 8:
            size = struct.unpack_from(">i", buf)[0]
            if size < 4 or size > FRAME_MAX_BYTES:
                buf.clear()  # not Kafka: stop following the answers
                return
            if len(buf) < 4 + size:
                return
            body = bytes(buf[4:4 + size])
            del buf[:4 + size]
            corr = struct.unpack_from(">i", body)[0]
            with self.lock:
                if corr not in self.awaiting:
                    continue
                self.awaiting.discard(corr)
                held = self.released
            if held is not None and held.request.correlation_id == corr:
                held.response = body
                held.responded.set()

    def _finished(self) -> bool:
        """The client is gone and no released request waits for its answer any more."""
        with self.lock:
            if self.client_open or self.held is not None:
                return False
            return not self.awaiting or time.monotonic() > self.release_deadline


def _parse_request(conn_id: int, frame: bytes) -> Request:
    api_key, api_version, corr = struct.unpack_from(">hhi", frame, 4)
    client_id = None
    if len(frame) >= 14:
        n = struct.unpack_from(">h", frame, 12)[0]
        if 0 <= n <= len(frame) - 14:
            client_id = frame[14:14 + n].decode(errors="replace")
    return Request(conn_id, api_key, api_version, corr, client_id)


def _listen() -> socket.socket:
    """A listening socket on a free port below the ephemeral range, bound at once (no race)."""
    for _ in range(200):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", random.randrange(*PORT_RANGE)))
        except OSError:
            s.close()
            continue
        s.listen(64)
        return s
    raise RuntimeError(f"no free port in {PORT_RANGE}")
