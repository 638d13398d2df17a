"""``guardctl bench dfa``: build the path-pattern DFA of a realistic rule set; time its walk against ``re``.

The rule set is ~200 ``contains`` literals ("/.ssh/id_", "/etc/shadow", "/proc/self/mem", ...) and
~100 globs ("/tmp/*", "/home/*/.ssh/*", "*.so", ...), each its own rule. Reported: build time,
states, byte classes, table bytes (what the BPF maps must hold), transition lookups per walked
byte in the BPF loop (1 plus the anchored lane while it is alive), and the cost of one
:meth:`DfaTables.walk` per path over generated paths (the user-space twin of the kernel loop, e.g.
to list every matching rule of an event). The baseline, measured in the same run on the same
paths, is Python's ``re`` (C) with one alternation regex per kind: ``contains_re.search(path)``
plus ``globs_re.fullmatch(path)``; it only answers "does anything match" while the walk returns
every matching rule id. ``single_lane`` builds the one-lane product automaton instead of two lanes.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import Any, Final

from guard.lsm.dfa import MAX_PATH, DfaTables, Pattern, compile_patterns, contains, glob, reference_match

__all__ = ["render_dfa_benchmark", "rule_set", "run_dfa_benchmark"]


def _words(text: str) -> list[str]:
    return text.split()


_SECRET_LITERALS: Final = _words(
    """
    /.ssh/id_ /.ssh/authorized_keys /.ssh/known_hosts /.ssh/config /.gnupg/ /.aws/credentials
    /.aws/config /.azure/ /.config/gcloud/ /.kube/config /.docker/config.json /.netrc /.pgpass
    /.git-credentials /.npmrc /.pypirc /.bash_history /.zsh_history /.mysql_history /.psql_history
    /.python_history /.lesshst /.viminfo /.vault-token /.terraform.d/credentials /.boto /.s3cfg
    /.my.cnf /.cargo/credentials /.gem/credentials wallet.dat .kdbx id_rsa id_ecdsa id_ed25519
    .keytab
"""
)
_SYSTEM_LITERALS: Final = _words(
    """
    /etc/shadow /etc/gshadow /etc/passwd /etc/group /etc/sudoers /etc/sudoers.d/ /etc/pam.d/
    /etc/security/ /etc/ssh/sshd_config /etc/ssh/ssh_host_ /etc/crontab /etc/cron.d/
    /etc/cron.daily/ /etc/cron.hourly/ /etc/systemd/system/ /etc/ld.so.preload /etc/ld.so.conf
    /etc/hosts /etc/resolv.conf /etc/profile /etc/bash.bashrc /etc/environment /etc/rc.local
    /etc/init.d/ /etc/modules /etc/modprobe.d/ /etc/krb5.keytab /etc/machine-id /etc/nsswitch.conf
    /etc/apt/sources.list /etc/selinux/ /etc/apparmor.d/ /etc/audit/ /etc/kubernetes/
    /etc/docker/daemon.json /etc/containerd/ /etc/ssl/private/ /etc/polkit-1/ /etc/update-motd.d/
    /etc/xinetd.d/ /proc/self/mem /proc/self/environ /proc/kcore /proc/kallsyms /proc/sysrq-trigger
    /proc/self/maps /proc/sys/kernel/ /proc/sys/vm/ /proc/1/ /proc/self/fd/ /proc/self/root
    /proc/self/exe /proc/self/cwd /proc/self/auxv /proc/modules /proc/keys /proc/self/attr/
    /proc/sys/fs/binfmt_misc/ /sys/kernel/debug/ /sys/kernel/security/ /sys/fs/bpf/ /sys/fs/cgroup/
    /sys/firmware/ /sys/module/ /sys/kernel/tracing/ /sys/kernel/kexec_load /sys/power/ /dev/mem
    /dev/kmem /dev/port /dev/kmsg /dev/cpu/ /dev/disk/ /dev/mapper/ /dev/tcp/ /dev/udp/ /dev/fuse
    /dev/kvm /dev/net/tun /var/run/docker.sock /run/containerd/containerd.sock /var/lib/kubelet/
    /var/log/auth.log /var/log/secure /var/log/wtmp /var/log/btmp /var/log/lastlog /var/log/audit/
    /var/spool/cron/ /var/lib/docker/ /var/backups/ /run/secrets/ /var/run/secrets/ /nc /ncat /socat
    /nmap /tcpdump /masscan /hydra /john /hashcat /mimikatz /linpeas /pspy /chisel /xmrig /minerd
    /gdb /strace /ltrace /busybox /insmod /rmmod /modprobe /kexec /debugfs /setcap /nsenter /unshare
    /capsh /bpftool /ngrok
"""
)
_APPS: Final = _words(
    """
    autostart systemd google-chrome chromium BraveSoftware Slack discord Signal keepassxc 1Password
    Bitwarden filezilla remmina openvpn wireguard gh hub rclone syncthing Code JetBrains pulse dconf
    gtk-3.0 evolution thunderbird mozilla teams zoom spotify obs-studio sublime-text transmission
    qBittorrent
