/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mmap_file: a file mapped executable without exec(2) of it — `ld.so /tmp/x`, dlopen — meets the
 * exec hook's identity verdicts: the file's own armed verdict (not an entity's "every exec": its
 * libraries must still load), its (device, inode), and the directories it lies in
 * (guard_subtrees). The rules that name a file or a directory reach its mappings; name and pattern
 * verdicts on the path (exact, prefix, suffix, DFA) say which program may run and stay with exec,
 * since a shared library is not the program. Every library load passes here, so only a deny is
 * reported (no notify, no interest events) and the call is not counted as an exec; nor is the
 * kernel's own mapping of the program an exec started (current->mm->exe_file), which
 * bprm_check_security judged. The event is an exec event flagged GUARD_EVF_MMAP that names the file
 * by (device, inode): a path walk beside the subtree walk does not pass the 6.1 verifier's budget.
 */

static __always_inline int guard_exec_mapping(struct file *file)
{
	struct guard_ctx ctx;
	struct guard_dyn_verdict *v;
	struct guard_dyn_key dyn = {};
	struct guard_entity *entity;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	void *mm;

	if (!file || !guard_enter_as(GUARD_HOOK_EXEC, &ctx, 0))
		return 0;
	/* the kernel mapping the program an exec just started: that exec was judged already */
	mm = guard_read_ptr((void *)bpf_get_current_task(), GUARD_OFF_TASK_MM);
	if (mm && guard_read_ptr(mm, GUARD_OFF_MM_EXE_FILE) == (void *)file)
		return 0;
	ctx.flags |= GUARD_EVF_MMAP;
	ctx.hook_flags &= ~(GUARD_HF_EMIT_ALL | GUARD_HF_LONG_PATH_DENY);
	guard_file_inode(&ctx, file);
	entity = guard_entities.lookup(&tgid);
	if (entity && (ctx.inode.dev || ctx.inode.ino)) {
		dyn.group = entity->group;
		dyn.hook = GUARD_HOOK_EXEC;
		dyn.dev = ctx.inode.dev;
		dyn.ino = ctx.inode.ino;
		v = guard_dynamic.lookup(&dyn);
		if (v && (!v->expires_ns || bpf_ktime_get_ns() <= v->expires_ns))
			guard_take_rule(&ctx, v->rule_id, v->action, GUARD_MATCH_DYNAMIC);
	}
	if (!ctx.denied && !guard_take(&ctx, guard_inodes.lookup(&ctx.inode), GUARD_MATCH_INODE))
		guard_subtree_lookup(&ctx, guard_file_dentry(file));
	ctx.notify_rule = 0;
	if (!ctx.denied)
		return 0;
	return guard_finish(&ctx, 0);
}

LSM_PROBE(mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
	  unsigned long flags)
{
	if (!(prot & GUARD_PROT_EXEC))
		return 0;
	return guard_exec_mapping(file);
}
