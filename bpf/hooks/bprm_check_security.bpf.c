/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bprm_check_security: deny executing a binary, for governed tasks, before it runs.
 *
 * The (device, inode) verdict catches a renamed copy's hard links, a symlink's target and every
 * spelling of the path, since it names the file; path verdicts see the kernel-resolved path of
 * the opened binary. On internal failure the hook allows, and an unresolvable path is counted and
 * reported (guard_file_hook).
 */

LSM_PROBE(bprm_check_security, struct linux_binprm *bprm)
{
	/* A direct load keeps the BTF type of the pointer, which bpf_d_path requires. */
	struct file *file = *(struct file **)((char *)bprm + GUARD_OFF_BINPRM_FILE);

	return guard_file_hook(GUARD_HOOK_EXEC, file);
}
