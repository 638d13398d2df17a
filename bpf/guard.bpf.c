/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The single translation unit given to bcc. Struct offsets (GUARD_OFF_*) come from the running
 * kernel's BTF as -D flags; sizes (GUARD_MAX_*) from the configuration; GUARD_NO_D_PATH on kernels
 * whose BPF-LSM refuses bpf_d_path; GUARD_HAS_PATH_CHMOD where the kernel has the path_chmod hook,
 * GUARD_HAS_PATH_NAMES where it has path_link and path_rename.
 */
#include "include/guard_abi.h"
#include "include/guard_maps.h"
#include "include/guard_helpers.h"
#include "include/guard_walk.h"

#include "hooks/bprm_check_security.bpf.c"
#include "hooks/file_open.bpf.c"
#include "hooks/socket_connect.bpf.c"
#include "hooks/socket_sendmsg.bpf.c"
#include "hooks/ptrace_access_check.bpf.c"
#include "hooks/path_chmod.bpf.c"
#include "hooks/mmap_exec.bpf.c"
#include "hooks/path_names.bpf.c"
#include "hooks/lineage.bpf.c"
#include "hooks/process.bpf.c"
#include "hooks/syscall_events.bpf.c"
#include "hooks/dns.bpf.c"
#include "hooks/protect_exec.bpf.c"

/* bcc's footer emits the license section from this macro (verbatim: the kernel compares it). */
/* clang-format off */
#define BPF_LICENSE Dual BSD/GPL
/* clang-format on */
