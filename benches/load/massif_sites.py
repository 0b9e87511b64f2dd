#!/usr/bin/env python3
"""Heap per connection by allocation site, from a massif profile of the hub with idle clients.

    massif_sites.py MASSIF_OUT [CONNECTIONS]

Compares two detailed snapshots of `valgrind --tool=massif --detailed-freq=1` output: the last one
before the heap grew by 200 KB over its first non-empty size (the hub started, no clients yet)
and the peak (the clients connected). The heap of each is grouped by the first frame, walking
from the allocator toward the callers, of a crate other than the standard library, tokio and
similar plumbing (so a task's memory is listed under the function that spawned it); the growth
of each group is printed per connection (CONNECTIONS, default 1000), largest first.
"""

import re
import sys
from collections import defaultdict

# Frames of these crates are passed through to their callers.
PLUMBING = {
    "__rustc", "alloc", "core", "std", "tokio", "tokio_util", "hashbrown", "indexmap", "bytes",
    "smallvec", "futures", "futures_util", "futures_core", "tracing", "tracing_core",
    "parking_lot", "lock_api",
}
NODE = re.compile(r"^\s*n(\d+): (\d+) (.*)$")
FRAME = re.compile(r"0x[0-9A-F]+: (.*?)(?: \([^()]*\))?$")
CRATE = re.compile(r"^<?([a-z_0-9]+)::")


def read_tree(lines, i):
    """The heap tree node at line `i` with its children, and the line after them."""
    count, size, rest = NODE.match(lines[i]).groups()
    frame = FRAME.match(rest)
    node = {"bytes": int(size), "fn": frame.group(1) if frame else rest, "children": []}
    i += 1
    for _ in range(int(count)):
        child, i = read_tree(lines, i)
        node["children"].append(child)
    return node, i


def snapshots(path):
    """The detailed snapshots of a massif output file: their heap size and tree."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found, heap, i = [], 0, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("mem_heap_B="):
            heap = int(line.split("=")[1])
        elif line.startswith("heap_tree=detailed") or line.startswith("heap_tree=peak"):
            tree, i = read_tree(lines, i + 1)
            found.append({"heap": heap, "tree": tree})
            continue
        i += 1
    return found


def short(name):
    """A function name without generic arguments or hash."""
    for _ in range(4):
        name = re.sub(r"<[^<>]*>", "", name)
    return re.sub(r"::h[0-9a-f]{16}$", "", name)[:110]


def by_site(tree):
    """Bytes of the tree grouped by the first frame outside the plumbing crates."""
    sites = defaultdict(int)

    def walk(node, depth):
        crate = CRATE.match(node["fn"])
        if depth > 0 and crate and crate.group(1) not in PLUMBING:
            sites[short(node["fn"])] += node["bytes"]
            return
        children = [c for c in node["children"] if not c["fn"].startswith("in ")]
        below = sum(c["bytes"] for c in node["children"] if c["fn"].startswith("in "))
        sites["(sites below the threshold)"] += below
        if not children:
            sites["(plumbing) " + short(node["fn"])] += node["bytes"] - below
            return
        for child in children:
            walk(child, depth + 1)
        rest = node["bytes"] - below - sum(c["bytes"] for c in children)
        if rest > 0:
            sites["(plumbing) " + short(node["fn"])] += rest

    walk(tree, 0)
    return sites


def main():
    path = sys.argv[1]
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    found = [s for s in snapshots(path) if s["heap"] > 0]
    start = found[0]["heap"]
    before = [s for s in found if s["heap"] < start + 200_000][-1]
    peak = max(found, key=lambda s: s["heap"])
    grown = (peak["heap"] - before["heap"]) / connections
    print(f"heap {before['heap']} B before, {peak['heap']} B at the peak: {grown:.0f} B per connection")
    old, new = by_site(before["tree"]), by_site(peak["tree"])
    rows = sorted(((new[k] - old.get(k, 0)) / connections, k) for k in set(old) | set(new))
    for per, site in reversed(rows):
        if abs(per) >= 30:
            print(f"{per:8.0f}  {site}")


if __name__ == "__main__":
    main()
