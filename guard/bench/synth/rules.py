# ruff: noqa: S108, S311 - temp paths are literals of the generated rules; random.Random is their seeded generator
"""The synthetic rule set: realistic Linux detections in the ``[[rule]]`` policy format.

:func:`generate_rules` takes about twenty single-event families (execution from temp
directories, shells spawned by web servers, credential and SSH key access, reverse shells to IP
ranges, ``curl | sh``, persistence files, defence evasion...) and eight sequence families (by
``process.entity_id`` or ``host.id``; with ``until``, per-step ``by``, ``runs=`` and missing
steps) in turn, their literals varied by an index. In each family one variant targets the attacks
the stream of :mod:`guard.bench.synth.events` contains; the others target tools, paths and
networks the stream never shows, so only a small fraction of rules ever match.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Final

from guard.bench.synth.events import HOT_MINER

__all__ = ["generate_rules"]

_SEVERITIES: Final = ("low", "medium", "high", "critical")

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
    tool = HOT_MINER if k == 0 else _COLD_TOOLS[(k * 5 + rng.randrange(2)) % len(_COLD_TOOLS)]
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
    return "# generated by guard.bench.synth.generate_rules\n\n" + "\n".join(out)
