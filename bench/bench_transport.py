"""Node transport: latency and throughput of zenoh (through the launch hub, as nodes use it) vs a plain local pipe
(``multiprocessing`` socket pair, no serialisation, no routing), for 1 MB images (``sensor_msgs/Image`` as CDR) and
air-ground keyframe messages (~35 kB of bytes). Printed as JSON.

An echo process returns every message; latency is half the round trip (p50 / p90 over ``--count`` sequential
messages); throughput is the rate of a burst of ``--count`` messages sent back to back until all came back.
Usage: python bench/bench_transport.py [--count 50]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time

import numpy as np

from apps.nodes.runtime import RAW, Codec, open_session
from apps.nodes.supervisor import free_tcp_endpoint
from perception.datasets.ros.messages import ImageMsg
from perception.fileio import json_text


def _payloads() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    image = ImageMsg(1, "cam", rng.integers(0, 255, (576, 608, 3), dtype=np.uint8))  # 1.05 MB of pixels
    from perception.geometry import SE3
    from slam.airground.message import KeyframeMessage, encode

    d = rng.normal(size=(500, 64)).astype(np.float32)
    kf = KeyframeMessage(1, 0, 1, SE3.identity(), rng.uniform(0, 500, (500, 2)), d / np.linalg.norm(d, axis=1)[:, None])
    return {"image_1MB": Codec("sensor_msgs/msg/Image", "/img").encode(image), "keyframe": encode(kf, "uint8")}


def _zenoh_echo(endpoint: str, ready) -> None:
    s = open_session([endpoint])
    pub = s.declare_publisher("bench/back")
    s.declare_subscriber("bench/out", lambda smp: pub.put(smp.payload.to_bytes()))
    ready.set()
    time.sleep(3600)


def _pipe_echo(conn) -> None:
    while True:
        conn.send_bytes(conn.recv_bytes())


def _measure(send, wait_one, count: int, payload: bytes) -> dict:
    rtt = []
    for _ in range(count):
        t0 = time.perf_counter()
        send(payload)
        wait_one()
        rtt.append(time.perf_counter() - t0)
    reader = threading.Thread(target=lambda: [wait_one() for _ in range(count)])
    t0 = time.perf_counter()
    reader.start()  # echoes are drained while the burst goes out (a pipe would otherwise fill up)
    for _ in range(count):
        send(payload)
    reader.join()
    dt = time.perf_counter() - t0
    lat = np.array(rtt) / 2 * 1e3
    return {"latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p90": float(np.percentile(lat, 90)),
            "throughput_msgs_per_s": count / dt, "throughput_MB_per_s": count * len(payload) / dt / 1e6,
            "payload_bytes": len(payload)}  # fmt: skip


def bench_zenoh(payloads: dict[str, bytes], count: int) -> dict:
    ep = free_tcp_endpoint()
    hub = open_session(listen=[ep])
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    echo = ctx.Process(target=_zenoh_echo, args=(ep, ready), daemon=True)
    echo.start()
    ready.wait(30)
    s = open_session([ep])
    got = threading.Semaphore(0)
    s.declare_subscriber("bench/back", lambda smp: got.release())
    pub = s.declare_publisher("bench/out")
    time.sleep(1.0)  # routes settle
    def wait_one() -> None:
        if not got.acquire(timeout=10):
            raise TimeoutError("zenoh echo: a message did not come back within 10 s (dropped?)")

    out = {name: _measure(pub.put, wait_one, count, p) for name, p in payloads.items()}
    echo.terminate()
    s.close()
    hub.close()
    return out


def bench_pipe(payloads: dict[str, bytes], count: int) -> dict:
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    echo = ctx.Process(target=_pipe_echo, args=(b,), daemon=True)
    echo.start()
    out = {name: _measure(a.send_bytes, a.recv_bytes, count, p) for name, p in payloads.items()}
    echo.terminate()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50, help="messages per measurement (default: %(default)s)")
    args = ap.parse_args()
    payloads = _payloads()
    print(json_text({"benchmark": "transport", "raw_type": RAW, "zenoh_via_hub": bench_zenoh(payloads, args.count),
                      "local_pipe_baseline": bench_pipe(payloads, args.count)}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
