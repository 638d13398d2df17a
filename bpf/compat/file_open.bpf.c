/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * file open without LSM: at the exit of open/openat/openat2/creat/open_by_handle_at with a new fd,
 * the opened file is found in the task's fd table and judged like the LSM file_open hook; a deny
 * under enforce sends SIGKILL, which the task takes before the syscall returns, so no user
 * instruction sees the fd. (Another thread of the process could race it; the whole group dies.)
 */

#define GUARD_NR_OPEN 2
#define GUARD_NR_CREAT 85
#define GUARD_NR_OPENAT 257
#define GUARD_NR_OPEN_BY_HANDLE_AT 304
#define GUARD_NR_OPENAT2 437

RAW_TRACEPOINT_PROBE(sys_exit)
{
	void *regs = (void *)ctx->args[0], *task, *files, *fdt, *fds, *file;
	long ret = (long)ctx->args[1], nr = 0;
	__u32 max_fds = 0;

	if (ret < 0 || !regs)
		return 0;
	bpf_probe_read_kernel(&nr, sizeof(nr), (char *)regs + GUARD_OFF_PT_REGS_ORIG_AX);
	if (nr != GUARD_NR_OPENAT && nr != GUARD_NR_OPEN && nr != GUARD_NR_OPENAT2 &&
	    nr != GUARD_NR_CREAT && nr != GUARD_NR_OPEN_BY_HANDLE_AT)
		return 0;
	task = (void *)bpf_get_current_task();
	files = guard_read_ptr(task, GUARD_OFF_TASK_FILES);
	if (!files)
		return 0;
	fdt = guard_read_ptr(files, GUARD_OFF_FILES_FDT);
	if (!fdt)
		return 0;
	bpf_probe_read_kernel(&max_fds, sizeof(max_fds), (char *)fdt + GUARD_OFF_FDTABLE_MAX_FDS);
	if ((__u64)ret >= max_fds)
		return 0;
	fds = guard_read_ptr(fdt, GUARD_OFF_FDTABLE_FD);
	if (!fds)
		return 0;
	file = guard_read_ptr(fds, (__u32)ret * sizeof(void *));
	if (!file)
		return 0;
	return guard_compat_file(GUARD_HOOK_FILE_OPEN, file);
}
