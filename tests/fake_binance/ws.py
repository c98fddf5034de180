"""Fake Binance market streams (``websockets``), faithful to ``shared/reference/binance-spot-api.md`` section 1.

What it serves, as the reference describes:

* URL forms: raw ``/ws/<stream>``, raw multi-stream ``/ws/<s1>/<s2>`` (bare events), bare ``/ws``,
  combined ``/stream?streams=<s1>/<s2>`` (``{"stream":..,"data":..}``) and bare ``/stream``.
* Control frames: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY/GET_PROPERTY ``combined``,
  with ``{"result":null,"id":N}`` replies and the documented error frames (code 2 ``Invalid request:
  invalid stream`` for unknown streams, code 3 for bad JSON); more than 5 incoming messages in a
  second or more than 1024 streams closes/refuses, as Binance does.
* Pings every ``ping_interval`` (20 s) and a disconnect when no pong comes within ``ping_timeout``
  (60 s) -- done by the ``websockets`` server; connections are cut at ``max_lifetime`` (24 h).
* Klines: every series pushes its current candle each tick (``x=false``) and one closing event
  (``x=true``) when its candle ends, then the next ``t``. A slow client (too much unsent) is dropped.

Where the candles come from: real klines in ``data/sample`` (BTCUSDT-1m for BTCUSDT and any unknown
symbol, the futures_um files for ALGO/AVAX/LINK/NEAR USDT). Candle number k of a series (counted on
its interval grid from ``start_ms``) takes row k of the file (cycling), re-stamped with the series'
own open/close times: the values are real, the times are the fake market's. A closing event carries
the row's values exactly. In-progress updates are derived, since real partial states are not in the
data: at fraction f of the candle, close = open + (real close - open) * f (exact decimal arithmetic at
the row's precision, rounded down), high = max(open, close), low = min(open, close), volumes and trade
count = real * f -- all monotone and ending exactly at the real closed values. Fields absent from
the file (quote volume, trade count, taker volumes) are sent as ``"0"``/``0``; ``f``/``L`` as -1.

The market clock is fast and scripted: each tick (``tick`` wall seconds) advances it by ``step_ms``.
Closed candles are reported to ``on_close(symbol, interval, rest_row)`` -- wire it to the REST fake's
``seed_klines`` so that ``GET /api/v3/klines`` serves exactly what closed (backfill tests).

Use from tests (a background thread, a free port)::

    with FakeStreams(step_ms=15_000, tick=0.05, on_close=rest.seed_klines) as ws:   # 1m candle = 4 ticks
        ws.url                     # ws://127.0.0.1:PORT
        ws.drop(refuse_for=0.2)    # forced disconnect of every connection (no close frame), 503s for 0.2 s
        ws.shutdown(grace=0.5)     # serverShutdown event, then close
        ws.garbage(b"not json")    # an invalid frame to every connection
        ws.silence(2.0)            # push nothing for 2 s (the clock keeps running)
        ws.freeze() / ws.closed("BTCUSDT", "1m")   # stop the clock (current candles still pushed); what closed

Standalone: ``python -m tests.fake_binance --ws-port 9443`` (with the REST fake) calls ``serve_streams``.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import websockets
from websockets.asyncio.server import ServerConnection, serve

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
FILES = {"BTCUSDT": "BTCUSDT-1m.csv.gz", "ALGOUSDT": "futures_um/ALGOUSDT-1m.csv.gz", "AVAXUSDT": "futures_um/AVAXUSDT-1m.csv.gz",
         "LINKUSDT": "futures_um/LINKUSDT-1m.csv.gz", "NEARUSDT": "futures_um/NEARUSDT-1m.csv.gz"}
FIXED_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
            "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000,
            "3d": 259_200_000, "1w": 604_800_000}
INTERVALS = (*FIXED_MS, "1M")
START_MS = 1_709_251_200_000  # 2024-03-01 00:00 UTC, the first candle of BTCUSDT-1m.csv.gz
_WEEK_SHIFT = 4 * 86_400_000  # 1970-01-01 was a Thursday; Binance weeks open on Monday
_ROWS: dict[str, list[list[str]]] = {}
_TEMPLATE = ('{"e":"kline","E":%d,"s":"%s","k":{"t":%d,"T":%d,"s":"%s","i":"%s","f":-1,"L":-1,"o":"%s","c":"%s",'
             '"h":"%s","l":"%s","v":"%s","n":%d,"x":%s,"q":"%s","V":"%s","Q":"%s","B":"0"}}')


def rows_for(symbol: str) -> list[list[str]]:
    name = FILES.get(symbol, FILES["BTCUSDT"])
    if name not in _ROWS:
        with gzip.open(SAMPLE / name, "rt", newline="") as f:
            _ROWS[name] = [r for r in csv.reader(f) if r and r[0].isdigit()]
    return _ROWS[name]


def floor_open(ms: int, interval: str) -> int:
    """Open time of the candle containing ``ms``."""
    if interval == "1M":
        d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        return int(datetime(d.year, d.month, 1, tzinfo=timezone.utc).timestamp() * 1000)
    step = FIXED_MS[interval]
    shift = _WEEK_SHIFT if interval == "1w" else 0
    return (ms - shift) // step * step + shift


def next_open(t: int, interval: str) -> int:
    if interval != "1M":
        return t + FIXED_MS[interval]
    d = datetime.fromtimestamp(t / 1000, tz=timezone.utc)
    return int(datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=timezone.utc).timestamp() * 1000)


def _num(text: str) -> tuple[int, int]:
    text = text or "0"
    whole, _, frac = text.partition(".")
    return int(whole + frac), len(frac)


def _fmt(value: int, scale: int) -> str:
    if not scale:
        return str(value)
    digits = str(value).rjust(scale + 1, "0")
    return f"{digits[:-scale]}.{digits[-scale:]}"


class Series:
    """One ``symbol@kline_interval``: its current candle and the frames it pushes at each tick."""

    def __init__(self, symbol: str, interval: str, now_ms: int) -> None:
        self.symbol, self.interval, self.stream = symbol, interval, f"{symbol.lower()}@kline_{interval}"
        self.rows = rows_for(symbol)
        self._open(floor_open(now_ms, interval))

    def _open(self, t: int) -> None:
        self.t, self.T = t, next_open(t, self.interval) - 1
        k = self._index(t)
        r = self.row = self.rows[k % len(self.rows)]
        scale = max(_num(v)[1] for v in r[1:5])
        self._o, self._c = (_num(r[1])[0] * 10 ** (scale - _num(r[1])[1]), _num(r[4])[0] * 10 ** (scale - _num(r[4])[1]))
        self._scale = scale
        self._vols = [_num(r[i]) for i in (5, 7, 9, 10)]
        self._n = int(r[8] or 0)

    def _index(self, t: int) -> int:
        if self.interval == "1M":
            a, b = datetime.fromtimestamp(START_MS / 1000, tz=timezone.utc), datetime.fromtimestamp(t / 1000, tz=timezone.utc)
            return max(0, (b.year - a.year) * 12 + b.month - a.month)
        return max(0, (t - START_MS) // FIXED_MS[self.interval])

    def rest_row(self) -> list:
        r = self.row
        return [self.t, r[1], r[2], r[3], r[4], r[5], self.T, r[7] or "0", int(r[8] or 0), r[9] or "0", r[10] or "0", "0"]

    def advance(self, now_ms: int, on_close: Callable | None) -> list[bytes]:
        """Frames for this tick: closing events of candles that ended, then the current candle's update."""
        frames = []
        while now_ms > self.T:
            frames.append(self._closing())
            if on_close:
                on_close(self.symbol, self.interval, self.rest_row())
            self._open(self.T + 1)
        frames.append(self.current(now_ms))
        return frames

    def _closing(self) -> bytes:
        r = self.row
        return (_TEMPLATE % (self.T + 1, self.symbol, self.t, self.T, self.symbol, self.interval, r[1], r[4], r[2], r[3],
                             r[5] or "0", int(r[8] or 0), "true", r[7] or "0", r[9] or "0", r[10] or "0")).encode()

    def current(self, now_ms: int) -> bytes:
        """The update frame (``x=false``) of the candle being built at ``now_ms``."""
        num, den = now_ms - self.t, self.T + 1 - self.t
        o, s = self._o, self._scale
        c = o + (self._c - o) * num // den
        v, q, bv, bq = (_fmt(x * num // den, sc) for x, sc in self._vols)
        return (_TEMPLATE % (now_ms, self.symbol, self.t, self.T, self.symbol, self.interval, _fmt(o, s), _fmt(c, s),
                             _fmt(max(o, c), s), _fmt(min(o, c), s), v, self._n * num // den, "false", q, bv, bq)).encode()


class _Client:
    def __init__(self, ws: ServerConnection, streams: list[str], combined: bool) -> None:
        self.ws, self.streams, self.combined = ws, list(dict.fromkeys(streams)), combined
        self.opened = time.monotonic()
        self.incoming: list[float] = []


class StreamServer:
    """The fake market and its websocket endpoint (one asyncio loop). See the module docstring."""

    def __init__(self, *, symbols: tuple[str, ...] | None = None, step_ms: int = 2_000, tick: float = 2.0,
                 start_ms: int = START_MS, on_close: Callable | None = None, ping_interval: float = 20.0,
                 ping_timeout: float = 60.0, max_lifetime: float = 24 * 3600.0, max_streams: int = 1024,
                 max_incoming_per_second: int = 5, max_unsent_bytes: int = 8 * 2**20) -> None:
        self.symbols = set(symbols) if symbols else None  # None: any symbol is valid
        self.step_ms, self.tick, self.now_ms, self.on_close = step_ms, tick, start_ms, on_close
        self.ping_interval, self.ping_timeout, self.max_lifetime = ping_interval, ping_timeout, max_lifetime
        self.max_streams, self.max_incoming, self.max_unsent = max_streams, max_incoming_per_second, max_unsent_bytes
        self.series: dict[str, Series] = {}
        self.closed: dict[tuple[str, str], list[int]] = {}  # open times of the candles that closed, per series
        self.clients: set[_Client] = set()
        self.connections_total = 0
        self.slow_clients_dropped = 0  # connections cut because too much was unsent (a client that does not read)
        self.frozen = False
        self._silent_until = 0.0
        self._refuse_until = 0.0
        self._server = None
        self._ticker: asyncio.Task | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await serve(self._handle, host, port, process_request=self._check_path, compression=None,
                                   ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                                   write_limit=self.max_unsent * 2, max_queue=64)
        self._ticker = asyncio.create_task(self._tick_forever())
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._ticker.cancel()
        self._server.close()
        await self._server.wait_closed()

    def track(self, symbol: str, interval: str) -> Series:
        """Start the market of a series (it then closes candles and reports them even with no subscriber)."""
        stream = f"{symbol.lower()}@kline_{interval}"
        if stream not in self.series:
            self.series[stream] = Series(symbol, interval, self.now_ms)
        return self.series[stream]

    def _closed(self, symbol: str, interval: str, row: list) -> None:
        self.closed.setdefault((symbol, interval), []).append(row[0])
        if self.on_close:
            self.on_close(symbol, interval, [row])

    # --- faults, called on the server's loop ------------------------------------------------
    def drop(self, refuse_for: float = 0.0) -> int:
        """Cut every connection (no close frame); refuse new ones (HTTP 503) for ``refuse_for`` seconds."""
        self._refuse_until = time.monotonic() + refuse_for
        for c in list(self.clients):
            c.ws.transport.abort()
        return len(self.clients)

    async def shutdown(self, grace: float = 0.5) -> None:
        victims = list(self.clients)
        for c in victims:
            ev = {"e": "serverShutdown", "E": self.now_ms}
            frame = {"stream": "!serverShutdown", "data": ev} if c.combined else ev
            await self._send(c, json.dumps(frame, separators=(",", ":")).encode())
        await asyncio.sleep(grace)
        for c in victims:
            await c.ws.close(1001, "server shutdown")

    async def garbage(self, frame: bytes) -> None:
        for c in list(self.clients):
            await c.ws.send(frame, text=True)

    def silence(self, seconds: float) -> None:
        self._silent_until = time.monotonic() + seconds

    # --- the market ------------------------------------------------------------------------
    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.tick  # on a fixed schedule: the work of a tick does not slow the cadence
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self.step(advance=not self.frozen)

    async def step(self, advance: bool = True) -> None:
        """Advance the clock one step and push every subscribed series' frames.

        With ``advance=False`` (a frozen clock) nothing closes, but the current candles are still pushed:
        Binance sends the bar being built at a fixed rate whether or not anything traded (reference 1.4),
        which is also how a client that reconnects learns what it missed.
        """
        if advance:
            self.now_ms += self.step_ms
            out = {stream: s.advance(self.now_ms, self._closed) for stream, s in list(self.series.items())}
        else:
            out = {stream: [s.current(self.now_ms)] for stream, s in list(self.series.items())}
        if time.monotonic() < self._silent_until:
            return
        for c in list(self.clients):
            if self.max_lifetime and time.monotonic() - c.opened > self.max_lifetime:
                c.ws.transport.abort()  # Binance's 24 h cut
                continue
            batch = [b'{"stream":"%s","data":%s}' % (stream.encode(), f) if c.combined else f
                     for stream in c.streams for f in out.get(stream, ())]
            self._send_batch(c, batch)

    def _send_batch(self, c: _Client, frames: list[bytes]) -> None:
        """Frame and write a tick's frames in one go (the fast path of ``ws.send``, for the benchmark's rates)."""
        transport = c.ws.transport
        if not frames or transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.max_unsent:
            transport.abort()  # a client that does not read is dropped, as Binance does
            self.slow_clients_dropped += 1
            return
        try:
            for frame in frames:
                c.ws.protocol.send_text(frame)
        except websockets.InvalidState:
            return
        transport.write(b"".join(d for d in c.ws.protocol.data_to_send() if d))

    async def _send(self, c: _Client, frame: bytes) -> None:
        transport = c.ws.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.max_unsent:
            transport.abort()  # a client that does not read is dropped, as Binance does
            self.slow_clients_dropped += 1
            return
        try:
            await c.ws.send(frame, text=True)
        except websockets.ConnectionClosed:
            pass

    # --- connections ------------------------------------------------------------------------
    def _check_path(self, conn: ServerConnection, request):
        if time.monotonic() < self._refuse_until:
            return conn.respond(503, "Service Unavailable\n")
        try:
            self._parse_path(request.path)
        except ValueError as exc:
            return conn.respond(400, f"{exc}\n")
        return None

    def _parse_path(self, path: str) -> tuple[list[str], bool]:
        url = urlsplit(path)
        if url.path == "/stream":
            streams = [s for s in parse_qs(url.query).get("streams", [""])[0].split("/") if s]
            combined = True
        elif url.path == "/ws" or url.path.startswith("/ws/"):
            streams, combined = [s for s in url.path[4:].split("/") if s], False
        else:
            raise ValueError(f"unknown path {url.path}")
        if len(streams) > self.max_streams:
            raise ValueError(f"too many streams ({len(streams)} > {self.max_streams})")
        bad = [s for s in streams if not self._valid(s)]
        if bad:
            raise ValueError(f"invalid stream(s) {bad}")
        return streams, combined

    def _valid(self, stream: str) -> bool:
        symbol, sep, interval = stream.partition("@kline_")
        return bool(sep) and symbol == symbol.lower() and interval in INTERVALS and (
            self.symbols is None or symbol.upper() in self.symbols)

    async def _handle(self, ws: ServerConnection) -> None:
        streams, combined = self._parse_path(ws.request.path)
        client = _Client(ws, streams, combined)
        for s in streams:
            self._track_stream(s)
        self.clients.add(client)
        self.connections_total += 1
        try:
            async for message in ws:
                await self._on_message(client, message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)

    def _track_stream(self, stream: str) -> None:
        symbol, _, interval = stream.partition("@kline_")
        self.track(symbol.upper(), interval)

    async def _on_message(self, c: _Client, message) -> None:
        now = time.monotonic()
        c.incoming = [t for t in c.incoming if now - t < 1.0] + [now]
        if len(c.incoming) > self.max_incoming:
            await c.ws.close(1008, "Too many requests")  # Binance disconnects past 5 messages/s
            return
        reply = self._control(c, message)
        await c.ws.send(json.dumps(reply, separators=(",", ":")))

    def _control(self, c: _Client, message) -> dict:
        try:
            req = json.loads(message)
        except ValueError:
            return {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}, "id": None}
        method, params, ident = req.get("method"), req.get("params", []), req.get("id")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [s for s in params if not self._valid(s)]
            if bad or (method == "SUBSCRIBE" and len(set(c.streams) | set(params)) > self.max_streams):
                return {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": ident}
            if method == "SUBSCRIBE":
                for s in params:
                    self._track_stream(s)
                c.streams = list(dict.fromkeys(c.streams + params))
            else:
                c.streams = [s for s in c.streams if s not in params]
            return {"result": None, "id": ident}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(c.streams), "id": ident}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not params or params[0] != "combined":
                return {"error": {"code": 0, "msg": "Unknown property"}, "id": ident}
            if method == "GET_PROPERTY":
                return {"result": c.combined, "id": ident}
            if len(params) < 2 or not isinstance(params[1], bool):
                return {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": ident}
            c.combined = params[1]
            return {"result": None, "id": ident}
        return {"error": {"code": 2, "msg": f"Invalid request: unknown variant {method}, expected one of `SUBSCRIBE`, "
                          "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 28"},
                "id": ident}


class FakeStreams:
    """A ``StreamServer`` in a background thread on a free port, with a thread-safe API for tests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kw) -> None:
        self.host, self.port, self._kw = host, port or _free_port(host), kw
        self.server: StreamServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-binance-ws", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> FakeStreams:
        self._thread.start()
        self.server = StreamServer(**self._kw)
        self._call(self.server.start(self.host, self.port))
        return self

    def stop(self) -> None:
        self._call(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FakeStreams:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _run(self, fn, *args):
        return fn(*args)

    def track(self, symbol: str, interval: str) -> None:
        self._call(self._run(self.server.track, symbol, interval))

    def drop(self, refuse_for: float = 0.0) -> int:
        return self._call(self._run(self.server.drop, refuse_for))

    def shutdown(self, grace: float = 0.5) -> None:
        self._call(self.server.shutdown(grace))

    def garbage(self, frame: bytes) -> None:
        self._call(self.server.garbage(frame))

    def silence(self, seconds: float) -> None:
        self._call(self._run(self.server.silence, seconds))

    def freeze(self) -> None:
        self._call(self._run(setattr, self.server, "frozen", True))

    def thaw(self) -> None:
        self._call(self._run(setattr, self.server, "frozen", False))

    def closed(self, symbol: str, interval: str) -> list[int]:
        """Open times of the candles of a series that have closed so far."""
        return self._call(self._run(lambda: list(self.server.closed.get((symbol, interval), []))))

    def now_ms(self) -> int:
        return self.server.now_ms

    def subscriptions(self) -> list[list[str]]:
        """The streams of each open connection."""
        return self._call(self._run(lambda: [list(c.streams) for c in self.server.clients]))

    def clients(self) -> int:
        return self._call(self._run(len, self.server.clients))

    @property
    def connections_total(self) -> int:
        return self.server.connections_total

    @property
    def slow_clients_dropped(self) -> int:
        return self.server.slow_clients_dropped


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def serve_streams(host: str, port: int, **kw) -> None:
    """Serve the fake market streams until cancelled (``python -m tests.fake_binance --ws-port``)."""
    server = StreamServer(**kw)
    await server.start(host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.fake_binance.ws", description="Fake Binance market streams.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9443)
    p.add_argument("--step-ms", type=int, default=2_000, help="market milliseconds per tick (2000: real time)")
    p.add_argument("--tick", type=float, default=2.0, help="wall seconds between pushes (Binance: 2 s)")
    args = p.parse_args(argv)
    print(f"fake binance streams on ws://{args.host}:{args.port}/ws/btcusdt@kline_1m (or /stream?streams=...)", flush=True)
    try:
        asyncio.run(serve_streams(args.host, args.port, step_ms=args.step_ms, tick=args.tick))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
