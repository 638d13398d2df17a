/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * exec without LSM: sched_process_exec fires after the point of no return of execve, in the task
 * itself, before it returns to user space. The image (bprm->file) is judged by armed, (device,
 * inode) and path verdicts; a deny under enforce sends SIGKILL, so the new program never runs a
 * user instruction. The exec itself has happened (the old image is gone): a kill reaction, not a
 * deny. For a script the image is its interpreter: name the interpreter or the script's inode.
 * A protected process is protected here, at its exec (guard_protect_at_exec).
 */

RAW_TRACEPOINT_PROBE(sched_process_exec)
{
	void *bprm = (void *)ctx->args[2];

	if (!bprm)
		return 0;
	guard_protect_at_exec((void *)ctx->args[0], bprm);
	return guard_compat_file(GUARD_HOOK_EXEC, guard_read_ptr(bprm, GUARD_OFF_BINPRM_FILE));
}
