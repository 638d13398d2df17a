/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * file_open: deny opening a file, for governed tasks, by armed verdict, (device, inode), exact
 * path, prefix, suffix or DFA (contains / glob) — see guard_file_hook. The path is bpf_d_path's:
 * absolute, with symlinks, "..", "." and "//" already resolved by the kernel.
 */

LSM_PROBE(file_open, struct file *file)
{
	return guard_file_hook(GUARD_HOOK_FILE_OPEN, file);
}
