"""CPU time of a service's whole process tree, grouped by what each process is.

On a machine that other work shares, statements per second moves with the
load; the CPU seconds the service's own processes spent per statement do not
(much).  ``ServiceCpu(pid).sample()`` reads user + system time of ``pid`` and
of every process below it from ``/proc`` (Linux), grouped as:

* ``http workers``: ``lrs serve`` processes that serve HTTP (the workers of
  ``LRS_HTTP_WORKERS`` > 1, or the single ``lrs serve`` that does everything);
* ``supervisor``: the ``lrs serve`` that only starts and watches the workers;
* ``relay``, ``projection``: ``lrs relay``, ``lrs project``;
* ``postgresql``: the postmaster and its backends;
* ``nats-server``.

A process that exits between two samples loses its time, unless ``ended``
counts what its parent waited for (PostgreSQL backends that a pool replaced
and autovacuum workers: on a running service 2.2 s of 15.5 s of PostgreSQL's
CPU; ``bench/ingest.py --count-ended-backends`` records both).  The difference of two
samples, divided by the statements stored in between, is the CPU per
statement of each group.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _cpu_s(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of ``pid``."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK  # utime, stime


def _ended_children_cpu_s(pid: int) -> float:
    """CPU seconds of the children ``pid`` has waited for (cutime + cstime)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[13]) + int(fields[14])) / _TICK


def cpu_s(*pids: int) -> float:
    """User + system CPU seconds of ``pids`` themselves (one that has gone counts 0)."""
    return sum(sum(seconds) for pid in pids if (seconds := _cpu_s(pid)) is not None)


def _descendants(root: int, tree: dict[int, list[int]]) -> list[int]:
    """``root`` and every process below it in ``tree`` (of :func:`_children`)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(tree.get(pid, ()))
    return pids


def tree_cpu_s(*roots: int, ended: bool = False) -> float:
    """User + system CPU seconds of ``roots`` and every process below them
    (for a postmaster: PostgreSQL's whole CPU).  With ``ended``, also of the
    processes below them that have ended and been waited for (PostgreSQL
    backends of closed connections, restarted workers), which otherwise lose
    their time between two readings."""
    tree = _children()
    pids = list(dict.fromkeys(pid for root in roots for pid in _descendants(root, tree)))  # once each
    return cpu_s(*pids) + (sum(_ended_children_cpu_s(pid) for pid in pids) if ended else 0.0)


def _group(pid: int, root: int, has_workers: bool) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    program = os.path.basename(argv[0].decode(errors="replace")) if argv else ""
    words = [a.decode(errors="replace") for a in argv]
    if "postgres" in program:
        return "postgresql"
    if "nats-server" in program:
        return "nats-server"
    if "-m" in words and "lrs" in words:
        command = words[words.index("lrs") + 1] if words.index("lrs") + 1 < len(words) else ""
        if command == "relay":
            return "relay"
        if command == "project":
            return "projection"
        if command == "serve":
            return "supervisor" if pid == root and has_workers else "http workers"
    return "other"


class ServiceCpu:
    """CPU seconds of the process tree under ``root``, by group.

    ``ended``: each process also counts, in its own group, the CPU of the
    children it has waited for (cutime, cstime).  Without it a process that
    ends between two samples takes all its CPU out of the second (a
    PostgreSQL backend the service's pool replaced, after seconds of CPU,
    made one run's PostgreSQL figure fall by that much); with it the
    difference is the CPU it used between them."""

    def __init__(self, root: int, *, ended: bool = False) -> None:
        self.root = root
        self.ended = ended

    def sample(self) -> dict[str, float]:
        """CPU seconds by group, and by group and mode (``"<group> system"``:
        time in the kernel, e.g. the loopback TCP stack and fsync)."""
        return self.sample_both()[1 if self.ended else 0]

    def sample_both(self) -> tuple[dict[str, float], dict[str, float]]:
        """:meth:`sample` without and with the ended processes, from one
        reading of each process (two readings moments apart would differ by
        what the live processes ran in between)."""
        tree = _children()
        pids = _descendants(self.root, tree)
        has_workers = any(
            _group(p, self.root, False) == "http workers" for p in tree.get(self.root, ())
        )
        totals: dict[str, float] = {}
        ended: dict[str, float] = {}
        for pid in pids:
            seconds = _cpu_s(pid)
            if seconds is None:
                continue
            group = _group(pid, self.root, has_workers)
            totals[group] = totals.get(group, 0.0) + seconds[0] + seconds[1]
            totals[group + " system"] = totals.get(group + " system", 0.0) + seconds[1]
            if pid != self.root:  # the root's ended children are the start's tools
                ended[group] = ended.get(group, 0.0) + _ended_children_cpu_s(pid)
        return totals, {**totals, **{group: totals[group] + extra for group, extra in ended.items()}}


def per_statement_us(before: dict[str, float], after: dict[str, float], statements: int) -> dict[str, float]:
    """µs of CPU per statement by group (and ``all``) between two samples."""
    if statements <= 0:
        return {}
    out = {
        group: round((after.get(group, 0.0) - before.get(group, 0.0)) / statements * 1e6, 1)
        for group in sorted(set(before) | set(after))
    }
    out["all"] = round(sum(v for k, v in out.items() if not k.endswith(" system")), 1)
    return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
