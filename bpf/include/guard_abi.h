/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The only place for structs and enums shared by the BPF programs and user space.
 * Mirrored by guard/lsm/abi.py (ctypes); a test compares sizes and offsets with the compiled side.
 */
#ifndef GUARD_ABI_H
#define GUARD_ABI_H

#define GUARD_PATH_MAX 256
#define GUARD_COMM_LEN 16
#define GUARD_NET_DATA 20 /* port (2, big-endian) + IPv6 address (16) + 2 zero bytes */

enum guard_hook {
	GUARD_HOOK_EXEC = 0,
	GUARD_HOOK_FILE_OPEN = 1,
	GUARD_HOOK_CONNECT = 2,
	GUARD_HOOK_PTRACE = 3,
	GUARD_HOOK_COUNT = 4,
};

/*
 * guard_event.hook is a hook (0..3) or one of these telemetry kinds, which are not hooks: no mode,
 * flags or verdicts of their own, and they never deny. A chmod event is gated on the file_open
 * hook's mode and GUARD_HF_EMIT_CHMOD, and is counted (emitted, drops) under file_open.
 */
#define GUARD_EVENT_CHMOD 4

enum guard_mode {
	GUARD_MODE_OFF = 0,
	GUARD_MODE_DETECT = 1,
	GUARD_MODE_ENFORCE = 2,
};

enum guard_decision {
	/* an interesting call that was let through (interest push-down) */
	GUARD_DECISION_ALLOWED = 0,
	GUARD_DECISION_DENIED = 1,
	GUARD_DECISION_WOULD_BLOCK = 2,
	/* compat: a kill reaction under enforce (SIGKILL before user code runs) */
	GUARD_DECISION_KILLED = 3,
};

/* Which table produced the decision (the event's `match`). */
enum guard_match {
	GUARD_MATCH_NONE = 0,
	GUARD_MATCH_INODE = 1,
	GUARD_MATCH_PATH = 2,
	GUARD_MATCH_PREFIX = 3,
	GUARD_MATCH_SUFFIX = 4,
	GUARD_MATCH_DFA = 5,
	GUARD_MATCH_NET = 6,
	GUARD_MATCH_PTRACE = 7,
	GUARD_MATCH_DYNAMIC = 8,
	GUARD_MATCH_LONG_PATH = 9,
	GUARD_MATCH_ALL = 10,	  /* the hook's "emit every call" interest */
	GUARD_MATCH_SUBTREE = 11, /* a directory the file lies under, by (device, inode) */
};

enum guard_counter {
	GUARD_CNT_CALLS = 0,
	GUARD_CNT_DENIES = 1,
	GUARD_CNT_WOULD_BLOCK = 2,
	GUARD_CNT_RINGBUF_DROPS = 3,
	GUARD_CNT_PATH_TOO_LONG = 4,
	GUARD_CNT_EMITTED = 5,
	/* a decision (denied, would-block, killed) the guard_decisions ring had no room for */
	GUARD_CNT_DECISION_DROPS = 6,
	/* a subject-conditioned deny list a call met but could not decide (a table's second one) */
	GUARD_CNT_COUNT = 7,
};

/* Bits of guard_config.hook_flags[hook]. */
/* interest: every governed call goes to the ring buffer */
#define GUARD_HF_EMIT_ALL 0x1
/* an unresolvable or over-long path is denied (fail closed) */
#define GUARD_HF_LONG_PATH_DENY 0x2
/* set by the loader from the tables: the hook has suffix verdicts */
#define GUARD_HF_HAS_SUFFIXES 0x4
/* file_open interest: every governed open that created its file */
#define GUARD_HF_EMIT_CREATED 0x8
/* on file_open: emit a GUARD_EVENT_CHMOD event for governed chmods */
#define GUARD_HF_EMIT_CHMOD 0x10
/* set by the loader from the tables: a deny may exempt its caller's executable */
#define GUARD_HF_HAS_EXEMPTIONS 0x20
/* set by the loader from the tables: the hook has subtree verdicts (guard_subtrees) */
#define GUARD_HF_HAS_SUBTREES 0x40
/* The hook's tables hold conditioned deny rules: read the caller (guard_read_who). */
#define GUARD_HF_HAS_CONDS 0x80

