/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The compat data plane: the translation unit for kernels whose BPF-LSM is unusable. The same
 * maps, tables and decision as guard.bpf.c (guard_helpers.h), fed from other attach points:
 *
 *   connect / sendmsg  cgroup sock_addr programs on the scope's cgroups: a real inline deny (EPERM)
 *   exec               raw tracepoint sched_process_exec: a deny under enforce kills the task
 *                      (SIGKILL) before the new image runs user code
 *   file open          raw tracepoint sys_exit of the open syscalls: the opened file (through the fd
 *                      table) is judged; a deny kills the task before the syscall returns
 *   ptrace             raw tracepoint sys_enter of ptrace(ATTACH|SEIZE) and process_vm_readv/writev:
 *                      a deny kills the caller (the pending SIGKILL also aborts process_vm_*)
 *
 * Paths come from walking the dentry and mount chain (bpf_d_path is refused to tracepoints).
 */
#define GUARD_COMPAT 1
#include "include/guard_abi.h"
#include "include/guard_maps.h"
#include "include/guard_helpers.h"
#include "include/guard_walk.h"

#include "compat/exec.bpf.c"
#include "compat/file_open.bpf.c"
#include "compat/ptrace.bpf.c"
#include "compat/sock_addr.bpf.c"
#include "hooks/lineage.bpf.c"
#include "hooks/process.bpf.c"
#include "hooks/syscall_events.bpf.c"
#include "hooks/dns.bpf.c"

/* bcc's footer emits the license section from this macro (verbatim: the kernel compares it). */
/* clang-format off */
#define BPF_LICENSE Dual BSD/GPL
/* clang-format on */
