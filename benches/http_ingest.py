#!/usr/bin/env python3
"""Durable HTTP batch ingest, no subscribers: events/s and hub CPU microseconds per event.

Starts the release binary pinned to core 0 (fresh data dir), posts BATCHES batches of BATCH
events (distinct ids, PHOTOS photo rooms and their owners' user rooms) from WORKERS threads
pinned to core 1, and reads the hub's CPU time from /proc/<pid>/stat before and after.

    cargo build --release && python3 benches/http_ingest.py [BATCHES] [BATCH] [WORKERS]

Environment: PHOTOS (100), the photo rooms; IDS=0 sends the events without `id` (the hub
generates ids, which are not indexed: the baseline for the cost of producer ids); SAMPLE=N prints
the hub's RSS each time another N events have been answered (RSS against events ingested; the peak, VmHWM, is printed at the end);
IDLE=S waits S seconds after the ingest and prints the RSS again (what stays held once the
writer behind the committer and the allocator's decay have caught up); REOPEN=1 also stops the
hub (SIGTERM) after the ingest, starts it again on the same data dir, and reports how long it
took to answer /health and its RSS then (the durable-path issue's "RSS after reopening" row:
`PHOTOS=10000 REOPEN=1 python3 benches/http_ingest.py 1000`).
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "socket-bridge")
SECRET = "bench-secret-0123456789abcdef0123"
PHOTOS = int(os.environ.get("PHOTOS", "100"))
IDS = os.environ.get("IDS", "1") != "0"


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batch_body(n, size):
    events = []
    for i in range(size):
        k = n * size + i
        photo = k % PHOTOS
        event = {
            "type": "photo.uploaded" if k < PHOTOS else "photo.processing.progress",
            "data": {"photoId": f"p{photo}", "userId": f"u{photo % 10}", "progress": k % 100,
                     "note": "x" * 120},
        }
        if IDS:
            event["id"] = f"ev-{k}"
        events.append(event)
    return json.dumps(events).encode()


def main():
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    os.sched_setaffinity(0, {1})
    data = tempfile.mkdtemp(prefix="ingest-bench-")
    port = free_port()
    env = dict(os.environ, JWT_SECRET=SECRET, RUST_LOG="warn")
    def start():
        return subprocess.Popen(["taskset", "-c", "0", BIN, "--listen", f"127.0.0.1:{port}",
                                 "--data-dir", data], env=env)

    hub = start()
    token = subprocess.check_output([BIN, "token", "--user", "bench", "--permission",
                                     "events:publish", "--data-dir", data], env=env).decode().strip()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    bodies = [batch_body(n, size) for n in range(batches)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    todo = list(range(batches))
    lock = threading.Lock()
    failures = []
    sample = int(os.environ.get("SAMPLE", "0"))
    answered = [0]

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            conn.request("POST", "/api/events", body=bodies[n], headers=headers)
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                failures.append(reply.status)
            with lock:
                before, answered[0] = answered[0], answered[0] + size
                if sample and before // sample != answered[0] // sample:
                    print(f"  {answered[0]} events: hub RSS {rss_kib(hub.pid) / 1024:.0f} MiB "
                          f"at {time.monotonic() - t0:.1f} s", flush=True)

    ticks = os.sysconf("SC_CLK_TCK")
    cpu0, t0 = cpu_ticks(hub.pid), time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.monotonic() - t0, (cpu_ticks(hub.pid) - cpu0) / ticks
    events = batches * size
    print(f"http_ingest: {events} events {'with' if IDS else 'without'} ids in {batches} batches of {size}, {workers} workers, "
          f"load avg {os.getloadavg()[0]:.2f}")
    print(f"  {events / elapsed:,.0f} events/s durable; hub CPU {cpu * 1e6 / events:.2f} us/event; "
          f"hub RSS {rss_kib(hub.pid) / 1024:.0f} MiB (peak {rss_kib(hub.pid, 'VmHWM') / 1024:.0f}); "
          f"failures {len(failures)}")
    idle = float(os.environ.get("IDLE", "0"))
    if idle > 0:
        time.sleep(idle)
        print(f"  after {idle:.0f} s idle: hub RSS {rss_kib(hub.pid) / 1024:.0f} MiB")
    hub.terminate()
    hub.wait(timeout=30)
    if os.environ.get("REOPEN") == "1":
        started = time.monotonic()
        hub = start()
        healthy = None
        while time.monotonic() - started < 120 and healthy is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    healthy = time.monotonic() - started
            except OSError:
                time.sleep(0.02)
        du = subprocess.check_output(["du", "-sk", data]).split()[0].decode()
        print(f"  reopen: healthy after {healthy if healthy is None else round(healthy, 2)} s; "
              f"hub RSS {rss_kib(hub.pid) / 1024:.0f} MiB; data dir {int(du) / 1024:.0f} MiB")
        hub.terminate()
        hub.wait(timeout=30)
    subprocess.run(["rm", "-rf", data])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
