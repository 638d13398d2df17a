/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ptrace_access_check: deny attaching to a protected process, for governed tasks.
 *
 * Only attach-class access (PTRACE_ATTACH/SEIZE, /proc/<pid>/mem, process_vm_*) is judged; read
 * access (ps reading /proc/<pid>/cmdline, ...) is never denied. The target is the tracee's tgid.
 */

LSM_PROBE(ptrace_access_check, struct task_struct *child, unsigned int mode)
{
	struct guard_ctx gc;
	__u32 tgid = 0;

	if (!guard_enter(GUARD_HOOK_PTRACE, &gc) || !(mode & GUARD_PTRACE_MODE_ATTACH) || !child)
		return 0;
	bpf_probe_read_kernel(&tgid, sizeof(tgid), (char *)child + GUARD_OFF_TASK_TGID);
	gc.target_tgid = tgid;
	if (guard_dynamic_lookup(&gc))
		return guard_finish(&gc, 0);
	guard_take(&gc, guard_ptrace_targets.lookup(&tgid), GUARD_MATCH_PTRACE);
	return guard_finish(&gc, 0);
}
