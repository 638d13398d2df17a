/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Entity lineage for armed verdicts: a new process joins its parent's group; a process leaving
 * (its thread-group leader exiting) leaves the group, so a recycled pid never inherits a verdict.
 * A protected process's exit removes it from guard_ptrace_targets (guard_protect_at_exec put it
 * there, or user space did), so a recycled pid is not protected. A thread a protected process
 * starts is a target by its own id too (the compat plane judges the id the caller names; the LSM
 * hook sees the tgid anyway), until that thread exits.
 */

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
	void *parent = (void *)ctx->args[0], *child = (void *)ctx->args[1];
	__u32 ptgid = 0, ctgid = 0, cpid = 0;
	struct guard_entity *entity;
	struct guard_verdict *target, copy;

	bpf_probe_read_kernel(&ptgid, sizeof(ptgid), (char *)parent + GUARD_OFF_TASK_TGID);
	bpf_probe_read_kernel(&ctgid, sizeof(ctgid), (char *)child + GUARD_OFF_TASK_TGID);
	if (ptgid == ctgid) { /* a thread */
		target = guard_ptrace_targets.lookup(&ptgid);
		if (target) {
			copy = *target;
			bpf_probe_read_kernel(&cpid, sizeof(cpid),
					      (char *)child + GUARD_OFF_TASK_PID);
			guard_ptrace_targets.update(&cpid, &copy);
		}
		return 0;
	}
	entity = guard_entities.lookup(&ptgid);
	if (entity) {
		struct guard_entity copy = *entity;

		guard_entities.update(&ctgid, &copy);
	}
	return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_exit)
{
	void *task = (void *)ctx->args[0];
	__u32 pid = 0, tgid = 0;

	bpf_probe_read_kernel(&pid, sizeof(pid), (char *)task + GUARD_OFF_TASK_PID);
	bpf_probe_read_kernel(&tgid, sizeof(tgid), (char *)task + GUARD_OFF_TASK_TGID);
	if (pid == tgid)
		guard_entities.delete(&tgid);
	guard_ptrace_targets.delete(&pid); /* the process, or one of its threads */
	return 0;
}
