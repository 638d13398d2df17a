/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ptrace without LSM: at the entry of ptrace(PTRACE_ATTACH | PTRACE_SEIZE) and process_vm_readv /
 * process_vm_writev, the target pid is judged by armed and protected-process verdicts. A deny under
 * enforce sends SIGKILL to the caller before the syscall body runs: process_vm_* then stops at its
 * first page (a fatal signal is pending) and moves no data; ptrace attaches but the tracer never
 * returns to user space, and its death detaches it (PTRACE_ATTACH's SIGSTOP may still stop the
 * target). The target is the pid as the caller named it (the LSM hook sees the tracee's tgid).
 */

#define GUARD_NR_PTRACE 101
#define GUARD_NR_PROCESS_VM_READV 310
#define GUARD_NR_PROCESS_VM_WRITEV 311
#define GUARD_PTRACE_ATTACH 16
#define GUARD_PTRACE_SEIZE 0x4206

RAW_TRACEPOINT_PROBE(sys_enter)
{
	void *regs = (void *)ctx->args[0];
	long nr = (long)ctx->args[1];
	__u64 request = 0, pid = 0;
	struct guard_ctx gc;
	__u32 tgid;

	if (nr != GUARD_NR_PTRACE && nr != GUARD_NR_PROCESS_VM_READV &&
	    nr != GUARD_NR_PROCESS_VM_WRITEV)
		return 0;
	if (nr == GUARD_NR_PTRACE) {
		bpf_probe_read_kernel(&request, sizeof(request),
				      (char *)regs + GUARD_OFF_PT_REGS_DI);
		if (request != GUARD_PTRACE_ATTACH && request != GUARD_PTRACE_SEIZE)
			return 0;
		bpf_probe_read_kernel(&pid, sizeof(pid), (char *)regs + GUARD_OFF_PT_REGS_SI);
	} else {
		bpf_probe_read_kernel(&pid, sizeof(pid), (char *)regs + GUARD_OFF_PT_REGS_DI);
	}
	if (!guard_enter(GUARD_HOOK_PTRACE, &gc))
		return 0;
	tgid = (__u32)pid;
	gc.target_tgid = tgid;
	if (!guard_dynamic_lookup(&gc))
		guard_take(&gc, guard_ptrace_targets.lookup(&tgid), GUARD_MATCH_PTRACE);
	return guard_finish_as(&gc, 0, GUARD_REACT_KILL);
}
