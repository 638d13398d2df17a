/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Entity lineage for armed verdicts: a new process joins its parent's group; a process leaving
 * (its thread-group leader exiting) leaves the group, so a recycled pid never inherits a verdict.
 */

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
	void *parent = (void *)ctx->args[0], *child = (void *)ctx->args[1];
	__u32 ptgid = 0, ctgid = 0;
	struct guard_entity *entity;

	bpf_probe_read_kernel(&ptgid, sizeof(ptgid), (char *)parent + GUARD_OFF_TASK_TGID);
	bpf_probe_read_kernel(&ctgid, sizeof(ctgid), (char *)child + GUARD_OFF_TASK_TGID);
	if (ptgid == ctgid)
		return 0; /* a thread */
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
	return 0;
}
