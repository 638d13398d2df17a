# ruff: noqa: S108 - temp paths are data of the synthetic stream
"""The benign workload of the synthetic stream: per-role process starts and ends, file and network events.

Cron jobs, SSH sessions, CI builds, database backends, Kubernetes pods and shell users run
realistic executables with realistic arguments; daemons read libraries, configuration and logs;
temporary files form a long tail of unique paths; some connections are IPv6.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from guard.bench.synth.world import (
    ETC,
    LOCAL,
    OPT_APPS,
    SYSTEMD,
    USERS,
    USR_BIN,
    USR_SBIN,
    WORDS,
    Event,
    Host,
    World,
)

__all__ = ["Workload"]


class Workload(World):
    """A :class:`World` that emits the benign events of its hosts' roles."""

    def _args_for(self, name: str, user: str, cwd: str) -> list[str]:
        r = self.rng
        w = r.choice(WORDS)
        table: dict[str, Callable[[], list[str]]] = {
            "ls": lambda: ["ls", r.choice(("-la", "-l", "-1", "--color=auto")), cwd],
            "cat": lambda: ["cat", r.choice((self.project_path(user), r.choice(ETC), "/proc/meminfo"))],
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
                        (f"/opt/{r.choice(OPT_APPS)}/bin/{w}.py",),
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
            "java": lambda: ["java", "-Xmx512m", "-jar", f"/opt/{r.choice(OPT_APPS)}/lib/{w}.jar"],
            "vim": lambda: ["vim", self.project_path(user)],
            "sed": lambda: ["sed", "-i", f"s/{w}/{r.choice(WORDS)}/g", self.project_path(user)],
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

    def benign_process(self, host: Host) -> Event:
        """Start a process of the host's role: cron, an SSH session, CI, a database backend, a pod, a tool."""
        r = self.rng
        role = host.role
        roll = r.random()
        root = ("0", "root")
        if roll < 0.12:  # cron job
            line = r.choice(self._CRON)
            proc = self._proc(host, host.daemons["cron"], "sh", ["/bin/sh", "-c", line[6:]], root, "/")
        elif roll < 0.2:  # ssh login -> shell
            user = r.choice(USERS[3:8])
            sess = self._proc(
                host, host.daemons["sshd"], "sshd", ["sshd:", f"{user[1]}@pts/{r.randrange(8)}"], root, "/"
            )
            self._remember(host, sess)
            proc = self._proc(host, sess, "bash", ["-bash"], user, f"/home/{user[1]}")
        elif role == "ci" and roll < 0.85:
            parent = self._pick_parent(host)
            name = r.choice(self._CI)
            if r.random() < 0.03:  # go test binaries run from the build cache
                exe = f"/tmp/go-build{r.randrange(10**8, 10**9)}/b001/exe/{r.choice(WORDS)}.test"
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
                cwd = f"/home/gitlab-runner/builds/grp/{r.choice(WORDS)}-svc"
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
            app = r.choice(OPT_APPS)
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
                name = r.choice(USR_BIN)
                exe = None
            elif pool < 0.9:
                name = r.choice(USR_SBIN + SYSTEMD + LOCAL)
                exe = None
            elif pool < 0.97:
                app = r.choice(OPT_APPS)
                name = f"{app}-{r.choice(('worker', 'cli'))}"
                exe = f"/opt/{app}/bin/{name}"
            else:
                name = r.choice(("poetry", "black", "httpie", "pipx", "rg", "fd"))
                exe = f"/home/{user[1]}/.local/bin/{name}" if user[0] != "0" else f"/root/.local/bin/{name}"
            args = self._args_for(name, user[1], cwd)
            proc = self._proc(host, parent, name, args, user, cwd, exe=exe)
        self._remember(host, proc)
        return self.process_start(proc)

    def benign_end(self, host: Host) -> Event:
        """End a live process, recent ones likelier (or start one when none is live)."""
        if not host.live:
            return self.benign_process(host)
        idx = max(0, len(host.live) - 1 - int(self.rng.expovariate(0.05)))
        proc = host.live.pop(idx)
        if proc in host.parents:
            host.parents.remove(proc)
        return self.process_end(proc)

    def benign_file(self, host: Host) -> Event:
        """Have a live process open, create, change or delete a file its kind would touch."""
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
                (self.lib_path(), r.choice(ETC), f"/var/log/{r.choice(('syslog', 'auth.log', 'kern.log'))}")
            )
        elif roll < 0.45:
            path = r.choice(ETC)
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

    def benign_net(self, host: Host) -> Event:
        """Make a connection: inbound to the role's service, DNS, or outbound from a live process."""
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
