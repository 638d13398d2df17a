/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * File deletions and renames for rules on files (GUARD_CF_FILE_CHANGES, both planes): at a
 * governed task's entry to unlink/unlinkat/rename/renameat/renameat2 the arguments are kept (per
 * thread); at its exit, if the call succeeded, the names it was given are read from the caller's
 * memory and reported with the directory each relative name is relative to. Telemetry only: never
 * a deny (file_open decides what may be opened, path_names.bpf.c what may be renamed or linked).
 * x86-64 syscall numbers and registers, as the compat plane's other syscall programs.
 */

#define GUARD_NR_RENAME 82
#define GUARD_NR_UNLINK 87
#define GUARD_NR_UNLINKAT 263
#define GUARD_NR_RENAMEAT 264
#define GUARD_NR_RENAMEAT2 316
#define GUARD_AT_FDCWD -100

struct guard_pending_change {
	__u64 path;	/* the file (deletion), the new name (rename) */
	__u64 old_path; /* rename: the old name */
	__s64 dirfd;
	__s64 old_dirfd;
	__u32 kind;
	__u32 pad;
};

BPF_HASH(guard_changes_pending, __u64, struct guard_pending_change, 8192);

static __always_inline __u64 guard_reg(const void *regs, __u32 offset)
{
	__u64 value = 0;

	bpf_probe_read_kernel(&value, sizeof(value), (const char *)regs + offset);
	return value;
}

int guard_change_enter(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0];
	long nr = (long)ctx->args[1];
	struct guard_pending_change p = {};
	__u64 key;

	if (nr != GUARD_NR_UNLINK && nr != GUARD_NR_UNLINKAT && nr != GUARD_NR_RENAME &&
	    nr != GUARD_NR_RENAMEAT && nr != GUARD_NR_RENAMEAT2)
		return 0;
	if (!regs || !(guard_proc_wanted() & GUARD_CF_FILE_CHANGES))
		return 0;
	p.dirfd = p.old_dirfd = GUARD_AT_FDCWD;
	if (nr == GUARD_NR_UNLINK) {
		p.kind = GUARD_PROC_DELETE;
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
	} else if (nr == GUARD_NR_UNLINKAT) {
		p.kind = GUARD_PROC_DELETE;
		p.dirfd = (__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI);
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
	} else if (nr == GUARD_NR_RENAME) {
		p.kind = GUARD_PROC_RENAME;
		p.old_path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
	} else {
		p.kind = GUARD_PROC_RENAME;
		p.old_dirfd = (__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI);
		p.old_path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
		p.dirfd = (__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DX);
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_R10);
	}
	key = bpf_get_current_pid_tgid();
	guard_changes_pending.update(&key, &p);
	return 0;
}

/* The path a relative name is relative to: the working directory, or the directory fd's. */
static __always_inline void guard_change_base(struct guard_file_event *ev, char *out, __s64 dirfd)
{
	void *task = (void *)bpf_get_current_task(), *fs, *files, *fdt, *fds, *file = 0;
	__u32 max_fds = 0;

	if (dirfd == GUARD_AT_FDCWD) {
		fs = guard_read_ptr(task, GUARD_OFF_TASK_FS);
		guard_proc_path(fs ? (char *)fs + GUARD_OFF_FS_PWD : 0, out,
				GUARD_PF_CWD_UNRESOLVED, &ev->proc);
		return;
	}
	files = guard_read_ptr(task, GUARD_OFF_TASK_FILES);
	fdt = files ? guard_read_ptr(files, GUARD_OFF_FILES_FDT) : 0;
	if (fdt)
		bpf_probe_read_kernel(&max_fds, sizeof(max_fds),
				      (char *)fdt + GUARD_OFF_FDTABLE_MAX_FDS);
	if (fdt && dirfd >= 0 && (__u64)dirfd < max_fds) {
		fds = guard_read_ptr(fdt, GUARD_OFF_FDTABLE_FD);
		if (fds)
			file = guard_read_ptr(fds, (__u32)dirfd * sizeof(void *));
	}
	guard_proc_path(file ? (char *)file + GUARD_OFF_FILE_F_PATH : 0, out,
			GUARD_PF_CWD_UNRESOLVED, &ev->proc);
}

int guard_change_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct guard_pending_change *pending, p;
	struct guard_file_event *ev;
	long ret = (long)ctx->args[1];
	__u64 key = bpf_get_current_pid_tgid();

	pending = guard_changes_pending.lookup(&key);
	if (!pending)
		return 0;
	p = *pending;
	guard_changes_pending.delete(&key);
	if (ret != 0)
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_file_event));
	if (!ev) {
		guard_count(GUARD_HOOK_FILE_OPEN, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(), p.kind);
	ev->dir[0] = ev->old_dir[0] = ev->old_path[0] = 0;
	if (bpf_probe_read_user_str(ev->path, sizeof(ev->path), (void *)p.path) < 0)
		ev->path[0] = 0;
	if (ev->path[0] != '/')
		guard_change_base(ev, ev->dir, p.dirfd);
	if (p.kind == GUARD_PROC_RENAME) {
		if (bpf_probe_read_user_str(ev->old_path, sizeof(ev->old_path),
					    (void *)p.old_path) < 0)
			ev->old_path[0] = 0;
		if (ev->old_path[0] != '/')
			guard_change_base(ev, ev->old_dir, p.old_dirfd);
	}
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}
