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
#ifndef GUARD_MAX_SCOPES
#define GUARD_MAX_SCOPES 1024
#endif
#ifndef GUARD_MAX_ENTITIES
#define GUARD_MAX_ENTITIES 65536
#endif
#ifndef GUARD_MAX_DYNAMIC
#define GUARD_MAX_DYNAMIC 65536
#endif
#ifndef GUARD_DFA_MAX_RULES
#define GUARD_DFA_MAX_RULES 8192
#endif
#ifndef GUARD_RINGBUF_PAGES
#define GUARD_RINGBUF_PAGES 64
#endif

BPF_ARRAY(guard_config, struct guard_config, 1);
BPF_HASH(guard_scope_cgroups, __u64, __u32, GUARD_MAX_SCOPES);
BPF_HASH(guard_scope_pids, __u32, __u32, GUARD_MAX_SCOPES);

/* Static verdicts, filled from the compiled policy. */
BPF_HASH(guard_paths, struct guard_path_key, struct guard_verdict, GUARD_MAX_PATHS);
BPF_LPM_TRIE(guard_prefixes, struct guard_lpm_path_key, struct guard_verdict, GUARD_MAX_PREFIXES);
BPF_LPM_TRIE(guard_suffixes, struct guard_lpm_path_key, struct guard_verdict, GUARD_MAX_PREFIXES);
BPF_HASH(guard_inodes, struct guard_inode_key, struct guard_verdict, GUARD_MAX_INODES);
BPF_LPM_TRIE(guard_nets, struct guard_net_key, struct guard_verdict, GUARD_MAX_NETS);
BPF_HASH(guard_ptrace_targets, __u32, struct guard_verdict, GUARD_MAX_PTRACE);

/* The in-kernel DFAs (contains / glob): two banks per hook; guard_config.dfa_slot picks one. */
BPF_ARRAY(guard_dfas, struct guard_dfa, 2 * GUARD_HOOK_COUNT);
BPF_ARRAY(guard_dfa_rules, struct guard_dfa_rule, GUARD_DFA_MAX_RULES);

/* Dynamic per-entity verdicts, armed from user space. */
BPF_HASH(guard_entities, __u32, struct guard_entity, GUARD_MAX_ENTITIES);
BPF_HASH(guard_dynamic, struct guard_dyn_key, struct guard_dyn_verdict, GUARD_MAX_DYNAMIC);

BPF_PERCPU_ARRAY(guard_counters, __u64, GUARD_HOOK_COUNT * GUARD_CNT_COUNT);
/* Per-CPU scratch: [0] d_path output, [1] the zero-padded path key, [2] LPM key (prefix, then reversed). */
BPF_PERCPU_ARRAY(guard_scratch, struct guard_lpm_path_key, 3);
BPF_RINGBUF_OUTPUT(guard_events, GUARD_RINGBUF_PAGES);

#endif /* GUARD_MAPS_H */
