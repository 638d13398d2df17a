/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * path_chmod: telemetry only, never a deny (it always returns 0). chmod, fchmod and fchmodat all
 * reach it before the mode changes. For a governed task, while the file_open hook is not off and
 * has GUARD_HF_EMIT_CHMOD, it emits a GUARD_EVENT_CHMOD event: the file's (device, inode), the new
 * mode and the path. bpf_d_path is not allowed on this hook, so the path is walked
 * (guard_walk.h); a path that cannot be walked is flagged GUARD_EVF_PATH_TOO_LONG and the event
 * still goes out. The event is counted (emitted, drops, over-long paths) under file_open, never
 * as a file_open call. Built only where the kernel's BTF has the hook (GUARD_HAS_PATH_CHMOD, set by
 * the loader, which reports its absence).
 */

#ifdef GUARD_HAS_PATH_CHMOD
LSM_PROBE(path_chmod, const struct path *path, unsigned short mode)
{
	__u32 zero = 0, one = 1;
	struct guard_config *cfg = guard_config.lookup(&zero);
	struct guard_lpm_path_key *key;
	struct guard_ctx gc;
	void *dentry, *inode = 0;

	if (!cfg || !path)
		return 0;
	if (cfg->mode[GUARD_HOOK_FILE_OPEN] == GUARD_MODE_OFF ||
	    !(cfg->hook_flags[GUARD_HOOK_FILE_OPEN] & GUARD_HF_EMIT_CHMOD) || !guard_in_scope(cfg))
		return 0;
	__builtin_memset(&gc, 0, sizeof(gc));
	gc.hook = GUARD_HOOK_FILE_OPEN;
	gc.kind = GUARD_EVENT_CHMOD;
	gc.mode = cfg->mode[GUARD_HOOK_FILE_OPEN];
	gc.file_mode = mode;
	dentry = guard_read_ptr(path, GUARD_OFF_PATH_DENTRY);
	if (dentry)
		inode = guard_read_ptr(dentry, GUARD_OFF_DENTRY_D_INODE);
	if (inode)
		guard_inode_ids(&gc, inode);
	key = guard_scratch.lookup(&one);
	if (key && guard_walk_path(&gc, path, key) == 0)
		guard_emit(&gc, GUARD_DECISION_ALLOWED, 0, GUARD_MATCH_ALL, key->path);
	else
		guard_emit(&gc, GUARD_DECISION_ALLOWED, 0, GUARD_MATCH_ALL, 0);
	return 0;
}
#endif
