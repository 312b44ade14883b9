#!/usr/bin/env python3
"""What kept poolbench's worker threads off their CPUs, from `perf sched record`.

Usage: perf script -i sched.data | scripts/lib/sched-waits.py CLIENT_TIDS SERVER_PIDS [MS]
  CLIENT_TIDS    comma-separated thread ids of poolbench, its main thread first
                 (the threads named poolbench-N are the workers)
  SERVER_PIDS    comma-separated pids of the server's processes
  MS             the shortest wait reported (default 0.5)

Each CPU's time is cut at its context switches, and each piece charged to the
task switched in: a task perf records no event of (on the machine this was
written on, the hypervisor agent's thread, at nice -10) is then charged its
own time, where `perf sched timehist` charges it to the task that ran before.
A worker waits from its wake-up (or from being preempted) until it runs.
Prints the CPU time of each kind of task, the worker waits longer than MS and
what ran on the worker's CPU meanwhile, and the tasks perf saw no event of
with their runs longer than MS.
"""

import collections
import re
import sys

LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):(.*)")
NEXT = re.compile(r"next_comm=(.+?) next_pid=(\d+)")
PREV = re.compile(r"prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+)")
WOKEN = re.compile(r"comm=(.+?) pid=(\d+)")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    client = [t for t in sys.argv[1].split(",") if t]
    pb, client = client[0], set(client)
    server = set(filter(None, sys.argv[2].split(",")))
    shortest = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0005

    switches = collections.defaultdict(list)  # cpu -> [(t, comm, tid)]
    seen = set()  # tids perf recorded an event of
    workers = {}  # tid -> name
    waiting = {}  # worker tid -> since
    waits = []  # (tid, cpu, from, to)
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        comm, tid, cpu, t, event, rest = (
            m.group(1).strip(),
            m.group(2),
            int(m.group(3)),
            float(m.group(4)),
            m.group(5),
            m.group(6),
        )
        seen.add(tid)
        if event.startswith("sched:sched_switch"):
            n = NEXT.search(rest)
            p = PREV.search(rest)
            if not n:
                continue
            name, nxt = n.group(1), n.group(2)
            switches[cpu].append((t, name, nxt))
            if re.fullmatch(r"poolbench-\d+", name) and nxt in client:
                workers[nxt] = name
                if nxt in waiting:
                    waits.append((nxt, cpu, waiting.pop(nxt), t))
            if p and p.group(1) in workers and p.group(2).startswith("R"):
                waiting[p.group(1)] = t
        elif event.startswith("sched:sched_waking"):
            w = WOKEN.search(rest)
            if w and w.group(2) in workers and w.group(2) not in waiting:
                waiting[w.group(2)] = t

    def kind(name, tid):
        if tid == "0":
            return "idle"
        if tid in workers:
            return workers[tid]
        if tid in server:
            return "server processes"
        if tid == pb:
            return "poolbench main thread"
        if tid in client:
            return "poolbench, other threads"
        name = re.sub(r"[/:]\d+$", "", name)
        return name if tid in seen else f"{name}[{tid}]{owner(tid)} (no event of its own recorded)"

    pieces = collections.defaultdict(list)  # cpu -> [(from, to, kind)]
    for cpu, sw in switches.items():
        for a, b in zip(sw, sw[1:]):
            pieces[cpu].append((a[0], b[0], kind(a[1], a[2])))
    if not pieces:
        sys.exit("no context switches in the input")
    span = max(s[-1][0] for s in switches.values()) - min(s[0][0] for s in switches.values())
    total = collections.Counter()
    for ps in pieces.values():
        for a, b, k in ps:
            total[k] += b - a
    print(f"  {span:.2f} s on {len(pieces)} CPUs; CPU time (ms): " + ", ".join(
        f"{k} {v * 1000:.0f}" for k, v in total.most_common(12)))
    long = [w for w in waits if w[3] - w[2] > shortest]
    behind = collections.Counter()
    for _, cpu, a, b in long:
        for s0, s1, k in pieces[cpu]:
            if s1 > a and s0 < b:
                behind[k] += min(s1, b) - max(s0, a)
    worst = max((w[3] - w[2] for w in long), default=0)
    print(f"  worker waits for their CPU > {shortest * 1000:g} ms: {len(long)}, "
          f"{sum(w[3] - w[2] for w in long) * 1000:.1f} ms in all, the longest {worst * 1000:.1f} ms; "
          "what ran meanwhile (ms): " + ", ".join(
              f"{k} {v * 1000:.1f}" for k, v in behind.most_common(10)))
    unseen = sorted((s0, s1 - s0, cpu, k) for cpu, ps in pieces.items() for s0, s1, k in ps
                    if k.endswith("recorded)") and s1 - s0 > shortest)
    if unseen:
        print(f"  runs > {shortest * 1000:g} ms of tasks perf recorded no event of: " + ", ".join(
            f"{k.split(' ')[0]} at {s0:.3f} on CPU {cpu} {d * 1000:.1f} ms" for s0, d, cpu, k in unseen))


def owner(tid):
    """ " of PID (COMM), nice N" for a thread still running, else "". """
    try:
        with open(f"/proc/{tid}/stat") as f:
            nice = f.read().rsplit(")", 1)[1].split()[16]
        with open(f"/proc/{tid}/status") as f:
            pid = next(line.split()[1] for line in f if line.startswith("Tgid:"))
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        return f" of {pid} ({comm}), nice {nice}"
    except (OSError, StopIteration, IndexError):
        return ""


if __name__ == "__main__":
    main()
