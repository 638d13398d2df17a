/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every map of the data plane. Sizes are -D flags set by the loader from the configuration. */
#ifndef GUARD_MAPS_H
#define GUARD_MAPS_H

#ifndef GUARD_MAX_PATHS
#define GUARD_MAX_PATHS 16384
#endif
#ifndef GUARD_MAX_PREFIXES
#define GUARD_MAX_PREFIXES 4096
#endif
#ifndef GUARD_MAX_INODES
#define GUARD_MAX_INODES 16384
#endif
#ifndef GUARD_MAX_NETS
#define GUARD_MAX_NETS 16384
#endif
#ifndef GUARD_MAX_PTRACE
#define GUARD_MAX_PTRACE 1024
#endif
#ifndef GUARD_MAX_SUBTREES
#define GUARD_MAX_SUBTREES 4096
#endif
#ifndef GUARD_MAX_PROTECT
#define GUARD_MAX_PROTECT 1024
#endif
#ifndef GUARD_MAX_SCOPES
#define GUARD_MAX_SCOPES 1024
#endif
#ifndef GUARD_MAX_ENTITIES
#define GUARD_MAX_ENTITIES 65536
#endif
#ifndef GUARD_MAX_DYNAMIC
#define GUARD_MAX_DYNAMIC 65536
#endif
#ifndef GUARD_MAX_RULE_MODES
#define GUARD_MAX_RULE_MODES 4096
#endif
#ifndef GUARD_MAX_EXEMPT
#define GUARD_MAX_EXEMPT 4096
#endif
#ifndef GUARD_DFA_MAX_RULES
#define GUARD_DFA_MAX_RULES 8192
#endif
#ifndef GUARD_MAX_SUBJECT_ATOMS
#define GUARD_MAX_SUBJECT_ATOMS 16384
#endif
#ifndef GUARD_RINGBUF_PAGES
#define GUARD_RINGBUF_PAGES 64
#endif
#ifndef GUARD_PROC_RINGBUF_PAGES
#define GUARD_PROC_RINGBUF_PAGES 64
#endif
#ifndef GUARD_DECISION_RINGBUF_PAGES
#define GUARD_DECISION_RINGBUF_PAGES 64
#endif
#ifndef GUARD_MAX_DECISION_DROPS
#define GUARD_MAX_DECISION_DROPS 4096
#endif

/*
 * With GUARD_PIN_DIR (a string, set by the loader) every map but the ring buffers and the scratch
 * space is pinned there: bcc reuses a pinned map when one exists, so the verdicts, modes and
 * scope survive the agent's restart (and, with the compat backend's cgroup programs, its death).
 */
