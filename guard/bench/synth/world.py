# ruff: noqa: S108, S311 - temp paths are data of the synthetic stream; random.Random is its seeded generator
"""The synthetic hosts: value pools, live process trees and the ECS documents they emit.

:class:`World` holds twelve hosts in five roles (web, database, CI, bastion, Kubernetes), each
booted with its daemons, and the live processes that start others, so that file and network
events are attributed to processes that exist (sequences by ``process.entity_id`` complete).
The workload (:mod:`guard.bench.synth.workload`) and the attacks
(:mod:`guard.bench.synth.events`) build on it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ETC",
    "LOCAL",
    "OPT_APPS",
    "SYSTEMD",
    "USERS",
    "USR_BIN",
    "USR_SBIN",
    "WORDS",
    "Event",
    "Host",
    "Proc",
    "World",
]

Event = dict[str, Any]

USR_BIN: Final = tuple(dict.fromkeys((
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
USR_SBIN: Final = (
    "sshd", "cron", "nginx", "apache2", "php-fpm8.2", "unix_chkpwd", "chpasswd", "iptables", "nft",
    "modprobe", "insmod", "sysctl", "useradd", "usermod", "groupadd", "setcap", "chroot", "cupsd",
    "rsyslogd", "named", "postfix", "dhclient", "ntpd", "chronyd", "auditd", "sshd-session", "setenforce",
    "service", "tcpdump", "ethtool", "e2fsck", "fsck", "mkfs.ext4", "losetup", "blockdev",
)  # fmt: skip
SYSTEMD: Final = (
    "systemd", "systemd-journald", "systemd-logind", "systemd-resolved", "systemd-networkd",
    "systemd-timesyncd", "systemd-udevd", "systemd-modules-load", "systemd-tmpfiles", "systemd-user-sessions",
)  # fmt: skip
LOCAL: Final = (
    "node_exporter", "consul", "vault", "nomad", "gitlab-runner", "containerd", "containerd-shim-runc-v2",
    "runc", "dockerd", "kubelet", "kube-proxy", "etcd", "coredns", "helm", "k9s", "stern", "promtail",
    "filebeat", "elastic-agent", "telegraf",
)  # fmt: skip
OPT_APPS: Final = tuple(f"{a}" for a in (
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
ETC: Final = (
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
WORDS: Final = (
    "api", "core", "util", "models", "views", "handlers", "config", "client", "server", "cache", "db",
    "auth", "session", "routes", "schema", "tasks", "worker", "events", "metrics", "logging", "parser",
    "render", "export", "import", "sync", "queue", "store", "index", "search", "report", "billing",
    "invoice", "user", "account", "admin", "mail", "notify", "upload", "image", "thumb", "feed",
)  # fmt: skip
USERS: Final = (
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
    if name in SYSTEMD:
        return f"/usr/lib/systemd/{name}"
    if name in USR_SBIN:
        return f"/usr/sbin/{name}"
    if name in LOCAL:
        return f"/usr/local/bin/{name}"
    if name == "java":
        return "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
    if name == "postgres":
        return "/usr/lib/postgresql/15/bin/postgres"
    if name in ("bash", "sh", "dash"):
        return f"/usr/bin/{name}" if name != "sh" else "/usr/bin/sh"
    return f"/usr/bin/{name}"


@dataclass(slots=True)
class Proc:
    """A live process: its ECS ``process`` object and who runs it where."""

    host: int
    process: dict[str, Any]
    user: tuple[str, str]
    role: str
    daemon: bool = False


@dataclass
class Host:
    """A host: its ECS ``host`` object, addresses, next pid, live processes and daemons."""

    index: int
    role: str
    doc: dict[str, Any]
    ip: str
    ip6: str
    next_pid: int
    live: list[Proc] = field(default_factory=list)
    parents: list[Proc] = field(default_factory=list)  # live processes that start others
    daemons: dict[str, Proc] = field(default_factory=dict)


class World:
    """The hosts, their live process trees, and the documents and values their events carry."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tmp_counter = 0
        self.hosts: list[Host] = []
        names = {"web": 0, "db": 0, "ci": 0, "bastion": 0, "k8s": 0}
        for i, role in enumerate(_ROLES):
            names[role] += 1
            hid = f"{self.rng.getrandbits(128):032x}"
            doc = {
                "id": hid,
                "name": f"{role}-{names[role]:02d}",
                "os": {"type": "linux", "family": "debian"},
            }
            host = Host(
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
        host: Host,
        parent: Proc | None,
        name: str,
        args: list[str],
        user: tuple[str, str],
        cwd: str,
        exe: str | None = None,
    ) -> Proc:
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
        return Proc(host.index, p, user, host.role)

    def _boot(self, host: Host) -> None:
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

    def _pick_live(self, host: Host) -> Proc:
        """Pick a live process, recent ones likelier (a start is soon followed by its file/network events)."""
        if host.live and self.rng.random() < 0.8:
            back = min(int(self.rng.expovariate(0.25)), len(host.live) - 1)
            return host.live[-1 - back]
        return self.rng.choice(list(host.daemons.values()))

    def _pick_parent(self, host: Host) -> Proc:
        """Pick a process that starts others: a shell, build tool or session; else systemd."""
        if host.parents and self.rng.random() < 0.9:
            back = min(int(self.rng.expovariate(0.1)), len(host.parents) - 1)
            return host.parents[-1 - back]
        return host.daemons["systemd"]

    def _remember(self, host: Host, proc: Proc) -> None:
        host.live.append(proc)
        if len(host.live) > 400:
            del host.live[:100]
        if proc.process["name"] in _SPAWNERS:
            host.parents.append(proc)
            if len(host.parents) > 200:
                del host.parents[:50]

    # ------------------------------------------------------------------ event documents

    def _base(self, host: Host, category: str, etype: str, action: str) -> Event:
        return {
            "@timestamp": 0,
            "event": {"kind": "event", "category": category, "type": etype, "action": action, "sequence": 0},
            "host": host.doc,
        }

    def process_start(self, proc: Proc) -> Event:
        """Return the ``process`` ``start`` event of ``proc``."""
        ev = self._base(self.hosts[proc.host], "process", "start", "exec")
        ev["process"] = dict(proc.process)
        ev["user"] = {"id": proc.user[0], "name": proc.user[1]}
        return ev

    def process_end(self, proc: Proc) -> Event:
        """Return the ``process`` ``end`` event of ``proc``, with an exit code."""
        ev = self._base(self.hosts[proc.host], "process", "end", "end")
        p = dict(proc.process)
        p["exit_code"] = 0 if self.rng.random() < 0.93 else self.rng.choice((1, 2, 127, 130, 137, 143))
        ev["process"] = p
        ev["user"] = {"id": proc.user[0], "name": proc.user[1]}
        return ev

    def _short(self, proc: Proc) -> dict[str, Any]:
        p = proc.process
        return {
            "pid": p["pid"],
            "entity_id": p["entity_id"],
            "name": p["name"],
            "executable": p["executable"],
        }

    def file_event(self, proc: Proc, path: str, etype: str = "access") -> Event:
        """Return a ``file`` event of type ``etype`` on ``path`` by ``proc``."""
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
        self, proc: Proc, ip: str, port: int, transport: str = "tcp", inbound: bool = False
    ) -> Event:
        """Return a ``network`` connection by ``proc`` to (or, ``inbound``, from) ``ip``:``port``."""
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
        """Pick a public address of a CDN or cloud (some IPv6)."""
        r = self.rng
        if r.random() < 0.15:
            return r.choice(_PUBLIC_V6).format(x=f"{r.randrange(1, 0xFFFF):x}")
        return r.choice(_PUBLIC_V4).format(
            a=r.randrange(0, 64), b=r.randrange(1, 255), c=r.randrange(112, 128)
        )

    def internal_ip(self) -> str:
        """Pick an address of the internal network (some IPv6)."""
        r = self.rng
        if r.random() < 0.1:
            return f"fd00:10:0:{r.randrange(1, 5)}::{r.randrange(10, 60):x}"
        return f"10.0.{r.randrange(1, 5)}.{r.randrange(2, 60)}"

    def tmp_unique(self) -> str:
        """Make a temporary file path seen once: the long tail of the stream."""
        self.tmp_counter += 1
        r = self.rng
        stem = "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))
        kind = r.randrange(5)
        if kind == 0:
            return f"/tmp/tmp{stem}"
        if kind == 1:
            return f"/tmp/cc{stem[:6]}.o"
        if kind == 2:
            return f"/tmp/pytest-of-ci/pytest-{self.tmp_counter % 97}/test_{r.choice(WORDS)}0/{stem}.json"
        if kind == 3:
            return f"/var/tmp/systemd-private-{r.getrandbits(64):016x}/tmp/{stem}"
        return f"/tmp/go-build{r.randrange(10**8, 10**9)}/b{r.randrange(1, 400):03d}/_pkg_.a"

    def lib_path(self) -> str:
        """Pick a shared library path."""
        return f"/usr/lib/x86_64-linux-gnu/lib{self.rng.choice(_LIBS)}"

    def project_path(self, user: str) -> str:
        """Pick a source file in one of ``user``'s projects (a CI build directory for the runner)."""
        r = self.rng
        proj = f"{r.choice(WORDS)}-{r.choice(('svc', 'api', 'web', 'lib', 'tools'))}"
        sub = r.choice(("src", "tests", "docs", "scripts", "internal", "pkg", "cmd"))
        ext = r.choice(("py", "go", "js", "ts", "md", "yaml", "json", "toml", "sh", "rs"))
        base = "/home/gitlab-runner/builds/grp" if user == "gitlab-runner" else f"/home/{user}"
        return f"{base}/{proj}/{sub}/{r.choice(WORDS)}_{r.randrange(40)}.{ext}"

    def web_path(self) -> str:
        """Pick a file of one of the web roots."""
        r = self.rng
        ext = r.choice(("php", "php", "js", "css", "png", "html", "svg", "woff2", "json"))
        return f"/var/www/site-{r.randrange(24)}/{r.choice(WORDS)}/{r.choice(WORDS)}-{r.randrange(60)}.{ext}"