/* Bits of guard_config.flags. */
/* every task is governed (but the agent): the scope maps are not consulted */
#define GUARD_CF_ALL_TASKS 0x1
#define GUARD_CF_PROCESS_EVENTS 0x2 /* report governed fork, exec and exit to guard_procs */
#define GUARD_CF_ENV_VARS 0x4	    /* exec records carry the new image's environment */
#define GUARD_CF_SYSCALL_EVENTS 0x8 /* deletions, renames, id changes, memfds, modules, accepts */
#define GUARD_CF_DNS_EVENTS 0x10 /* DNS messages a governed task sends to or reads from port 53 */
#define GUARD_CF_MODIFY_EVENTS 0x20 /* the first write through each file a governed task opened */

/* Bits of guard_event.flags. */
#define GUARD_EVF_PATH_TOO_LONG 0x1
#define GUARD_EVF_SENDMSG 0x2 /* socket_sendmsg to an explicit destination (decided as a connect) */
#define GUARD_EVF_CREATED 0x4 /* file events: the open created the file (FMODE_CREATED) */
#define GUARD_EVF_WRITE 0x8   /* file events: the file is open for writing (FMODE_WRITE) */
#define GUARD_EVF_LINK 0x10   /* file_open: a hard link made to the file (path_link) */
#define GUARD_EVF_RENAME 0x20 /* file_open: the file renamed (path_rename) */
#define GUARD_EVF_MMAP 0x40   /* exec: the file mapped executable (mmap_file) */

/* Bit of mmap/mprotect prot (include/uapi/asm-generic/mman-common.h). */
#define GUARD_PROT_EXEC 0x4

/* How many directories above a file the subtree verdicts look at (deeper: not looked at). */
#define GUARD_SUBTREE_DEPTH 32

/* Bits of struct file's f_mode (include/linux/fs.h): values, not offsets, stable since 4.19. */
#define GUARD_FMODE_WRITE 0x2
#define GUARD_FMODE_CREATED 0x100000

/* Bit of ptrace modes (include/linux/ptrace.h): only attach-class access is ever denied. */
#define GUARD_PTRACE_MODE_ATTACH 0x02

/* The whole configuration; index 0 of guard_config. */
struct guard_config {
	__u32 mode[GUARD_HOOK_COUNT];
	__u32 hook_flags[GUARD_HOOK_COUNT];
	__u32 dfa_slot[GUARD_HOOK_COUNT]; /* 1 + index into guard_dfas; 0 = no DFA */
	__u32 agent_tgid;		  /* never governed */
	__u32 flags;
};

/*
 * guard_exempt (hash): a rule's deny does not apply to a caller whose executable
 * (current->mm->exe_file) is this file; the agent resolves the policy's exempt paths to (device,
 * inode).
 */
struct guard_exempt_key {
	__u32 rule_id;
	__u32 pad;
	__u64 dev; /* the kernel's dev_t: major << 20 | minor */
	__u64 ino;
};

/*
 * Subject conditions: a deny rule that also needs the caller to be someone (its name, its parent's
 * name, its uid). Each distinct test of the caller the policy makes is one bit; the hook reads the
 * caller once (guard_read_who) and ORs the bits guard_subject_atoms gives for its name, its
 * parent's name and its uid into a word. A conditioned rule holds for the caller when every
 * ``need`` bit is set in that word and no ``forbid`` bit is (a test of "is none of these"). Two
 * banks of bits let a policy swap write the new ones beside the old: an entry names its bank.
 * A name is the comm, NUL-padded; a parent's name whose comm was cut at 15 bytes is its
 * executable's file name (as process.parent.name is in events); a uid is 4 little-endian bytes.
 */
#define GUARD_COND_SLOTS 2   /* conditioned deny rules per key and hook */
#define GUARD_COND_ENTRIES 8 /* GUARD_HOOK_COUNT * GUARD_COND_SLOTS */
#define GUARD_SUBJECT_TEXT 48