#ifdef GUARD_PIN_DIR
#define GUARD_TABLE(_type, _key, _leaf, _name, _max, _flags) \
	BPF_TABLE_PINNED(_type, _key, _leaf, _name, _max, GUARD_PIN_DIR "/" #_name, _flags)
#else
#define GUARD_TABLE(_type, _key, _leaf, _name, _max, _flags) \
	BPF_F_TABLE(_type, _key, _leaf, _name, _max, _flags)
#endif

GUARD_TABLE("array", int, struct guard_config, guard_config, 1, 0);
GUARD_TABLE("hash", __u64, __u32, guard_scope_cgroups, GUARD_MAX_SCOPES, 0);
GUARD_TABLE("hash", __u32, __u32, guard_scope_pids, GUARD_MAX_SCOPES, 0);

/* Static verdicts, filled from the compiled policy. */
GUARD_TABLE("hash", struct guard_path_key, struct guard_verdict, guard_paths, GUARD_MAX_PATHS, 0);
GUARD_TABLE("lpm_trie", struct guard_lpm_path_key, struct guard_verdict, guard_prefixes,
	    GUARD_MAX_PREFIXES, BPF_F_NO_PREALLOC);
GUARD_TABLE("lpm_trie", struct guard_lpm_path_key, struct guard_verdict, guard_suffixes,
	    GUARD_MAX_PREFIXES, BPF_F_NO_PREALLOC);
GUARD_TABLE("hash", struct guard_inode_key, struct guard_verdict, guard_inodes, GUARD_MAX_INODES,
	    0);
GUARD_TABLE("lpm_trie", struct guard_net_key, struct guard_verdict, guard_nets, GUARD_MAX_NETS,
	    BPF_F_NO_PREALLOC);
GUARD_TABLE("hash", __u32, struct guard_verdict, guard_ptrace_targets, GUARD_MAX_PTRACE, 0);
GUARD_TABLE("hash", struct guard_inode_key, struct guard_verdict, guard_subtrees,
	    GUARD_MAX_SUBTREES, 0);
/* Protected at exec (the programs add the tgid to guard_ptrace_targets; exits remove it). */
GUARD_TABLE("hash", struct guard_inode_key, struct guard_verdict, guard_protect_exes,
	    GUARD_MAX_PROTECT, 0);
GUARD_TABLE("hash", struct guard_comm_key, struct guard_verdict, guard_protect_names,
	    GUARD_MAX_PROTECT, 0);

/* A caller's name, parent's name or uid -> its subject-test bits (guard_abi.h). */
GUARD_TABLE("hash", struct guard_subject_key, struct guard_subject_bits, guard_subject_atoms,
	    GUARD_MAX_SUBJECT_ATOMS, 0);

/* The in-kernel DFAs (contains / glob): two banks per hook; guard_config.dfa_slot picks one. */
GUARD_TABLE("array", int, struct guard_dfa, guard_dfas, 2 * GUARD_HOOK_COUNT, 0);
GUARD_TABLE("array", int, struct guard_dfa_rule, guard_dfa_rules, GUARD_DFA_MAX_RULES, 0);

/* Dynamic per-entity verdicts, armed from user space. */
GUARD_TABLE("hash", __u32, struct guard_entity, guard_entities, GUARD_MAX_ENTITIES, 0);
GUARD_TABLE("hash", struct guard_dyn_key, struct guard_dyn_verdict, guard_dynamic,
	    GUARD_MAX_DYNAMIC, 0);

/*
 * Per-rule modes (key: rule id, value: enum guard_mode), one map write per switch. A rule's mode
 * overrides its hook's for the calls that rule decides (guard_finish_as): off = as if it did not
 * match, detect = would-block, enforce = deny even under a detect hook. A hook that is off stays off
 * for every rule. A verdict value holds only the smallest deny rule id per hook (and the search
 * stops at the first deny), so an override applies to the rule that decides: switching it off does
 * not bring a second rule on the same key or a later table into play.
 */
GUARD_TABLE("hash", __u32, __u32, guard_rule_modes, GUARD_MAX_RULE_MODES, 0);
/* A rule's deny skips callers running one of its exempt executables (guard_exempt_key). */
GUARD_TABLE("hash", struct guard_exempt_key, __u8, guard_exempt, GUARD_MAX_EXEMPT, 0);

GUARD_TABLE("percpu_array", int, __u64, guard_counters, (GUARD_HOOK_COUNT * GUARD_CNT_COUNT), 0);
/*
 * Decisions the guard_decisions ring had no room for, by (rule, hook, decision): pinned, so what
 * accumulates while no agent reads survives until the next one reports it (guard_emit_as).
 */
GUARD_TABLE("hash", struct guard_decision_drop_key, __u64, guard_decision_drops,
	    GUARD_MAX_DECISION_DROPS, 0);
BPF_PERCPU_ARRAY(guard_scratch, struct guard_lpm_path_key, 3);
/* The caller's names while its subject bits are looked up (too big for the hooks' stacks). */
struct guard_who_buf {
	struct guard_subject_key key;
	char parent[GUARD_SUBJECT_TEXT];
};
BPF_PERCPU_ARRAY(guard_who, struct guard_who_buf, 1);
/* Two rings: decisions (denied, would-block, killed) apart from telemetry (allowed events). */
BPF_RINGBUF_OUTPUT(guard_decisions, GUARD_DECISION_RINGBUF_PAGES);
BPF_RINGBUF_OUTPUT(guard_events, GUARD_RINGBUF_PAGES);
BPF_RINGBUF_OUTPUT(guard_procs, GUARD_PROC_RINGBUF_PAGES);

#endif /* GUARD_MAPS_H */
