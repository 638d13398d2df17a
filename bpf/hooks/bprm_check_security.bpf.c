/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bprm_check_security: deny executing a binary, for governed tasks, before it runs.
 *
 * Order: mode (off returns at once) -> scope -> (device, inode) verdict -> exact path verdict.
 * The inode verdict catches a renamed copy's hard links, a symlink's target and relative or
 * dotted paths alike, since it names the file, not a spelling of its path. On internal failure
 * (no config, no scratch buffer, unresolvable path) the hook allows: it never denies by accident.
 */

LSM_PROBE(bprm_check_security, struct linux_binprm *bprm)
{
	const __u32 hook = GUARD_HOOK_EXEC;
	__u32 mode = guard_enter(hook);
	struct guard_path_key *raw, *key;
	struct guard_verdict *verdict;
	struct guard_inode_key inode_key = {};
	struct file *file;
	void *inode, *sb;
	__u32 dev = 0;

	if (mode == GUARD_MODE_OFF)
		return 0;
	file = *(struct file **)((char *)bprm + GUARD_OFF_BINPRM_FILE);
	if (!file)
		return 0;
	bpf_probe_read_kernel(&inode, sizeof(inode), (char *)file + GUARD_OFF_FILE_F_INODE);
	if (inode) {
		bpf_probe_read_kernel(&inode_key.ino, sizeof(inode_key.ino), (char *)inode + GUARD_OFF_INODE_I_INO);
		bpf_probe_read_kernel(&sb, sizeof(sb), (char *)inode + GUARD_OFF_INODE_I_SB);
		if (sb)
			bpf_probe_read_kernel(&dev, sizeof(dev), (char *)sb + GUARD_OFF_SB_S_DEV);
		inode_key.dev = dev;
	}
	if (!guard_path_buffers(&raw, &key))
		return 0;
	if (guard_file_path(hook, file, raw, key))
		key->path[0] = 0;
	verdict = guard_deny_inodes.lookup(&inode_key);
	if (!verdict && key->path[0])
		verdict = guard_deny_paths.lookup(key);
	if (!verdict)
		return 0;
	return guard_decide(hook, mode, verdict->rule_id, key->path, &inode_key);
}
