/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef GUARD_HELPERS_H
#define GUARD_HELPERS_H

#define GUARD_EPERM 1

static __always_inline void guard_count(__u32 hook, __u32 counter)
{
	__u32 idx = hook * GUARD_CNT_COUNT + counter;
	__u64 *value = guard_counters.lookup(&idx);

	if (value)
		*value += 1;
}

/* The hook's mode, or OFF when the configuration is missing (an empty map means allow). */
static __always_inline __u32 guard_mode(__u32 hook, struct guard_config **out)
{
	__u32 zero = 0;
	struct guard_config *cfg = guard_config.lookup(&zero);

	*out = cfg;
	if (!cfg || hook >= GUARD_HOOK_COUNT)
		return GUARD_MODE_OFF;
	return cfg->mode[hook];
}

/* Is the current task governed? Scope is by cgroup; the agent itself is always exempt. */
static __always_inline int guard_in_scope(struct guard_config *cfg)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 cgroup_id;

	if (tgid == cfg->agent_tgid)
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	return guard_scope_cgroups.lookup(&cgroup_id) != 0;
}

/*
 * Every hook's preamble: the hook's mode if the current task is governed, else OFF. Off returns
 * before anything is counted; governed or not, an active hook counts the call.
 */
static __always_inline __u32 guard_enter(__u32 hook)
{
	struct guard_config *cfg;
	__u32 mode = guard_mode(hook, &cfg);

	if (mode == GUARD_MODE_OFF || !cfg)
		return GUARD_MODE_OFF;
	guard_count(hook, GUARD_CNT_CALLS);
	if (!guard_in_scope(cfg))
		return GUARD_MODE_OFF;
	return mode;
}

/* The two per-CPU path buffers (d_path output, zero-padded key); 0 when unavailable. */
static __always_inline int guard_path_buffers(struct guard_path_key **raw, struct guard_path_key **key)
{
	__u32 raw_idx = 0, key_idx = 1;

	*raw = guard_scratch.lookup(&raw_idx);
	*key = guard_scratch.lookup(&key_idx);
	return *raw && *key;
}

/* Emit a decision to the ring buffer; a full buffer is counted, never blocks the hook. */
static __always_inline void guard_emit(__u32 hook, __u32 decision, __u32 rule_id, const char *path,
				       const struct guard_inode_key *inode)
{
	struct guard_event *ev = guard_events.ringbuf_reserve(sizeof(struct guard_event));
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (!ev) {
		guard_count(hook, GUARD_CNT_RINGBUF_DROPS);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->hook = hook;
	ev->decision = decision;
	ev->rule_id = rule_id;
	ev->pid = (__u32)pid_tgid;
	ev->tgid = pid_tgid >> 32;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->dev = inode ? inode->dev : 0;
	ev->ino = inode ? inode->ino : 0;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	if (path)
		bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), path);
	else
		ev->path[0] = 0;
	guard_events.ringbuf_submit(ev, 0);
}

/* Apply a matched verdict under the hook's mode: deny (enforce) or record a would-block (detect). */
static __always_inline int guard_decide(__u32 hook, __u32 mode, __u32 rule_id, const char *path,
					const struct guard_inode_key *inode)
{
	if (mode == GUARD_MODE_ENFORCE) {
		guard_count(hook, GUARD_CNT_DENIES);
		guard_emit(hook, GUARD_DECISION_DENIED, rule_id, path, inode);
		return -GUARD_EPERM;
	}
	guard_count(hook, GUARD_CNT_WOULD_BLOCK);
	guard_emit(hook, GUARD_DECISION_WOULD_BLOCK, rule_id, path, inode);
	return 0;
}

/* The path of a file, NUL-terminated and zero-padded into key (bpf_d_path leaves stale bytes). */
static __always_inline int guard_file_path(__u32 hook, struct file *file, struct guard_path_key *raw,
					   struct guard_path_key *key)
{
	long len = bpf_d_path((struct path *)((char *)file + GUARD_OFF_FILE_F_PATH), raw->path, sizeof(raw->path));

	if (len <= 0 || len > GUARD_PATH_MAX) {
		guard_count(hook, GUARD_CNT_PATH_TOO_LONG);
		return -1;
	}
	__builtin_memset(key->path, 0, sizeof(key->path));
	bpf_probe_read_kernel_str(key->path, sizeof(key->path), raw->path);
	return 0;
}

#endif /* GUARD_HELPERS_H */
