#!/usr/bin/env python3
"""Soak load generator for bench/soak.sh (Python standard library only).

    soak.py --port P --admin-port A --pid GATEWAY_PID --seconds S \
            --secret ACCESS_SECRET --csv OUT.csv --counts OUT.json [--rate-scale X]

Runs a steady, rate-limited mix of traffic against the gateway on 127.0.0.1:P
for S seconds (every kind has its own fixed rate; nothing runs flat out), and
samples the gateway's /proc/PID/status (VmRSS, Threads), /proc/PID/fd and CPU
time once a second into OUT.csv. Raw HTTP/1.1 over asyncio streams, so that
keep-alive reuse, new connections, malformed requests and aborted connections
are all under our control.

Kinds (rates per second at --rate-scale 1 are in Soak.__init__; ~220/s in all):
  proxied requests with a valid token (keep-alive, new connection, POST with
  a body), the public route, no token (401), garbage tokens (401), unknown or
  bad paths (404/400), wrong methods on the built-in endpoints (405), bad
  JSON to /signin (400/413), bad refresh / sign-out bodies (400/403),
  malformed HTTP on raw sockets (4xx or a closed connection), connections
  the client resets mid-request, slow request heads (408 or closed within
  header_timeout), idle keep-alive connections (closed by the gateway within
  idle_timeout), sign-ups (a bounded number of users in all), failed
  sign-ups (400/409), sign-ins, failed sign-ins (401/429), refresh-token
  rotations, reuse of a rotated refresh token (403, revokes the session) and
  sign-outs (204).

The run fails (exit 1) on any 5xx, on any connection error, timeout or
unexpected status for a well-formed request, on a hang (a slow head or an
idle connection the gateway never closes), and exit 2 if the gateway dies.
Counts per kind and outcome go to stdout and to OUT.json.
"""

import argparse
import asyncio
import base64
import collections
import hashlib
import hmac
import json
import os
import random
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
TIMEOUT = 30.0       # per well-formed exchange; the project's VM stalls for up to ~0.6 s
POOL_MAX_IDLE = 2.0  # pooled keep-alive connections idle longer than this are closed (gateway: 20 s)
POOL_MAX = 8         # idle keep-alive connections kept per kind
HEADER_TIMEOUT = 5.0  # must match limits.header_timeout in soak.sh's config
IDLE_TIMEOUT = 20.0   # must match limits.idle_timeout
SLACK = 15.0          # extra time before a slow head / idle connection counts as a hang


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# ---------------------------------------------------------------- HTTP/1.1


class Conn:
    __slots__ = ("reader", "writer", "last_used")

    def __init__(self, reader, writer):
        self.reader, self.writer, self.last_used = reader, writer, time.monotonic()

    def close(self):
        try:
            self.writer.close()
        except Exception:
            pass

    def reset(self):
        """Close with RST (SO_LINGER 0), as a crashing client would."""
        try:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


async def open_conn(port):
    r, w = await asyncio.open_connection(HOST, port, limit=256 * 1024)
    return Conn(r, w)


