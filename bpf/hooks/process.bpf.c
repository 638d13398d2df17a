/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Process events for the agent's process table and for rules on processes: a governed process's
 * fork, exec and exit, each with what the kernel knows at that moment (GUARD_CF_PROCESS_EVENTS,
 * both planes). The three programs are attached by name (guard_proc_*), beside the lineage and
 * exec programs on the same tracepoints, so each is verified on its own budget.
 *
 * An exec record carries the argument vector read from the new image's stack (mm->arg_start ..
 * arg_end, written by the kernel before the tracepoint: never /proc, never the next image's), its
 * count, the image's path and the working directory (by dentry walk), the credentials and the
 * controlling terminal. What does not fit is flagged (GUARD_PF_*), never silently cut.
 */

#define GUARD_PIDTYPE_PGID 2
#define GUARD_PIDTYPE_SID 3

static __always_inline __u32 guard_read_u32(const void *base, __u32 offset)
{
	__u32 value = 0;

	bpf_probe_read_kernel(&value, sizeof(value), (const char *)base + offset);
	return value;
}

/* The pid (as the initial namespace numbers it) of a signal_struct's pids[type]. */
static __always_inline __u32 guard_signal_pid(const void *signal, __u32 type)
{
	void *pid = guard_read_ptr(signal, GUARD_OFF_SIGNAL_PIDS + type * sizeof(void *));

	if (!pid)
		return 0;
	return guard_read_u32(pid, GUARD_OFF_PID_NUMBERS + GUARD_OFF_UPID_NR);
}

/* Is the reporting task governed, and are process events wanted? Returns the config flags, or 0. */
static __always_inline __u32 guard_proc_wanted(void)
{
	__u32 zero = 0;
	struct guard_config *cfg = guard_config.lookup(&zero);

	if (!cfg || !(cfg->flags & GUARD_CF_PROCESS_EVENTS) || !guard_in_scope(cfg))
		return 0;
	return cfg->flags;
}

/* The header every process record has: identity, lineage, credentials, session and terminal. */
static __always_inline void guard_proc_fill(struct guard_proc_event *ev, void *task, __u32 kind)
{
	void *leader, *parent, *cred, *signal, *tty, *driver;

	ev->ts_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->kind = kind;
	ev->flags = 0;
	ev->pid = guard_read_u32(task, GUARD_OFF_TASK_PID);
	ev->tgid = guard_read_u32(task, GUARD_OFF_TASK_TGID);
	ev->start_ns = 0;
	ev->parent_start_ns = 0;
	ev->ppid = 0;
	leader = guard_read_ptr(task, GUARD_OFF_TASK_GROUP_LEADER);
	if (leader)
		bpf_probe_read_kernel(&ev->start_ns, sizeof(ev->start_ns),
				      (char *)leader + GUARD_OFF_TASK_START_TIME);
	parent = guard_read_ptr(task, GUARD_OFF_TASK_REAL_PARENT);
	if (parent) {
		ev->ppid = guard_read_u32(parent, GUARD_OFF_TASK_TGID);
		leader = guard_read_ptr(parent, GUARD_OFF_TASK_GROUP_LEADER);
		if (leader)
			bpf_probe_read_kernel(&ev->parent_start_ns, sizeof(ev->parent_start_ns),
					      (char *)leader + GUARD_OFF_TASK_START_TIME);
	}
	ev->uid = ev->euid = ev->suid = ev->gid = ev->egid = ev->sgid = 0;
	ev->cap_effective = ev->cap_permitted = 0;
	cred = guard_read_ptr(task, GUARD_OFF_TASK_CRED);
	if (cred) {
		ev->uid = guard_read_u32(cred, GUARD_OFF_CRED_UID);
		ev->euid = guard_read_u32(cred, GUARD_OFF_CRED_EUID);
		ev->suid = guard_read_u32(cred, GUARD_OFF_CRED_SUID);
		ev->gid = guard_read_u32(cred, GUARD_OFF_CRED_GID);
		ev->egid = guard_read_u32(cred, GUARD_OFF_CRED_EGID);
		ev->sgid = guard_read_u32(cred, GUARD_OFF_CRED_SGID);
		/* kernel_cap_t: u32[2] before 6.3, one u64 since; the same 8 bytes either way */
		bpf_probe_read_kernel(&ev->cap_effective, sizeof(ev->cap_effective),
				      (char *)cred + GUARD_OFF_CRED_CAP_EFFECTIVE);
		bpf_probe_read_kernel(&ev->cap_permitted, sizeof(ev->cap_permitted),
				      (char *)cred + GUARD_OFF_CRED_CAP_PERMITTED);
	}
	ev->sid = ev->pgid = ev->tty_major = ev->tty_minor = 0;
	signal = guard_read_ptr(task, GUARD_OFF_TASK_SIGNAL);
	if (signal) {
		ev->sid = guard_signal_pid(signal, GUARD_PIDTYPE_SID);
		ev->pgid = guard_signal_pid(signal, GUARD_PIDTYPE_PGID);
		tty = guard_read_ptr(signal, GUARD_OFF_SIGNAL_TTY);
		if (tty) {
			driver = guard_read_ptr(tty, GUARD_OFF_TTY_DRIVER);
			if (driver) {
				ev->tty_major = guard_read_u32(driver, GUARD_OFF_TTY_DRIVER_MAJOR);
				ev->tty_minor =
					guard_read_u32(driver, GUARD_OFF_TTY_DRIVER_MINOR_START) +
					guard_read_u32(tty, GUARD_OFF_TTY_INDEX);
			}
		}
	}
	ev->exit_code = 0;
	ev->argc = 0;
	ev->args_len = 0;
	ev->env_len = 0;
	ev->pad = 0;
	bpf_probe_read_kernel(ev->comm, sizeof(ev->comm), (char *)task + GUARD_OFF_TASK_COMM);
}