"""
)
_GLOBS: Final = _words(
    """
    /tmp/* /var/tmp/* /dev/shm/* /run/shm/* /run/user/*/* /home/*/.ssh/* /root/.ssh/* *.so *.so.*
    *.ko *.ko.xz *.ko.zst /home/*/.cache/* /root/* /home/*/Downloads/* /usr/lib/*/security/pam_*.so
    /lib/modules/*/kernel/* /home/*/.config/autostart/*.desktop /etc/cron.*/* /home/*/.local/bin/*
    /proc/*/mem /proc/*/environ /proc/*/maps /proc/*/root/* /proc/*/fd/* /proc/*/cmdline
    /home/*/.mozilla/firefox/*/logins.json /home/*/.mozilla/firefox/*/key4.db /var/www/*.php /srv/*
    /mnt/* /media/* /home/*/.bashrc /home/*/.profile /home/*/.bash_profile /home/*/.zshrc
    /etc/systemd/system/*.service /usr/lib/systemd/system/*.service /home/*/.config/systemd/user/*
    /dev/sd? /dev/sd?? /dev/nvme?n? /dev/nvme?n?p? /dev/tty? /dev/loop? /tmp/.X??-lock /tmp/.*
    /var/tmp/.* /dev/shm/.* /usr/local/bin/* /usr/local/sbin/* /opt/*/bin/* /snap/*/bin/*
    /boot/vmlinuz-* /boot/initrd.img-* /boot/grub/* /efi/* /boot/efi/* /var/lib/dpkg/info/*.postinst
    /var/lib/rpm/* /usr/bin/python?.* /usr/bin/perl* /usr/bin/php* /usr/bin/ruby* *.sh *.py *.pl
    *.elf */.git/hooks/* */node_modules/.bin/* */__pycache__/*.pyc
    /home/*/.gnupg/private-keys-v1.d/* /home/*/.password-store/*
"""
)
_GLOBS_CI: Final = ["*.EXE", "*.DLL", "*.BAT", "*.PS1", "*.VBS", "*/AUTORUN.INF"]
_APP_GLOBS: Final = ["/home/*/.config/{}/*"]

_DIRS: Final = _words(
    """
    /usr/bin/ /usr/sbin/ /usr/lib/x86_64-linux-gnu/ /usr/share/locale/de/LC_MESSAGES/ /home/alice/
    /home/bob/.config/ /home/carol/src/project/ /tmp/ /var/tmp/ /dev/shm/ /proc/4242/ /proc/self/
    /etc/ /etc/ssh/ /var/log/ /var/lib/docker/overlay2/ /opt/vendor/bin/ /srv/www/
    /lib/modules/6.8.0-31-generic/kernel/drivers/net/ / /home/alice/.ssh/
    /home/alice/.mozilla/firefox/abcd.default/ /sys/fs/cgroup/
"""
)
_NAMES: Final = _words(
    """
    ls bash python3.12 libc.so.6 libssl.so.3 README.md config notes.txt id_ed25519.pub known_hosts
    cmdline environ mem status shadow passwd a.out payload.sh x main.py index.php e1000e.ko.zst
    data.bin core logins.json Setup.EXE kworker .hidden .. cache.db
"""
)


def rule_set() -> list[Pattern]:
    """Return the benchmark's patterns: contains literals, then globs, then case-insensitive globs."""
    literals = _SECRET_LITERALS + _SYSTEM_LITERALS + [f"/.config/{app}/" for app in _APPS]
    globs = _GLOBS + [g.format(app) for app in _APPS[:12] for g in _APP_GLOBS]
    patterns: list[Pattern] = []
    rule_id = 1
    for lit in literals:
        patterns.append(contains(lit, rule_id))
        rule_id += 1
    for text in globs:
        patterns.append(glob(text, rule_id))
        rule_id += 1
    for text in _GLOBS_CI:
        patterns.append(glob(text, rule_id, case_insensitive=True))
        rule_id += 1
    return patterns


def _fill(text: bytes, rng: random.Random) -> bytes:
    """Turn a glob into a path it matches (or a literal into a path containing it)."""
    out = bytearray()
    for ch in text:
        if ch == 0x2A:
            out += rng.choice([b"", b"alice", b"x/y", b"lib", b"1234"])
        elif ch == 0x3F:
            out.append(rng.choice(b"abc0123"))
        else:
            out.append(ch)
    return bytes(out)