class Response:
    __slots__ = ("status", "headers", "body", "keep")


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0]!r}")
    resp = Response()
    resp.status = int(parts[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        v = v.strip()
        hdrs[k] = f"{hdrs[k]}, {v}" if k in hdrs else v
    resp.headers = hdrs
    conn_tokens = {t.strip().lower() for t in hdrs.get("connection", "").split(",")}
    keep = parts[0] == "HTTP/1.1" and "close" not in conn_tokens
    if resp.status in (204, 304) or 100 <= resp.status < 200:
        body = b""
    elif "chunked" in hdrs.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif "content-length" in hdrs:
        body = await reader.readexactly(int(hdrs["content-length"]))
    else:
        body = await reader.read()  # until EOF
        keep = False
    resp.body = body
    resp.keep = keep
    return resp


def build(port, method, path, headers=(), body=None, close=False):
    out = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    out.extend(headers)
    if body is not None:
        out.append(f"Content-Length: {len(body)}")
    if close:
        out.append("Connection: close")
    data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
    return data + body if body else data


# ---------------------------------------------------------------- bookkeeping


class Kind:
    def __init__(self, name, rate, wellformed=True, cap=32, pooled=False):
        self.name, self.rate, self.wellformed, self.cap = name, rate, wellformed, cap
        self.pooled = pooled
        self.pool = []
        self.inflight = 0
        self.counts = collections.Counter()
        self.skipped = 0   # ticks with nothing to do (no session, session or user bound reached)
        self.capped = 0    # ticks dropped because `cap` exchanges were still in flight
        self.lat = []      # seconds per well-formed exchange that got a response
        self.late = 0      # ticks dropped because the event loop fell > 1 s behind


class Stats:
    def __init__(self):
        self.total = 0
        self.problems = collections.Counter()
        self.examples = []

    def problem(self, kind, outcome, detail, t):
        self.problems[(kind.name, outcome)] += 1
        if len(self.examples) < 40:
            self.examples.append(f"t={t:7.1f}s {kind.name}: {outcome} {detail}"[:300])


# ---------------------------------------------------------------- tokens


class Session:
    __slots__ = ("access", "refresh", "prev_refresh", "busy", "inflight", "born", "rotated")

    def __init__(self, access, refresh):
        self.access, self.refresh, self.prev_refresh = access, refresh, None
        self.busy = False
        self.inflight = 0
        self.born = self.rotated = time.monotonic()


class Soak:
    def __init__(self, args):
        self.a = args
        self.port = args.port
        self.stats = Stats()
        self.users = []           # (email, password)
        self.sessions = []        # live sessions proxied requests may use
        self.next_user = 0
        self.t0 = time.monotonic()
        self.tasks = set()
        self.sampler = None
        self.secret = args.secret.encode()
        self.rnd = random.Random(12345)
        s = args.rate_scale
        # name, rate/s, wellformed, cap, pooled (keep-alive)
        k = [
            ("proxy_token_ka", 120 * s, True, 32, True),
            ("proxy_token_new", 10 * s, True, 32, False),
            ("proxy_post_token", 10 * s, True, 32, True),
            ("public_ka", 20 * s, True, 32, True),
            ("no_token", 15 * s, True, 32, True),
            ("garbage_token", 15 * s, True, 32, True),
            ("bad_path", 5 * s, True, 32, True),
            ("wrong_method", 2 * s, True, 32, True),
            ("bad_json", 5 * s, True, 32, True),
            ("identity_bad", 2 * s, True, 32, True),
            ("malformed_raw", 5 * s, False, 32, False),
            ("client_reset", 2 * s, False, 32, False),
            ("slow_head", 0.5 * s, False, 64, False),
            ("idle_keepalive", 0.5 * s, False, 64, False),
            ("signup", 0.0, True, 8, True),  # rate set from the user budget below
            ("signup_bad", 1 * s, True, 8, True),
            ("signin", 3 * s, True, 8, True),
            ("signin_bad", 1 * s, True, 8, True),
            ("refresh", 3 * s, True, 8, True),
            ("refresh_reuse", 0.2 * s, True, 4, True),
            ("signout", 3 * s, True, 8, True),
        ]
        self.kinds = {n: Kind(n, r, w, c, p) for n, r, w, c, p in k}
        if args.kinds:  # a subset, to find which traffic a growth comes with
            want = set(args.kinds.split(","))
            unknown = want - set(self.kinds)
            if unknown:
                raise SystemExit(f"unknown kinds: {', '.join(sorted(unknown))}")
            for kind in self.kinds.values():
                if kind.name not in want and kind.name != "signup":
                    kind.rate = 0.0
            self.signups_spread = "signup" in want
        else:
            self.signups_spread = True

    def now(self):
        return time.monotonic() - self.t0

    # ------------------------------------------------------------ exchanges

    async def exchange(self, kind, req, timeout=TIMEOUT):
        """One well-formed request; returns (outcome, Response or detail)."""
        conn = None
        if kind.pooled:
            now = time.monotonic()
            while kind.pool:
                c = kind.pool.pop()
                if now - c.last_used <= POOL_MAX_IDLE:
                    conn = c
                    break
                c.close()
        reused = conn is not None
        t_start = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                if conn is None:
                    conn = await open_conn(self.port)
                conn.writer.write(req)
                await conn.writer.drain()
                resp = await read_response(conn.reader)
        except TimeoutError:
            if conn:
                conn.close()
            return "timeout", f"no answer within {timeout:.0f}s (reused={reused})"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            if conn:
                conn.close()
            return "conn-error", f"{type(e).__name__}: {e} (reused={reused})"
        kind.lat.append(time.monotonic() - t_start)
        if kind.pooled and resp.keep and len(kind.pool) < POOL_MAX:
            conn.last_used = time.monotonic()
            kind.pool.append(conn)
        else:
            conn.close()
        return str(resp.status), resp

    def record(self, kind, outcome, detail, expected=None):
        """expected: a set of acceptable outcomes ('200', '4xx', 'closed', ...)."""
        kind.counts[outcome] += 1
        self.stats.total += 1
        if self.sampler is not None:
            self.sampler.total_v.value = self.stats.total
        t = self.now()
        cls = outcome[0] + "xx" if outcome[:1].isdigit() else outcome
        if expected is not None and outcome in expected:
            return  # named explicitly (only 505 for an unknown HTTP version is a 5xx so named)
        if outcome[:1] == "5" or (expected is not None and cls not in expected):
            self.stats.problem(kind, outcome, self._detail(detail), t)

    @staticmethod
    def _detail(d):
        if isinstance(d, Response):
            return d.body[:160].decode("utf-8", "replace")
        return str(d)

    async def req(self, kind, method, path, expected, headers=(), body=None, close=False):
        outcome, resp = await self.exchange(
            kind, build(self.port, method, path, headers, body, close or not kind.pooled))
        self.record(kind, outcome, resp, expected)
        return outcome, resp

    # ------------------------------------------------------------ tokens

    def pick_session(self):
        if not self.sessions:
            return None
        s = self.rnd.choice(self.sessions)
        if time.monotonic() - s.rotated > 600:  # access ttl is 15m; refresh keeps them young
            return None
        return s

    def add_session(self, resp):
        try:
            d = json.loads(resp.body)["data"]
            self.sessions.append(Session(d["access_token"], d["refresh_token"]))
            return True
        except (ValueError, KeyError, TypeError):
            return False

    async def retire(self, pred):
        """Take a session out of the pool (nothing new will use it) once idle."""
        cands = [s for s in self.sessions if not s.busy and pred(s)]
        if not cands:
            return None
        s = self.rnd.choice(cands)
        self.sessions.remove(s)
        s.busy = True
        while s.inflight:
            await asyncio.sleep(0.01)
        return s

    def jwt(self, claims, secret=None, alg="HS256"):
        head = b64(json.dumps({"typ": "JWT", "alg": alg}, separators=(",", ":")).encode())
        body = head + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
        if alg == "none":
            return body + "."
        sig = hmac.new(secret or self.secret, body.encode(), hashlib.sha256).digest()
        return body + "." + b64(sig)

    def garbage_token_headers(self):
        r = self.rnd
        now = int(time.time())
        n = r.randrange(1 << 30)
        base = {"sub": f"user-{n}", "email": f"g{n}@example.com", "scope": "", "sid": f"s-{n}",
                "iss": "gateway", "iat": now - 10, "exp": now + 600, "jti": f"j-{n}",
                "token_use": "access"}
        v = r.randrange(12)
        if v == 0:
            t = self.jwt(dict(base, exp=now - 3600, iat=now - 7200))       # expired
        elif v == 1:
            t = self.jwt(dict(base, token_use="refresh"))                   # wrong kind
        elif v == 2:
            t = self.jwt(dict(base, iss="someone-else"))                    # wrong issuer
        elif v == 3:
            t = self.jwt(base, secret=b"not-the-secret-0123456789abcdefgh")  # bad signature
        elif v == 4:
            t = self.jwt(base, alg="none")                                  # alg none
        elif v == 5:
            t = self.jwt(dict(base, nbf=now + 3600))                         # not yet valid
        elif v == 6:
            t = ".".join(b64(os.urandom(r.randrange(8, 64))) for _ in range(3))  # junk
        elif v == 7:
            t = "x" * r.randrange(4097, 6000)                               # over 4 KiB
        elif v == 8:
            t = f"tok<en>!{n}"                                              # not JWT characters
        elif v == 9:
            return [f"Authorization: Basic {b64(os.urandom(12))}"]          # other scheme
        elif v == 10:
            return ["Authorization: Bearer "]                               # empty token
        else:
            s = self.pick_session()                                         # two headers
            tok = s.access if s else self.jwt(base)
            return [f"Authorization: Bearer {tok}", f"Authorization: Bearer {tok}"]
        return [f"Authorization: Bearer {t}"]

    # ------------------------------------------------------------ kinds

    async def k_proxy_token(self, kind, method="GET", body=None):
        s = self.pick_session()
        if s is None:
            kind.skipped += 1
            return
        s.inflight += 1
        try:
            await self.req(kind, method, "/api/bench", {"200"},
                           [f"Authorization: Bearer {s.access}"], body)
        finally:
            s.inflight -= 1

    async def k_proxy_token_ka(self, kind):
        await self.k_proxy_token(kind)

    async def k_proxy_token_new(self, kind):
        await self.k_proxy_token(kind)

    async def k_proxy_post_token(self, kind):
        await self.k_proxy_token(kind, "POST", os.urandom(2048).hex().encode())  # 4 KiB

    async def k_public_ka(self, kind):
        await self.req(kind, "GET", f"/bench?q={self.rnd.randrange(1000)}", {"200"})

    async def k_no_token(self, kind):
        await self.req(kind, "GET", "/api/bench", {"401"})

    async def k_garbage_token(self, kind):
        await self.req(kind, "GET", "/api/bench", {"401"}, self.garbage_token_headers())

    async def k_bad_path(self, kind):
        n = self.rnd.randrange(1 << 20)
        path, exp = self.rnd.choice([
            (f"/nope/{n}", {"404"}),
            (f"/api/bench/extra/{n}", {"404"}),
            (f"/a%2Fb/{n}", {"400"}),
            (f"/../../{n}", {"400"}),
            (f"/x%zz/{n}", {"400"}),
        ])
        await self.req(kind, "GET", path, exp)

    async def k_wrong_method(self, kind):
        m, p = self.rnd.choice([("GET", "/signin"), ("DELETE", "/signup"), ("PUT", "/refresh-token"),
                                ("GET", "/signout")])
        await self.req(kind, m, p, {"405"})

    async def k_bad_json(self, kind):
        body, exp = self.rnd.choice([
            (b"{", {"400"}), (b"null", {"400"}), (b"[]", {"400"}), (b"", {"400"}),
            (b"not json at all", {"400"}), (b'{"email":1,"password":2}', {"400"}),
            (b'{"email":"a@example.com"}', {"400"}), (b'{"email":"a@example.com","password":""}', {"400"}),
            (b'{"pad":"' + b"a" * 70000 + b'"}', {"413"}),
        ])
        # Over 64 KiB: sent with Connection: close, because the gateway closes the
        # connection after its 413 without announcing it (no Connection: close),
        # so a keep-alive client's next request on it fails.
        await self.req(kind, "POST", "/signin", exp, ["Content-Type: application/json"], body,
                       close=len(body) > 65536)

    async def k_identity_bad(self, kind):
        s = self.pick_session()
        access = s.access if s else "x"
        path = self.rnd.choice(["/refresh-token", "/signout"])
        body, exp = self.rnd.choice([
            (json.dumps({"refreshToken": "garbage." + b64(os.urandom(16))}), {"403"}),
            (json.dumps({"refreshToken": access}), {"403"}),  # an access token is no refresh token
            (json.dumps({"refreshToken": self.jwt({"token_use": "refresh", "sid": "x"})}), {"403"}),
            ("{}", {"400"}), ("{", {"400"}),
        ])
        await self.req(kind, "POST", path, exp, (), body.encode())

    async def raw(self, kind, data, expected, then_read=True, wait=TIMEOUT):
        """Raw bytes on a new connection: outcome is the status, 'closed' when the
        gateway closes without a response, 'hang' when nothing happens."""
        conn = None
        try:
            conn = await asyncio.wait_for(open_conn(self.port), TIMEOUT)
            conn.writer.write(data)
            await conn.writer.drain()
        except (OSError, TimeoutError) as e:
            if conn:
                conn.close()
            # a reset while writing is the gateway refusing the rest: fine for garbage
            outcome = "closed" if isinstance(e, (ConnectionResetError, BrokenPipeError)) else "conn-error"
            self.record(kind, outcome, repr(e), expected)
            return
        if not then_read:
            conn.reset()
            self.record(kind, "aborted", "", expected)
            return
        try:
            async with asyncio.timeout(wait):
                resp = await read_response(conn.reader)
            outcome, detail = str(resp.status), resp
        except TimeoutError:
            outcome, detail = "hang", f"no response and no close within {wait:.0f}s"
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as e:
            outcome, detail = "closed", repr(e)
        except (OSError, ValueError, asyncio.LimitOverrunError) as e:
            outcome, detail = "conn-error", repr(e)
        conn.close()
        self.record(kind, outcome, detail, expected)

    async def k_malformed_raw(self, kind):
        r = self.rnd
        p = self.port
        v = r.randrange(9)
        if v == 0:
            data = b"GARBAGE\r\n\r\n"
        elif v == 1:
            data = f"GET /bench HTTP/1.1\r\nHost: {HOST}:{p}\r\nBad Header Line\r\n\r\n".encode()
        elif v == 2:  # conflicting framing (smuggling attempt)
            data = (f"POST /bench HTTP/1.1\r\nHost: {HOST}:{p}\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode()
        elif v == 3:  # a 70 KiB head
            data = f"GET /bench HTTP/1.1\r\nHost: {HOST}:{p}\r\nX-Big: {'a' * 70000}\r\n\r\n".encode()
        elif v == 4:
            data = bytes(r.randrange(256) for _ in range(200)) + b"\r\n\r\n"
        elif v == 5:  # a 70 KiB request line
            data = f"GET /{'a' * 70000} HTTP/1.1\r\nHost: {HOST}:{p}\r\n\r\n".encode()
        elif v == 6:  # 505 HTTP Version Not Supported is the right answer here
            data = f"GET /bench HTTP/9.9\r\nHost: {HOST}:{p}\r\n\r\n".encode()
            await self.raw(kind, data, {"4xx", "closed", "505"})
            return
        elif v == 7:  # a broken chunked body on the public route
            data = (f"POST /bench HTTP/1.1\r\nHost: {HOST}:{p}\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "zz\r\nhello\r\n0\r\n\r\n").encode()
        else:  # bad Content-Length
            data = f"POST /bench HTTP/1.1\r\nHost: {HOST}:{p}\r\nContent-Length: abc\r\n\r\n".encode()
        await self.raw(kind, data, {"4xx", "closed"})

    async def k_client_reset(self, kind):
        """The client sends (part of) a request and resets the connection at once."""
        s = self.pick_session()
        auth = f"Authorization: Bearer {s.access}\r\n" if s else ""
        p = self.port
        v = self.rnd.randrange(3)
        if v == 0:
            data = f"GET /bench HTTP/1.1\r\nHo".encode()
        elif v == 1:
            data = f"GET /api/bench HTTP/1.1\r\nHost: {HOST}:{p}\r\n{auth}\r\n".encode()
        else:  # a body announced as 100 KB, 1 KB sent
            data = (f"POST /api/bench HTTP/1.1\r\nHost: {HOST}:{p}\r\n{auth}"
                    "Content-Length: 100000\r\n\r\n").encode() + b"a" * 1000
        await self.raw(kind, data, {"aborted", "closed"}, then_read=False)

    async def k_slow_head(self, kind):
        data = f"GET /bench HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nX-Slow: 1\r\n".encode()
        await self.raw(kind, data, {"408", "closed"}, wait=HEADER_TIMEOUT + SLACK)

    async def k_idle_keepalive(self, kind):
        """One request, then the connection is left idle: the gateway must close it."""
        try:
            conn = await asyncio.wait_for(open_conn(self.port), TIMEOUT)
            conn.writer.write(build(self.port, "GET", "/bench"))
            await conn.writer.drain()
            async with asyncio.timeout(TIMEOUT):
                resp = await read_response(conn.reader)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            self.record(kind, "conn-error", repr(e), set())
            return
        if resp.status != 200:
            conn.close()
            self.record(kind, str(resp.status), resp, {"200+closed"})
            return
        try:
            async with asyncio.timeout(IDLE_TIMEOUT + SLACK):
                extra = await conn.reader.read(1)
            outcome = "200+closed" if extra == b"" else "200+junk"
            detail = extra
        except TimeoutError:
            outcome, detail = "200+hang", f"idle connection still open after {IDLE_TIMEOUT + SLACK:.0f}s"
        except (ConnectionResetError, BrokenPipeError):
            outcome, detail = "200+closed", "reset"
        conn.close()
        self.record(kind, outcome, detail, {"200+closed"})

    def new_user(self):
        i = self.next_user
        self.next_user += 1
        return f"soak{i}@example.com", f"soak-Pa55word-{i}-{self.rnd.randrange(10**6)}"

    async def k_signup(self, kind):
        if self.next_user >= self.a.users:
            kind.skipped += 1
            return
        email, pw = self.new_user()
        body = json.dumps({"email": email, "password": pw, "firstName": "Soak", "lastName": "User"})
        outcome, resp = await self.req(kind, "POST", "/signup", {"201"},
                                       ["Content-Type: application/json"], body.encode())
        if outcome == "201":
            self.users.append((email, pw))
            if len(self.sessions) < self.a.max_sessions:
                self.add_session(resp)

    async def k_signup_bad(self, kind):
        v = self.rnd.randrange(3)
        if v == 0 and self.users:
            email, _ = self.rnd.choice(self.users)
            body, exp = {"email": email, "password": "another-Pa55word-9", "firstName": "A",
                         "lastName": "B"}, {"409"}
        elif v == 1:
            body, exp = {"email": f"weak{self.rnd.randrange(10**6)}@example.com", "password": "password",
                         "firstName": "A", "lastName": "B"}, {"400"}
        else:
            body, exp = {"email": "not-an-email", "password": "fine-Pa55word-1", "firstName": "A",
                         "lastName": "B"}, {"400"}
        await self.req(kind, "POST", "/signup", exp, (), json.dumps(body).encode())

    async def k_signin(self, kind):
        if not self.users or len(self.sessions) >= self.a.max_sessions:
            kind.skipped += 1
            return
        email, pw = self.rnd.choice(self.users)
        outcome, resp = await self.req(kind, "POST", "/signin", {"200"}, (),
                                       json.dumps({"email": email, "password": pw}).encode())
        if outcome == "200" and not self.add_session(resp):
            self.stats.problem(kind, "bad-body", self._detail(resp), self.now())

    async def k_signin_bad(self, kind):
        # 10 unknown emails at 1/s: ~6 attempts per email per minute against a
        # limit of 5 per minute, so both 401 and 429 occur.
        email = f"nobody{self.rnd.randrange(10)}@example.com"
        await self.req(kind, "POST", "/signin", {"401", "429"}, (),
                       json.dumps({"email": email, "password": "wrong-Pa55word"}).encode())

    async def k_refresh(self, kind):
        cands = [s for s in self.sessions if not s.busy]
        if not cands:
            kind.skipped += 1
            return
        s = min(cands, key=lambda x: x.rotated)  # the least recently rotated first
        s.busy = True
        try:
            outcome, resp = await self.req(kind, "POST", "/refresh-token", {"200"}, (),
                                           json.dumps({"refreshToken": s.refresh}).encode())
            if outcome == "200":
                try:
                    d = json.loads(resp.body)["data"]
                    s.prev_refresh, s.refresh, s.access = s.refresh, d["refresh_token"], d["access_token"]
                    s.rotated = time.monotonic()
                except (ValueError, KeyError, TypeError):
                    self.stats.problem(kind, "bad-body", self._detail(resp), self.now())
                    if s in self.sessions:
                        self.sessions.remove(s)
            elif s in self.sessions:
                self.sessions.remove(s)
        finally:
            s.busy = False

    async def k_refresh_reuse(self, kind):
        """Present a rotated-out refresh token: 403, and the session is revoked."""
        if len(self.sessions) < 20:
            kind.skipped += 1
            return
        s = await self.retire(lambda x: x.prev_refresh is not None)
        if s is None:
            kind.skipped += 1
            return
        await self.req(kind, "POST", "/refresh-token", {"403"}, (),
                       json.dumps({"refreshToken": s.prev_refresh}).encode())

    async def k_signout(self, kind):
        if len(self.sessions) < 20:  # keep a pool for the proxied kinds
            kind.skipped += 1
            return
        s = await self.retire(lambda x: True)
        if s is None:
            kind.skipped += 1
            return
        await self.req(kind, "POST", "/signout", {"204"}, (),
                       json.dumps({"refreshToken": s.refresh}).encode())

    # ------------------------------------------------------------ scheduling

    async def pruner(self, end):
        """Closes pooled keep-alive connections idle for POOL_MAX_IDLE, so that the
        gateway's fd count follows the load's concurrency, not old bursts."""
        while asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for k in self.kinds.values():
                keep = [c for c in k.pool if now - c.last_used <= POOL_MAX_IDLE]
                for c in k.pool:
                    if now - c.last_used > POOL_MAX_IDLE:
                        c.close()
                k.pool[:] = keep

    def spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def guarded(self, kind, fn):
        kind.inflight += 1
        try:
            await fn(kind)
        except Exception as e:  # a bug in this script, not the gateway: still reported
            self.stats.problem(kind, "script-error", repr(e), self.now())
        finally:
            kind.inflight -= 1

    async def ticker(self, kind, end):
        if kind.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        fn = getattr(self, "k_" + kind.name)
        interval = 1.0 / kind.rate
        t = loop.time() + self.rnd.random() * interval
        while t < end:
            now = loop.time()
            if t > now:
                await asyncio.sleep(t - now)
            if kind.inflight >= kind.cap:
                kind.capped += 1
            else:
                self.spawn(self.guarded(kind, fn))
            t += interval
            behind = loop.time() - t
            if behind > 1.0:  # a host stall: drop the backlog instead of bursting
                kind.late += int(behind / interval)
                t = loop.time()

    async def main(self):
        loop = asyncio.get_running_loop()
        end = loop.time() + self.a.seconds
        # Set-up: the first users (each sign-up also yields a session).
        signup = self.kinds["signup"]
        for _ in range(min(self.a.initial_users, self.a.users)):
            await self.guarded(signup, self.k_signup)
        if len(self.sessions) == 0:
            self.stats.problem(signup, "no-sessions", "set-up sign-ups failed", self.now())
            return
        # The rest of the user budget is spread over the run.
        left = self.a.users - self.next_user
        if self.signups_spread:
            signup.rate = left / max(1.0, end - loop.time()) if left > 0 else 0
        tickers = [asyncio.ensure_future(self.ticker(k, end)) for k in self.kinds.values()]
        tickers.append(asyncio.ensure_future(self.pruner(end)))
        await asyncio.gather(*tickers)
        self.load_end = self.now()
        if self.sampler is not None:
            self.sampler.set_phase("drain")
        for k in self.kinds.values():  # idle keep-alive connections: closed now
            while k.pool:
                k.pool.pop().close()
        # Drain: exchanges in flight finish (slow heads and idle connections
        # take up to header/idle timeout + slack).
        deadline = loop.time() + IDLE_TIMEOUT + SLACK + TIMEOUT
        while self.tasks and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for t in list(self.tasks):
            t.cancel()
        for k in self.kinds.values():
            while k.pool:
                k.pool.pop().close()
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- sampling


def tcp_table():
    """inode -> (local port, remote port, state hex) for every TCP socket."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        for line in data.decode("ascii", "replace").splitlines()[1:]:
            v = line.split()
            if len(v) > 9 and v[9] != "0":
                out[v[9]] = (int(v[1].rsplit(":", 1)[1], 16), int(v[2].rsplit(":", 1)[1], 16), v[3])
    return out


def classify_fds(pid, port, upstream_port):
    """(client, upstream, other, half_dead) among the gateway's fds:
    client = TCP connections accepted on its listener; upstream = TCP
    connections to the upstream; other = everything else (listeners, epoll,
    eventfds, timers, the store and key files, pipes); half_dead = sockets in
    CLOSE_WAIT (the peer closed, the gateway has not) or no longer in
    /proc/net/tcp at all (reset or closed by the kernel, fd still held):
    how leaked connections look. Client and upstream sockets in CLOSE_WAIT
    count in their class and in half_dead."""
    d = f"/proc/{pid}/fd"
    targets = []
    for name in os.listdir(d):
        try:
            targets.append(os.readlink(f"{d}/{name}"))
        except OSError:
            pass  # closed meanwhile
    table = tcp_table()  # after the fds: a socket listed there existed before this read
    client = upstream = other = half_dead = 0
    for target in targets:
        if not target.startswith("socket:["):
            other += 1
            continue
        sock = table.get(target[8:-1])
        if sock is None:  # not TCP (unix, netlink), or TCP and no longer in the table
            half_dead += 1
            continue
        lport, rport, st = sock
        if st == "08":
            half_dead += 1
        if lport == port and st != "0A":
            client += 1
        elif upstream_port and rport == upstream_port:
            upstream += 1
        else:
            other += 1
    return client, upstream, other, half_dead


def read_proc(pid):
    """(rss_kib, threads, fds, cpu_seconds) of PID, or None when it is gone."""
    try:
        rss = threads = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith("State:") and line.split()[1] in ("Z", "X"):
                    return None
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        return rss, threads, fds, cpu
    except (OSError, ValueError, IndexError):
        return None


PHASES = ["load", "drain", "after"]


class Sampler:
    """Once a second: time_s, rss_kib, fds, requests_total, threads,
    gateway_cpu_pct, load_cpu_pct, store_kib (disk blocks of the redb file),
    fd_client, fd_upstream, fd_other, half_dead (see classify_fds), phase.
    A separate process (forked before the event loop starts), so that neither
    the cadence nor the fd classification waits for the load's GIL; the
    request count and the phase are shared values."""

    def __init__(self, pid, path, soak, store=None, upstream_port=0):
        import multiprocessing as mp
        self.pid, self.path, self.store, self.upstream_port = pid, path, store, upstream_port
        self.t0, self.port, self.load_pid = soak.t0, soak.port, os.getpid()
        self.total_v = mp.Value("q", 0, lock=False)
        self.phase_v = mp.Value("i", 0, lock=False)
        self.dead_v = mp.Value("i", 0, lock=False)
        self.stop_ev = mp.Event()
        self.proc = mp.get_context("fork").Process(target=self.run, daemon=True)

    def start(self):
        self.proc.start()

    @property
    def dead(self):
        return bool(self.dead_v.value)

    def set_phase(self, name):
        self.phase_v.value = PHASES.index(name)

    def stop_and_join(self):
        self.stop_ev.set()
        self.proc.join(10)

    def run(self):
        with open(self.path, "w") as f:
            f.write("time_s,rss_kib,fds,requests_total,threads,gateway_cpu_pct,load_cpu_pct,store_kib,"
                    "fd_client,fd_upstream,fd_other,half_dead,phase\n")
            t0 = self.t0
            prev = None
            tick = 0
            while True:
                now = time.monotonic()
                s = read_proc(self.pid)
                me = read_proc(self.load_pid)
                mine = me[3] if me else 0.0
                phase = PHASES[self.phase_v.value]
                total = self.total_v.value
                if s is None:
                    self.dead_v.value = 1
                    f.write(f"{now - t0:.2f},,,{total},,,,,,,,,{phase}\n")
                    f.flush()
                    return
                rss, threads, fds, cpu = s
                if prev:
                    dt = now - prev[0]
                    gw_pct = 100.0 * (cpu - prev[1]) / dt
                    load_pct = 100.0 * (mine - prev[2]) / dt
                else:
                    gw_pct = load_pct = 0.0
                prev = (now, cpu, mine)
                try:
                    store_kib = os.stat(self.store).st_blocks // 2 if self.store else ""
                except OSError:
                    store_kib = ""
                try:
                    cls = ",".join(map(str, classify_fds(self.pid, self.port, self.upstream_port)))
                except OSError:
                    cls = ",,,"
                f.write(f"{now - t0:.2f},{rss},{fds},{total},{threads},"
                        f"{gw_pct:.1f},{load_pct:.1f},{store_kib},{cls},{phase}\n")
                f.flush()
                if self.stop_ev.is_set():
                    return
                tick += 1
                self.stop_ev.wait(max(0.0, t0 + tick - time.monotonic()))


# ---------------------------------------------------------------- report


def report(soak, sampler, args):
    lines = []
    total_problems = sum(soak.stats.problems.values())
    lines.append(f"{'kind':<18} {'wellformed':<10} {'rate/s':>7} {'responses':>10} "
                 f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  outcomes")
    for k in soak.kinds.values():
        n = sum(k.counts.values())
        outs = "  ".join(f"{o}:{c}" for o, c in sorted(k.counts.items()))
        extra = []
        if k.skipped:
            extra.append(f"skipped:{k.skipped}")
        if k.capped:
            extra.append(f"capped:{k.capped}")
        if k.late:
            extra.append(f"late:{k.late}")
        lat = sorted(k.lat)
        q = (lambda f: f"{1000 * lat[min(len(lat) - 1, int(f * len(lat)))]:7.1f}") if lat else (lambda f: f"{'-':>7}")
        lines.append(f"{k.name:<18} {'yes' if k.wellformed else 'no':<10} {k.rate:>7.2f} {n:>10} "
                     f"{q(0.5)} {q(0.99)} {q(1.0)}  {outs}"
                     + (f"  ({', '.join(extra)})" if extra else ""))
    classes = collections.Counter()
    for k in soak.kinds.values():
        for o, c in k.counts.items():
            classes[o[0] + "xx" if o[:1].isdigit() else o] += c
    lines.append(f"{'all':<18} {'':<10} {'':>7} {soak.stats.total:>10} {'':>7} {'':>7} {'':>7}  "
                 + "  ".join(f"{o}:{c}" for o, c in sorted(classes.items())))
    lines.append("")
    lines.append("outcomes: an HTTP status; closed = the gateway closed the connection without a "
                 "response (accepted for malformed requests and slow heads); aborted = the client "
                 "reset the connection on purpose; 200+closed = an idle keep-alive connection the "
                 "gateway closed after its idle timeout; skipped = nothing to do at that tick (no "
                 "session, session pool full, user budget spent); capped = tick dropped because the "
                 "kind's in-flight cap was reached (the gateway or the machine was slow); late = ticks "
                 "dropped after an event-loop stall. Latency: well-formed exchanges, from the write "
                 "of the request (connect included for a new connection) to the end of the response.")
    lines.append(f"load: {soak.load_end:.0f} s, {soak.stats.total} responses/outcomes, "
                 f"{soak.stats.total / max(1, soak.load_end):.0f}/s; users signed up: {len(soak.users)}; "
                 f"live sessions at the end: {len(soak.sessions)}")
    if total_problems:
        lines.append(f"PROBLEMS: {total_problems}")
        for (kn, o), c in sorted(soak.stats.problems.items()):
            lines.append(f"  {kn}: {o} x{c}")
        lines.append("first examples:")
        lines.extend("  " + e for e in soak.stats.examples)
    else:
        lines.append("problems: none (no 5xx, no connection error or unexpected status on a "
                     "well-formed request, no hang)")
    if sampler.dead:
        lines.append("THE GATEWAY DIED during the run")
    print("\n".join(lines))
    with open(args.counts, "w") as f:
        json.dump({
            "seconds": soak.load_end,
            "total": soak.stats.total,
            "kinds": {k.name: {"rate": k.rate, "wellformed": k.wellformed, "counts": dict(k.counts),
                               "skipped": k.skipped, "capped": k.capped, "late": k.late} for k in soak.kinds.values()},
            "problems": [{"kind": kn, "outcome": o, "count": c}
                         for (kn, o), c in soak.stats.problems.items()],
            "examples": soak.stats.examples,
            "gateway_died": sampler.dead,
        }, f, indent=1)
    if sampler.dead:
        return 2
    return 1 if total_problems else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--secret", required=True, help="the access-token secret (for crafted bad tokens)")
    p.add_argument("--csv", required=True)
    p.add_argument("--counts", required=True)
    p.add_argument("--rate-scale", type=float, default=1.0)
    p.add_argument("--store", help="the gateway's store file, whose size is sampled too")
    p.add_argument("--upstream-port", type=int, default=0,
                   help="to tell the gateway's upstream sockets from the others")
    p.add_argument("--kinds", default="", help="comma-separated kinds to run (default: all); "
                   "the set-up sign-ups always run")
    p.add_argument("--users", type=int, default=300, help="sign-ups in all")
    p.add_argument("--initial-users", type=int, default=20)
    p.add_argument("--max-sessions", type=int, default=200)
    p.add_argument("--after", type=float, default=IDLE_TIMEOUT + 5,
                   help="seconds sampled after the load, with every client connection closed")
    args = p.parse_args()

    soak = Soak(args)
    sampler = Sampler(args.pid, args.csv, soak, args.store, args.upstream_port)
    soak.sampler = sampler
    sampler.start()
    try:
        asyncio.run(soak.main())
    except KeyboardInterrupt:
        pass
    if not hasattr(soak, "load_end"):
        soak.load_end = soak.now()
    # Idle after the load: every client connection is closed; the fds should
    # fall back to the start-up level once the upstream pool idles out too.
    sampler.set_phase("after")
    end = time.monotonic() + args.after
    while time.monotonic() < end and not sampler.dead:
        time.sleep(0.2)
    sampler.stop_and_join()
    return report(soak, sampler, args)


if __name__ == "__main__":
    sys.exit(main())