/* A new process (not a thread): reported as the child, whose parent is the forking process. */
int guard_proc_fork(struct bpf_raw_tracepoint_args *ctx)
{
	void *child = (void *)ctx->args[1];
	struct guard_proc_event *ev;

	if (!child || !guard_proc_wanted())
		return 0;
	if (guard_read_u32(child, GUARD_OFF_TASK_PID) != guard_read_u32(child, GUARD_OFF_TASK_TGID))
		return 0; /* a thread */
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_proc_event));
	if (!ev) {
		guard_count(GUARD_HOOK_EXEC, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(ev, child, GUARD_PROC_FORK);
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/* The last thread of a process leaving (signal->live reached 0): the process ended. */
int guard_proc_exit(struct bpf_raw_tracepoint_args *ctx)
{
	void *task = (void *)ctx->args[0], *signal;
	struct guard_proc_event *ev;
	__u32 code;

	if (!task || !guard_proc_wanted())
		return 0;
	signal = guard_read_ptr(task, GUARD_OFF_TASK_SIGNAL);
	if (!signal || guard_read_u32(signal, GUARD_OFF_SIGNAL_LIVE) != 0)
		return 0; /* other threads live on */
	code = guard_read_u32(task, GUARD_OFF_TASK_EXIT_CODE);
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_proc_event));
	if (!ev) {
		guard_count(GUARD_HOOK_EXEC, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(ev, task, GUARD_PROC_EXIT);
	ev->exit_code = code;
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/* Copy a walked path (or flag it) into an exec record's field. */
static __always_inline void guard_proc_path(const void *path, char *out, __u32 unresolved,
					    struct guard_proc_event *proc)
{
	struct guard_ctx gc;
	__u32 zero = 0;
	struct guard_lpm_path_key *key = guard_scratch.lookup(&zero);

	__builtin_memset(&gc, 0, sizeof(gc));
	gc.hook = GUARD_HOOK_EXEC;
	if (!key || !path || guard_walk_path(&gc, path, key) != 0) {
		out[0] = 0;
		proc->flags |= unresolved;
		return;
	}
	bpf_probe_read_kernel(out, GUARD_PATH_MAX, key->path);
}

/* An exec record is built here, then only its used bytes go to the ring (argv and env vary). */
BPF_PERCPU_ARRAY(guard_exec_scratch, struct guard_exec_event, 1);

int guard_proc_exec(struct bpf_raw_tracepoint_args *ctx)
{
	void *task = (void *)ctx->args[0], *bprm = (void *)ctx->args[2], *mm, *file, *fs;
	struct guard_exec_event *ev;
	unsigned long start = 0, end = 0;
	__u64 len, off, size;
	__u32 flags, zero = 0;

	if (!task || !bprm)
		return 0;
	flags = guard_proc_wanted();
	if (!flags)
		return 0;
	ev = guard_exec_scratch.lookup(&zero);
	if (!ev)
		return 0;
	guard_proc_fill(&ev->proc, task, GUARD_PROC_EXEC);
	ev->proc.argc = guard_read_u32(bprm, GUARD_OFF_BINPRM_ARGC);
	file = guard_read_ptr(bprm, GUARD_OFF_BINPRM_FILE);
	guard_proc_path(file ? (char *)file + GUARD_OFF_FILE_F_PATH : 0, ev->exe,
			GUARD_PF_EXE_UNRESOLVED, &ev->proc);
	fs = guard_read_ptr(task, GUARD_OFF_TASK_FS);
	guard_proc_path(fs ? (char *)fs + GUARD_OFF_FS_PWD : 0, ev->cwd, GUARD_PF_CWD_UNRESOLVED,
			&ev->proc);
	mm = guard_read_ptr(task, GUARD_OFF_TASK_MM);
	if (mm) {
		bpf_probe_read_kernel(&start, sizeof(start), (char *)mm + GUARD_OFF_MM_ARG_START);
		bpf_probe_read_kernel(&end, sizeof(end), (char *)mm + GUARD_OFF_MM_ARG_END);
	}
	len = end > start ? end - start : 0;
	if (len > GUARD_ARGS_MAX - 1) {
		len = GUARD_ARGS_MAX - 1;
		ev->proc.flags |= GUARD_PF_ARGS_TRUNCATED;
	}
	guard_barrier_var(len);
	if (len && bpf_probe_read_user(ev->strings, len & (GUARD_ARGS_MAX - 1), (void *)start) == 0)
		ev->proc.args_len = len;
	off = ev->proc.args_len & (GUARD_ARGS_MAX - 1);
	if (mm && (flags & GUARD_CF_ENV_VARS)) {
		start = end = 0;
		bpf_probe_read_kernel(&start, sizeof(start), (char *)mm + GUARD_OFF_MM_ENV_START);
		bpf_probe_read_kernel(&end, sizeof(end), (char *)mm + GUARD_OFF_MM_ENV_END);
		len = end > start ? end - start : 0;
		if (len > GUARD_ENV_MAX - 1) {
			len = GUARD_ENV_MAX - 1;
			ev->proc.flags |= GUARD_PF_ENV_TRUNCATED;
		}
		guard_barrier_var(len);
		guard_barrier_var(off);
		if (len && bpf_probe_read_user(&ev->strings[off & (GUARD_ARGS_MAX - 1)],
					       len & (GUARD_ENV_MAX - 1), (void *)start) == 0)
			ev->proc.env_len = len;
	}
	size = sizeof(*ev) - sizeof(ev->strings) + (ev->proc.args_len & (GUARD_ARGS_MAX - 1)) +
	       (ev->proc.env_len & (GUARD_ENV_MAX - 1));
	guard_barrier_var(size);
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	if (guard_procs.ringbuf_output(ev, size, 0))
		guard_count(GUARD_HOOK_EXEC, GUARD_CNT_RINGBUF_DROPS);
	return 0;
}
