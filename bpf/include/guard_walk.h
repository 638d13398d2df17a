/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A file's absolute path without bpf_d_path (which tracepoint programs, and LSM programs on hooks
 * outside the kernel's d_path allowlist such as path_chmod, may not call): walk the
 * dentry chain up to the mount's root, cross to the parent mount at its mount point, and stop at
 * the current task's root (or, for a file outside it, the namespace's root mount). Names are
 * written right to left into a per-CPU buffer, then copied zero-padded into the lookup key, so the
 * tables see what bpf_d_path gives the LSM hooks.
 */
#ifndef GUARD_WALK_H
#define GUARD_WALK_H

#ifndef GUARD_WALK_DEPTH
#define GUARD_WALK_DEPTH 16 /* path components plus mount crossings (deeper: counted as too long) */
#endif

struct guard_walk_buf {
	char data[2 * GUARD_PATH_MAX];
	__u32 len;
};

BPF_PERCPU_ARRAY(guard_walk, struct guard_walk_buf, 1);

/*
 * The path of ``path`` (a struct path *) into key->path, zero-padded, with ctx->path_len set;
 * returns 0, or -1 (counted, GUARD_EVF_PATH_TOO_LONG) when it does not fit or the walk is too deep.
 * Like d_path, the walk ends at the current task's root (current->fs->root: a chrooted task sees
 * paths from its own root), or at the namespace's root mount for a file outside that root.
 */
static __always_inline int guard_walk_path(struct guard_ctx *ctx, const void *path,
					   struct guard_lpm_path_key *key)
{
	__u32 zero = 0, pos = GUARD_PATH_MAX, i, len, off;
	struct guard_walk_buf *buf = guard_walk.lookup(&zero);
	void *vfsmnt, *dentry, *mnt, *parent, *name, *fs, *root_mnt = 0, *root_dentry = 0;
	int complete = 0;

	if (!buf || !path)
		return -1;
	fs = guard_read_ptr((void *)bpf_get_current_task(), GUARD_OFF_TASK_FS);
	if (fs) {
		root_mnt = guard_read_ptr(fs, GUARD_OFF_FS_ROOT + GUARD_OFF_PATH_MNT);
		root_dentry = guard_read_ptr(fs, GUARD_OFF_FS_ROOT + GUARD_OFF_PATH_DENTRY);
	}
	vfsmnt = guard_read_ptr(path, GUARD_OFF_PATH_MNT);
	dentry = guard_read_ptr(path, GUARD_OFF_PATH_DENTRY);
	if (!vfsmnt || !dentry)
		return -1;
	mnt = (char *)vfsmnt - GUARD_OFF_MOUNT_MNT;
	for (i = 0; i < GUARD_WALK_DEPTH; i++) {
		if (dentry == root_dentry && vfsmnt == root_mnt) {
			complete = 1;
			break;
		}
		if (dentry == guard_read_ptr(vfsmnt, GUARD_OFF_VFSMOUNT_MNT_ROOT)) {
			parent = guard_read_ptr(mnt, GUARD_OFF_MOUNT_MNT_PARENT);
			if (!parent || parent == mnt) {
				complete = 1;
				break;
			}
			dentry = guard_read_ptr(mnt, GUARD_OFF_MOUNT_MNT_MOUNTPOINT);
			mnt = parent;
			vfsmnt = (char *)mnt + GUARD_OFF_MOUNT_MNT;
			continue;
		}
		parent = guard_read_ptr(dentry, GUARD_OFF_DENTRY_D_PARENT);
		if (!parent || parent == dentry) {
			complete = 1; /* the root of a filesystem that is not mounted here */
			break;
		}
		len = 0;
		bpf_probe_read_kernel(&len, sizeof(len),
				      (char *)dentry + GUARD_OFF_DENTRY_D_NAME +
					      GUARD_OFF_QSTR_LEN);
		name = guard_read_ptr(dentry, GUARD_OFF_DENTRY_D_NAME + GUARD_OFF_QSTR_NAME);
		if (len + 1 >= pos || !name)
			break; /* does not fit (the NUL needs a byte too) */
		pos -= len;
		off = pos;
		guard_barrier_var(off);
		bpf_probe_read_kernel(&buf->data[off & (GUARD_PATH_MAX - 1)],
				      len & (GUARD_PATH_MAX - 1), name);
		pos -= 1;
		off = pos;
		guard_barrier_var(off);
		buf->data[off & (GUARD_PATH_MAX - 1)] = '/';
		dentry = parent;
	}
	if (!complete) {
		guard_count(ctx->hook, GUARD_CNT_PATH_TOO_LONG);
		ctx->flags |= GUARD_EVF_PATH_TOO_LONG;
		return -1;
	}
	__builtin_memset(key->path, 0, sizeof(key->path));
	if (pos == GUARD_PATH_MAX) {
		key->path[0] = '/';
		len = 1;
	} else {
		len = GUARD_PATH_MAX - pos;
		off = pos;
		guard_barrier_var(off);
		guard_barrier_var(len);
		bpf_probe_read_kernel(key->path, len & (GUARD_PATH_MAX - 1),
				      &buf->data[off & (GUARD_PATH_MAX - 1)]);
	}
	key->prefixlen = 8 * GUARD_PATH_MAX;
	/*
	 * Through memory: the verifier reads a map value back as an unknown scalar, so every exit of
	 * the walk reaches the table lookups (and their 255-step DFA loop) as one state, not one per
	 * path length it can prove.
	 */
	buf->len = len;
	asm volatile("" ::: "memory");
	ctx->path_len = *(volatile __u32 *)&buf->len;
	return 0;
}

/*
 * A file hook without LSM: inode, walked path, then dynamic, inode and path verdicts, as
 * guard_file_hook does; a deny under enforce kills the current task.
 */
static __always_inline int guard_compat_file(__u32 hook, const void *file)
{
	struct guard_ctx ctx;
	struct guard_lpm_path_key *raw = 0, *key = 0, *rev = 0;
	int have_path = 0;

	if (!guard_enter(hook, &ctx) || !file)
		return 0;
	guard_file_inode(&ctx, (struct file *)file);
	if (guard_path_buffers(&raw, &key, &rev))
		have_path =
			guard_walk_path(&ctx, (const char *)file + GUARD_OFF_FILE_F_PATH, key) == 0;
	return guard_file_verdicts(&ctx, guard_file_dentry((struct file *)file), have_path, key,
				   rev, GUARD_REACT_KILL);
}

#endif /* GUARD_WALK_H */
