/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * file_open: deny opening a file whose path is on the deny list, for governed tasks.
 *
 * Order: mode (off returns at once) -> scope -> exact path verdict -> decision.
 * On internal failure (no config, no scratch buffer, d_path error) the hook allows and, for an
 * over-long or unresolvable path, counts GUARD_CNT_PATH_TOO_LONG: it never denies by accident.
 * bpf_d_path leaves stale bytes after the NUL, so the path is copied into a zeroed key buffer.
 */

LSM_PROBE(file_open, struct file *file)
{
	const __u32 hook = GUARD_HOOK_FILE_OPEN;
	__u32 mode = guard_enter(hook);
	struct guard_path_key *raw, *key;
	struct guard_verdict *verdict;

	if (mode == GUARD_MODE_OFF || !guard_path_buffers(&raw, &key))
		return 0;
	if (guard_file_path(hook, file, raw, key))
		return 0;
	verdict = guard_deny_paths.lookup(key);
	if (!verdict)
		return 0;
	return guard_decide(hook, mode, verdict->rule_id, key->path, 0);
}
