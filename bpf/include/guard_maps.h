/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every map of the data plane. Sizes are -D flags set by the loader from the configuration. */
#ifndef GUARD_MAPS_H
#define GUARD_MAPS_H

#ifndef GUARD_MAX_PATHS
#define GUARD_MAX_PATHS 16384
#endif
#ifndef GUARD_MAX_INODES
#define GUARD_MAX_INODES 16384
#endif
#ifndef GUARD_MAX_SCOPES
#define GUARD_MAX_SCOPES 1024
#endif
#ifndef GUARD_RINGBUF_PAGES
#define GUARD_RINGBUF_PAGES 64
#endif

BPF_ARRAY(guard_config, struct guard_config, 1);
BPF_HASH(guard_scope_cgroups, __u64, __u32, GUARD_MAX_SCOPES);
BPF_HASH(guard_deny_paths, struct guard_path_key, struct guard_verdict, GUARD_MAX_PATHS);
BPF_HASH(guard_deny_inodes, struct guard_inode_key, struct guard_verdict, GUARD_MAX_INODES);
BPF_PERCPU_ARRAY(guard_counters, __u64, GUARD_HOOK_COUNT * GUARD_CNT_COUNT);
BPF_PERCPU_ARRAY(guard_scratch, struct guard_path_key, 2);
BPF_RINGBUF_OUTPUT(guard_events, GUARD_RINGBUF_PAGES);

#endif /* GUARD_MAPS_H */
