/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The only place for structs and enums shared by the BPF programs and user space.
 * Mirrored by guard/lsm/abi.py (ctypes); a test compares sizes and offsets with the compiled side.
 */
#ifndef GUARD_ABI_H
#define GUARD_ABI_H

#define GUARD_PATH_MAX 256
#define GUARD_COMM_LEN 16

enum guard_hook {
	GUARD_HOOK_EXEC = 0,
	GUARD_HOOK_FILE_OPEN = 1,
	GUARD_HOOK_CONNECT = 2,
	GUARD_HOOK_PTRACE = 3,
	GUARD_HOOK_COUNT = 4,
};

enum guard_mode {
	GUARD_MODE_OFF = 0,
	GUARD_MODE_DETECT = 1,
	GUARD_MODE_ENFORCE = 2,
};

enum guard_decision {
	GUARD_DECISION_ALLOWED = 0,
	GUARD_DECISION_DENIED = 1,
	GUARD_DECISION_WOULD_BLOCK = 2,
};

enum guard_counter {
	GUARD_CNT_CALLS = 0,
	GUARD_CNT_DENIES = 1,
	GUARD_CNT_WOULD_BLOCK = 2,
	GUARD_CNT_RINGBUF_DROPS = 3,
	GUARD_CNT_PATH_TOO_LONG = 4,
	GUARD_CNT_COUNT = 5,
};

/* Per-hook settings; index 0 of guard_config. */
struct guard_config {
	__u32 mode[GUARD_HOOK_COUNT];
	__u32 agent_tgid; /* never governed */
	__u32 flags;
};

/* Key of guard_deny_paths: a NUL-terminated path, zero-padded. */
struct guard_path_key {
	char path[GUARD_PATH_MAX];
};

/* Key of guard_deny_inodes: an executable by (device, inode), so renames and hard links match too. */
struct guard_inode_key {
	__u64 dev;
	__u64 ino;
};

struct guard_verdict {
	__u32 rule_id;
	__u32 flags;
};

/* One ring-buffer record. */
struct guard_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 hook;
	__u32 decision;
	__u32 rule_id;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u64 dev;
	__u64 ino;
	char comm[GUARD_COMM_LEN];
	char path[GUARD_PATH_MAX];
};

#endif /* GUARD_ABI_H */