enum guard_subject_field {
	GUARD_SUBJ_NONE = 0,
	GUARD_SUBJ_NAME = 1,
	GUARD_SUBJ_PARENT_NAME = 2,
	GUARD_SUBJ_UID = 3,
};

struct guard_cond {
	__u32 rule; /* 0 = none */
	__u32 bank;
	__u64 need;
	__u64 forbid;
};

/*
 * Every static verdict table maps its key to per-hook rule ids: deny and notify (0 = none), and up
 * to GUARD_COND_SLOTS conditioned deny rules per hook (cond[hook * GUARD_COND_SLOTS + i],
 * ascending): a plain deny wins, else the first whose condition holds.
 */
struct guard_verdict {
	__u32 deny[GUARD_HOOK_COUNT];
	__u32 notify[GUARD_HOOK_COUNT];
	struct guard_cond cond[GUARD_COND_ENTRIES];
};

/* guard_subject_atoms (hash): one value of one field of the caller -> its test bits per bank. */
struct guard_subject_key {
	__u32 field;
	__u32 pad;
	char value[GUARD_SUBJECT_TEXT];
};

struct guard_subject_bits {
	__u64 bank[2];
};

/* guard_paths (hash): a NUL-terminated path, zero-padded. */
struct guard_path_key {
	char path[GUARD_PATH_MAX];
};

/* guard_prefixes / guard_suffixes (LPM tries): prefixlen in bits; a suffix is stored reversed. */
struct guard_lpm_path_key {
	__u32 prefixlen;
	char path[GUARD_PATH_MAX];
};

/* guard_inodes (hash): a file by (device, inode), so renames and hard links match too. */
struct guard_inode_key {
	__u64 dev; /* the kernel's dev_t: major << 20 | minor */
	__u64 ino;
};

/*
 * guard_subtrees (hash): a directory by (device, inode); its verdict applies to every file below
 * it on the same filesystem, whatever the path that reaches it (bind mounts, chroot, namespaces).
 * Key: struct guard_inode_key.
 *
 * guard_protect_exes (hash, key struct guard_inode_key) and guard_protect_names (hash, key struct
 * guard_comm_key): a process that execs this file, or whose new name is this, is put in
 * guard_ptrace_targets with the verdict at exec, before it runs a single instruction.
 */
struct guard_comm_key {
	char comm[GUARD_COMM_LEN];
};

/* guard_nets (LPM trie): port then address; IPv4 as v4-mapped IPv6. Port 0 = every port. */
struct guard_net_key {
	__u32 prefixlen;
	__u8 data[GUARD_NET_DATA];
};

#ifndef GUARD_DFA_TRANS
#define GUARD_DFA_TRANS 65536 /* a power of two: indexes are masked, not branched on */
#endif
#ifndef GUARD_DFA_STATES
#define GUARD_DFA_STATES 16384 /* a power of two */
#endif

struct guard_dfa_state {
	__u32 step_first;
	__u32 accept_first;
};

/*
 * One hook's in-kernel DFA, a single array-map value so the walk needs no lookup per byte:
 * indexes are masked into range (the verifier accepts that without a branch per step).
 */
struct guard_dfa {
	__u32 num_states; /* 0: no DFA */
	__u32 num_classes;
	__u32 start;
	__u32 anchored_start;
	__u32 dead;
	__u32 rule_base; /* first index in guard_dfa_rules */
	__u8 byte_class[256];
	struct guard_dfa_state states[GUARD_DFA_STATES];
	__u32 trans[GUARD_DFA_TRANS];
};

/* A DFA id (1..n, per hook) to its rule: action 1 = deny, 2 = notify. */
struct guard_dfa_rule {
	__u32 rule_id;
	__u32 action;
};

#define GUARD_ACTION_DENY 1
#define GUARD_ACTION_NOTIFY 2

/* guard_entities (hash, key = tgid): a process armed by user space, and its descendants. */
struct guard_entity {
	__u64 group; /* the arming group; forks inherit it, exits remove it */
};

/* guard_dynamic (hash): an armed verdict for a group on a hook; dev = ino = 0 targets anything. */
struct guard_dyn_key {
	__u64 group;
	__u32 hook;
	__u32 pad;
	__u64 dev;
	__u64 ino;
};

