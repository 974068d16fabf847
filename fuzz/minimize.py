#!/usr/bin/env python3
"""Shrinks a fuzz corpus to a small set of inputs that still covers every edge.

`cargo fuzz cmin` (libFuzzer's -merge=1) keeps every input that adds any new feature, in
order of size; with edge hit counts as features that is thousands of files per target
here. For a corpus kept in git and replayed by `cargo test`, a greedy set cover over the
coverage edges that merge recorded (its -merge_control_file, `COV <index> <edges...>`
lines) needs fewer: repeatedly take the input that covers the most edges not yet covered
(the smaller one on a tie) and delete the rest. The tail is long (hundreds of inputs that
each add one or two edges), so it stops at MAX_FILES inputs (default 300), which keeps the
great majority of edges; the next fuzz run soon finds the rest again.

Usage: fuzz/minimize.py CONTROL_FILE CORPUS_DIR [MAX_FILES]  (run by scripts/fuzz.sh)
"""

import heapq
import os
import sys


def main(control_file: str, corpus: str, max_files: int) -> None:
    with open(control_file) as f:
        lines = f.read().splitlines()
    count = int(lines[0])
    names = [os.path.basename(p) for p in lines[2 : 2 + count]]
    edges: dict[str, set[int]] = {}
    for line in lines[2 + count :]:
        if line.startswith("COV "):
            _, index, *cov = line.split()
            edges[names[int(index)]] = set(map(int, cov))

    present = {n: os.path.getsize(os.path.join(corpus, n)) for n in os.listdir(corpus)}
    # Inputs the merge did not see (none, normally) are kept.
    keep = {n for n in present if n not in edges}
    covered: set[int] = set()
    heap = [(-len(edges[n]), present[n], n) for n in present if n in edges]
    heapq.heapify(heap)
    while heap and len(keep) < max_files:
        _, size, name = heapq.heappop(heap)
        gain = len(edges[name] - covered)
        if gain == 0:
            continue
        if heap and gain < -heap[0][0]:
            heapq.heappush(heap, (-gain, size, name))  # stale: re-rank lazily
            continue
        keep.add(name)
        covered |= edges[name]

    removed = 0
    for name in present:
        if name not in keep:
            os.remove(os.path.join(corpus, name))
            removed += 1
    total = sum(present[n] for n in keep)
    every = set().union(*(edges[n] for n in present if n in edges))
    print(
        f"{corpus}: kept {len(keep)} of {len(present)} inputs ({total} bytes), "
        f"covering {len(covered)} of {len(every)} edges"
    )


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 300)
