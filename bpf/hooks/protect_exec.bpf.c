/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Protection at exec on the LSM plane (guard_protect_at_exec; compat's exec hook calls it too). */

RAW_TRACEPOINT_PROBE(sched_process_exec)
{
	guard_protect_at_exec((void *)ctx->args[0], (void *)ctx->args[2]);
	return 0;
}