struct guard_dyn_verdict {
	__u32 rule_id;
	__u32 action;
	__u64 expires_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns); 0 = until disarmed */
};

/*
 * guard_decision_drops (hash, value: a __u64 count): decisions the guard_decisions ring had no room
 * for, by the deciding rule (0: the long-path deny), hook and enum guard_decision.
 */
struct guard_decision_drop_key {
	__u32 rule_id;
	__u32 hook;
	__u32 decision;
};

/* One ring-buffer record. */
struct guard_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u32 hook; /* enum guard_hook, or GUARD_EVENT_CHMOD */
	__u32 decision;
	__u32 rule_id;
	__u32 match;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 flags;
	__u64 dev;
	__u64 ino;
	__u64 start_ns;	       /* the thread-group leader's start_time (CLOCK_MONOTONIC) */
	__u64 parent_start_ns; /* the real parent's thread-group leader's start_time */
	__u32 ppid;	       /* the real parent's tgid */
	__u32 mode;	       /* chmod: the new mode; file events: the inode's i_mode */
	__u32 target_tgid;     /* ptrace */
	__u16 family;	       /* connect: AF_INET / AF_INET6 */
	__u16 port;	       /* connect: host order */
	__u8 addr[16];	       /* connect: IPv6, or v4-mapped IPv4 */
	char comm[GUARD_COMM_LEN];
	char path[GUARD_PATH_MAX];
};

/*
 * Process events (guard_procs): a governed process's fork, exec and exit, with the context the
 * kernel has at that moment. Fork and exit records are a struct guard_proc_event; an exec record
 * is a struct guard_exec_event (the same header, then the image, working directory, argv and env),
 * cut after its last used byte. Every record starts with the header: its kind says which it is.
 */
#define GUARD_ARGS_MAX 4096    /* argv bytes kept (a power of two); longer argv is truncated */
#define GUARD_STRINGS_MAX 8192 /* GUARD_ARGS_MAX + GUARD_ENV_MAX */
#define GUARD_ENV_MAX 4096 /* environment bytes kept (a power of two), under GUARD_CF_ENV_VARS */

#define GUARD_PROC_FORK 1
#define GUARD_PROC_EXEC 2
#define GUARD_PROC_EXIT 3
#define GUARD_PROC_DELETE 4	 /* a struct guard_file_event: unlink, unlinkat */
#define GUARD_PROC_RENAME 5	 /* a struct guard_file_event: rename, renameat, renameat2 */
#define GUARD_PROC_UID_CHANGE 6	 /* a header: setuid, setreuid, setresuid (the new ids) */
#define GUARD_PROC_GID_CHANGE 7	 /* a header: setgid, setregid, setresgid */
#define GUARD_PROC_MEMFD 8	 /* a struct guard_file_event: memfd_create (path: its name) */
#define GUARD_PROC_MODULE_LOAD 9 /* a struct guard_file_event: finit_module (path), init_module */
#define GUARD_PROC_ACCEPT 10	 /* a struct guard_net_event: accept, accept4 */
#define GUARD_PROC_CHOWN 11	 /* a struct guard_file_event: chown, lchown, fchownat */
#define GUARD_PROC_XATTR 12	 /* a struct guard_file_event: setxattr, removexattr (and l*) */
#define GUARD_PROC_MOUNT 13	 /* a struct guard_file_event: mount (path: the mount point) */
#define GUARD_PROC_UNMOUNT 14	 /* a struct guard_file_event: umount2 */
#define GUARD_PROC_MODULE_UNLOAD 15 /* a struct guard_file_event: delete_module (path: its name) */
#define GUARD_PROC_DNS_QUERY 16	    /* a struct guard_dns_event: a message sent to port 53 */
#define GUARD_PROC_DNS_ANSWER 17    /* a struct guard_dns_event: a message read from a DNS socket */
#define GUARD_PROC_MODIFY 18 /* a struct guard_file_event: the first write through an open file */
#define GUARD_PROC_PTRACE 19 /* a struct guard_ptrace_event: ptrace attach or seize */
#define GUARD_PROC_DISCONNECT 20 /* a struct guard_net_event: a TCP connection the task closes */