def _gen_paths(patterns: list[Pattern], count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    paths = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.15:
            pat = rng.choice(patterns)
            body = _fill(pat.text, rng)
            path = body if pat.kind == "glob" else rng.choice(_DIRS).encode() + body.lstrip(b"/")
        else:
            depth = rng.choice([0, 0, 1, 1, 2, 3])
            path = rng.choice(_DIRS).encode()
            for _ in range(depth):
                path += rng.choice([b"src/", b"lib/", b".cache/", b"node_modules/", b"tmp/", b"a/b/"])
            path += rng.choice(_NAMES).encode()
        if rng.random() < 0.002:
            path = path + b"/long" * 60  # over-long: more than MAX_PATH bytes
        paths.append(path)
    return paths


def _glob_regex(pat: Pattern) -> bytes:
    body = b"".join(
        b".*" if ch == 0x2A else b"." if ch == 0x3F else re.escape(bytes((ch,))) for ch in pat.text
    )
    return b"(?i:" + body + b")" if pat.case_insensitive else body


def _kernel_lookups(tables: DfaTables, paths: list[bytes]) -> float:
    """Mean transition lookups per walked byte in the BPF loop (1 + the anchored lane while alive)."""
    nc, trans, classes, dead = tables.num_classes, tables.transitions, tables.byte_class, tables.dead
    lookups = walked = 0
    for path in paths:
        anchored = tables.anchored_start
        for byte in path[:MAX_PATH]:
            walked += 1
            lookups += 1
            if anchored != dead:
                anchored = trans[anchored * nc + classes[byte]]
                lookups += 1
    return lookups / max(1, walked)


def run_dfa_benchmark(paths: int = 100_000, seed: int = 1, *, single_lane: bool = False) -> dict[str, Any]:
    """Build the DFA of :func:`rule_set`, walk ``paths`` generated paths, time ``re``; return the figures."""
    patterns = rule_set()
    t0 = time.perf_counter()
    tables = compile_patterns(patterns, split_anchored=not single_lane)
    build_s = time.perf_counter() - t0
    info = tables.describe()

    walked = _gen_paths(patterns, paths, seed)
    walk = tables.walk
    t0 = time.perf_counter()
    results = [walk(p) for p in walked]
    walk_s = time.perf_counter() - t0

    lits = sorted((p.text for p in patterns if p.kind == "contains"), key=len, reverse=True)
    contains_re = re.compile(b"|".join(re.escape(lit) for lit in lits))
    globs_re = re.compile(b"|".join(_glob_regex(p) for p in patterns if p.kind == "glob"), re.DOTALL)
    search, fullmatch = contains_re.search, globs_re.fullmatch
    t0 = time.perf_counter()
    base = [(search(p[:MAX_PATH]) is not None) | (fullmatch(p[:MAX_PATH]) is not None) for p in walked]
    base_s = time.perf_counter() - t0

    check = min(len(walked), 2000)
    disagree = sum(results[i].rule_ids != reference_match(patterns, walked[i]) for i in range(check))
    any_disagree = sum(bool(r.rule_ids) != b for r, b in zip(results, base, strict=True))
    walk_us = walk_s / len(walked) * 1e6
    base_us = base_s / len(walked) * 1e6
    return {
        "patterns": len(patterns),
        "contains": sum(p.kind == "contains" for p in patterns),
        "globs": sum(p.kind == "glob" for p in patterns),
        "split_anchored": not single_lane,
        "build_s": round(build_s, 3),
        "num_states": info["num_states"],
        "num_classes": info["num_classes"],
        "anchored_start": info["anchored_start"],
        "dead": info["dead"],
        "table_bytes": info["bytes"],
        "kernel_bytes": info["kernel_bytes"],
        "blob_bytes": info["total_bytes"],
        "paths": len(walked),
        "mean_path_bytes": round(sum(map(len, walked)) / len(walked), 1),
        "over_long_paths": sum(r.over_long for r in results),
        "matched_fraction": round(sum(bool(r.rule_ids) for r in results) / len(results), 3),
        "kernel_transitions_per_byte": round(_kernel_lookups(tables, walked[:check]), 3),
        "walk_us_per_path": round(walk_us, 2),
        "baseline_re_us_per_path": round(base_us, 2),
        "ratio_to_baseline": round(walk_us / base_us, 2),
        "reference_checked": check,
        "reference_disagreements": disagree,
        "baseline_any_match_disagreements": any_disagree,
    }


def render_dfa_benchmark(result: Mapping[str, Any]) -> str:
    """Render :func:`run_dfa_benchmark`'s result as the text ``guardctl bench dfa`` prints."""
    r = result
    lanes = "two lanes" if r["split_anchored"] else "one lane"
    return "\n".join(
        [
            f"DFA for {r['patterns']} patterns ({r['contains']} contains, {r['globs']} globs), {lanes}",
            f"  built in {r['build_s']:.2f} s: {r['num_states']} states x {r['num_classes']} byte classes",
            f"  start 0, anchored_start {r['anchored_start']}, dead {r['dead']}",
            f"  kernel tables {r['kernel_bytes']} bytes (transitions {r['table_bytes']['transitions']}); "
            f"full blob {r['blob_bytes']} bytes",
            f"  walk: {r['walk_us_per_path']} us/path over {r['paths']} paths "
            f"(mean {r['mean_path_bytes']} bytes, {r['matched_fraction']:.1%} matched, "
            f"{r['over_long_paths']} over-long)",
            f"  BPF loop: {r['kernel_transitions_per_byte']} transition lookups per walked byte",
            f"  baseline re search+fullmatch: {r['baseline_re_us_per_path']} us/path; "
            f"ratio to baseline: {r['ratio_to_baseline']}x",
            f"  disagreements: {r['reference_disagreements']} of {r['reference_checked']} "
            f"vs reference_match, {r['baseline_any_match_disagreements']} any-match vs re",
        ]
    )
