/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * path_link / path_rename: no new name for a file that file_open denies. A hard link made to it,
 * or the file renamed, is judged as an open of it would be — armed, inode and path verdicts of
 * file_open, with its rule's mode and exemptions — so a rule that names files by a pattern (a key
 * as `.ssh/id_*` under any directory) cannot be walked around by giving the file a name the
 * pattern does not match. No subtree walk here: beside the path walk it does not pass the 6.1
 * verifier's budget, and the walked path meets a directory's prefix or glob anyway.
 * bpf_d_path is not allowed on these hooks: the path is walked from the dentry (guard_walk.h).
 * Only a deny is reported (no notify, no interest events); the event is a file_open event flagged
 * GUARD_EVF_LINK or GUARD_EVF_RENAME. What replaces a protected name (a rename over it) is a new
 * file, judged when it is opened. Built where the kernel has the path hooks (GUARD_HAS_PATH_NAMES).
 */

#ifdef GUARD_HAS_PATH_NAMES
static __always_inline int guard_new_name(void *mnt, void *dentry, __u32 evflag)
{
	struct guard_lpm_path_key *raw = 0, *key = 0, *rev = 0;
	struct guard_ctx ctx;
	char path[16] = {}; /* a struct path: mnt and dentry at their BTF offsets */
	void *inode;
	int have_path = 0;

	_Static_assert(GUARD_OFF_PATH_MNT + 8 <= 16 && GUARD_OFF_PATH_DENTRY + 8 <= 16,
		       "struct path holds two pointers");
	if (!mnt || !dentry || !guard_enter(GUARD_HOOK_FILE_OPEN, &ctx))
		return 0;
	ctx.flags |= evflag;
	ctx.hook_flags &= ~(GUARD_HF_EMIT_ALL | GUARD_HF_EMIT_CREATED);
	inode = guard_read_ptr(dentry, GUARD_OFF_DENTRY_D_INODE);
	if (inode)
		guard_inode_ids(&ctx, inode);
	__builtin_memcpy(&path[GUARD_OFF_PATH_MNT], &mnt, sizeof(mnt));
	__builtin_memcpy(&path[GUARD_OFF_PATH_DENTRY], &dentry, sizeof(dentry));
#ifndef GUARD_NO_D_PATH /* without path verdicts (5.10) the inode and subtree verdicts judge */
	if (guard_path_buffers(&raw, &key, &rev))
		have_path = guard_walk_path(&ctx, path, key) == 0;
#endif
	/* dynamic, inode and path verdicts: no subtree walk beside the path walk (6.1's verifier) */
	guard_file_lookups(&ctx, 0, have_path, key, rev);
	ctx.notify_rule = 0;
	return guard_finish(&ctx, have_path && key ? key->path : 0);
}

LSM_PROBE(path_link, struct dentry *old_dentry, const struct path *new_dir,
	  struct dentry *new_dentry)
{
	if (!new_dir)
		return 0;
	return guard_new_name(guard_read_ptr(new_dir, GUARD_OFF_PATH_MNT), old_dentry,
			      GUARD_EVF_LINK);
}

LSM_PROBE(path_rename, const struct path *old_dir, struct dentry *old_dentry)
{
	if (!old_dir)
		return 0;
	return guard_new_name(guard_read_ptr(old_dir, GUARD_OFF_PATH_MNT), old_dentry,
			      GUARD_EVF_RENAME);
}
#endif
