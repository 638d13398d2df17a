/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test harness, compiled only with -DGUARD_TEST_HARNESS: runs the file hooks' own path-table code
 * (guard_path_lookups: exact, prefix, suffix, DFA) on a path written by user space, through
 * BPF_PROG_TEST_RUN, so tests can compare the kernel's answer with user space's on many paths.
 */

struct guard_test_input {
	__u32 hook;
	__u32 len;
	char path[GUARD_PATH_MAX];
};

struct guard_test_output {
	__u32 deny_rule;
	__u32 deny_match;
	__u32 notify_rule;
	__u32 notify_match;
};

BPF_ARRAY(guard_test_input, struct guard_test_input, 1);
BPF_ARRAY(guard_test_output, struct guard_test_output, 1);

int guard_test_paths(struct bpf_raw_tracepoint_args *args)
{
	__u32 zero = 0;
	struct guard_test_input *in = guard_test_input.lookup(&zero);
	struct guard_test_output *out = guard_test_output.lookup(&zero);
	struct guard_lpm_path_key *raw, *key, *rev;
	struct guard_ctx ctx;

	if (!in || !out || !guard_path_buffers(&raw, &key, &rev))
		return 0;
	__builtin_memset(&ctx, 0, sizeof(ctx));
	__builtin_memset(out, 0, sizeof(*out));
	if (in->len == 0 || in->len >= GUARD_PATH_MAX)
		return 0;
	ctx.hook = in->hook & (GUARD_HOOK_COUNT - 1);
	ctx.path_len = in->len;
	{
		struct guard_config *cfg = guard_config.lookup(&zero);

		if (cfg)
			ctx.dfa_slot = cfg->dfa_slot[ctx.hook];
	}
	bpf_probe_read_kernel(key->path, sizeof(key->path), in->path);
	key->prefixlen = 8 * GUARD_PATH_MAX;
	guard_path_lookups(&ctx, key, rev);
	out->deny_rule = ctx.deny_rule;
	out->deny_match = ctx.deny_match;
	out->notify_rule = ctx.notify_rule;
	out->notify_match = ctx.notify_match;
	return 0;
}
