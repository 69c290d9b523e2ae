"""grpcio (grpc-core, another gRPC implementation than the tonic the e2e tests
use) through a running gateway: a server on a free port, then calls through
the gateway. Run by scripts/grpcio-check, which starts the gateway with
routes /py.Echo/* (auth: none) and /pysecure.Echo/* (auth: required) to
the port this prints first. Messages are raw bytes (no protoc)."""

import sys
import time
from concurrent import futures

import grpc


def serve():
    def unary(req, ctx):
        meta = dict(ctx.invocation_metadata())
        if req == b"fail":
            ctx.set_trailing_metadata([("x-why", "because")])
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        ctx.send_initial_metadata([("x-server-meta", "world")])
        ctx.set_trailing_metadata([("x-trailer", "t1")])
        return req + b" meta=" + meta.get("x-client-meta", "-").encode()

    def count(req, ctx):
        for i in range(int(req)):
            yield str(i).encode()

    def upload(reqs, ctx):
        return str(sum(len(r) for r in reqs)).encode()

    def bidi(reqs, ctx):
        for r in reqs:
            yield r[::-1]

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Upload": grpc.stream_unary_rpc_method_handler(upload),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    for service in ("py.Echo", "pysecure.Echo"):
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def check(gateway):
    failures = []

    def expect(what, ok):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    ch = grpc.insecure_channel(gateway)
    grpc.channel_ready_future(ch).result(timeout=10)
    call = ch.unary_unary("/py.Echo/Unary")
    # grpc-core refuses a call without `TE: trailers` ("Missing :te header"),
    # so any answer at all shows the gateway forwarded it.
    res, info = call.with_call(b"hi", metadata=[("x-client-meta", "hello")], timeout=10)
    expect(f"unary answer {res!r}", res == b"hi meta=hello")
    expect("initial metadata back", ("x-server-meta", "world") in info.initial_metadata())
    expect("custom trailer back", ("x-trailer", "t1") in info.trailing_metadata())
    try:
        call(b"fail", timeout=10)
        expect("upstream error status", False)
    except grpc.RpcError as e:
        expect(f"upstream error status {e.code()} {e.details()!r}",
               e.code() == grpc.StatusCode.NOT_FOUND and e.details() == "no such thing"
               and ("x-why", "because") in e.trailing_metadata())
    got = list(ch.unary_stream("/py.Echo/Count")(b"1000", timeout=30))
    expect(f"server streaming: {len(got)} messages", got == [str(i).encode() for i in range(1000)])
    total = ch.stream_unary("/py.Echo/Upload")(iter([b"x" * 1024] * 100), timeout=30)
    expect(f"client streaming: {total!r}", total == b"102400")
    back = list(ch.stream_stream("/py.Echo/Bidi")(iter([b"abc", b"def"] * 25), timeout=30))
    expect(f"bidirectional: {len(back)} messages", back == [b"cba", b"fed"] * 25)
    pool = futures.ThreadPoolExecutor(max_workers=50)
    many = list(pool.map(lambda i: call(str(i).encode(), timeout=30), range(200)))
    expect("200 concurrent calls", all(m.startswith(str(i).encode() + b" ") for i, m in enumerate(many)))
    try:
        ch.unary_unary("/pysecure.Echo/Unary")(b"x", timeout=10)
        expect("no token refused", False)
    except grpc.RpcError as e:
        expect(f"no token: {e.code()} {e.details()!r}",
               e.code() == grpc.StatusCode.UNAUTHENTICATED
               and e.details() == "this route requires a bearer token")
    try:
        ch.unary_unary("/nowhere.Svc/Call")(b"x", timeout=10)
        expect("no route refused", False)
    except grpc.RpcError as e:
        expect(f"no route: {e.code()}", e.code() == grpc.StatusCode.UNIMPLEMENTED)
    return failures


def main():
    if sys.argv[1] == "serve":
        server, port = serve()
        print(port, flush=True)
        while True:
            time.sleep(3600)
    failures = check(sys.argv[2])
    print(f"grpcio: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