#define GUARD_PF_ARGS_TRUNCATED 0x1 /* argv longer than GUARD_ARGS_MAX - 1 bytes */
#define GUARD_PF_EXE_UNRESOLVED 0x2 /* the image's path did not fit or could not be walked */
#define GUARD_PF_CWD_UNRESOLVED 0x4 /* the working directory's path likewise */
#define GUARD_PF_THREAD 0x8	    /* exit: a thread, not the whole process */
#define GUARD_PF_ENV_TRUNCATED 0x10 /* the environment was longer than GUARD_ENV_MAX - 1 bytes */

struct guard_proc_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u64 start_ns;	       /* the thread-group leader's start_time */
	__u64 parent_start_ns; /* the real parent's thread-group leader's start_time */
	__u64 cap_effective;
	__u64 cap_permitted;
	__u32 kind;  /* GUARD_PROC_* */
	__u32 flags; /* GUARD_PF_* */
	__u32 pid;
	__u32 tgid;
	__u32 ppid;
	__u32 uid; /* real */
	__u32 euid;
	__u32 suid;
	__u32 gid; /* real */
	__u32 egid;
	__u32 sgid;
	__u32 sid;	 /* the session leader's pid */
	__u32 pgid;	 /* the process group leader's pid */
	__u32 tty_major; /* the controlling terminal; 0: none */
	__u32 tty_minor;
	__u32 exit_code; /* exit: the wait status (code << 8 | signal) */
	__u32 argc;	 /* exec: the argument count */
	__u32 args_len;	 /* exec: bytes of args kept (NUL-separated) */
	__u32 env_len;	 /* exec: bytes of env kept (NUL-separated; GUARD_CF_ENV_VARS) */
	__u32 pad;
	char comm[GUARD_COMM_LEN];
};

struct guard_exec_event {
	struct guard_proc_event proc;
	char exe[GUARD_PATH_MAX];
	char cwd[GUARD_PATH_MAX];
	/* argv (args_len bytes), then the environment (env_len bytes); a record on the ring ends
	 * where they end, so its size varies (at most sizeof(struct guard_exec_event)) */
	char strings[GUARD_STRINGS_MAX];
};

/*
 * A governed task's successful deletion or rename, reported at the syscall's exit: each name as
 * the caller gave it and, for a relative one, the directory it is relative to (the working
 * directory, or the directory fd's path), which user space joins. A rename's new name is in
 * ``path``, its old one in ``old_path``.
 */
struct guard_file_event {
	struct guard_proc_event proc;
	char path[GUARD_PATH_MAX];
	char dir[GUARD_PATH_MAX];
	char old_path[GUARD_PATH_MAX];
	char old_dir[GUARD_PATH_MAX];
};

/* An accepted connection, or one closed: the socket's local and remote ends (ports in host order). */
struct guard_net_event {
	struct guard_proc_event proc;
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u16 pad;
	__u8 local_addr[16];  /* IPv6, or v4-mapped IPv4 */
	__u8 remote_addr[16]; /* IPv6, or v4-mapped IPv4 */
};

/* A ptrace(PTRACE_ATTACH or PTRACE_SEIZE) that succeeded: the tracee and the request. */
struct guard_ptrace_event {
	struct guard_proc_event proc;
	__u32 child_pid;
	__u32 request;
};

/*
 * A DNS message a governed task sent to port 53 (at the send's entry) or read from a socket it
 * talks DNS on (at the read's exit): the socket's two ends (for an unconnected send, the remote
 * end is the address the send names) and the message's first bytes, which user space parses.
 */
#define GUARD_DNS_MAX 512 /* message bytes kept (a power of two): a classic DNS message's maximum */

struct guard_dns_event {
	struct guard_proc_event proc; /* up to len: the same layout as struct guard_net_event */
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u16 pad;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 len;	/* the message's size as the syscall gave it */
	__u32 data_len; /* bytes kept in data */
	__u8 data[GUARD_DNS_MAX];
};

#endif /* GUARD_ABI_H */
