/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What a governed task's successful syscalls change, for rules (GUARD_CF_SYSCALL_EVENTS, both
 * planes), reported at the syscall's exit:
 * - deletions, renames, ownership and extended-attribute changes, mounts and unmounts, module
 *   unloads: at the entry (unlink/unlinkat, rename/renameat/renameat2, chown/lchown/fchownat,
 *   setxattr/lsetxattr/removexattr/lremovexattr, mount, umount2, delete_module) the arguments
 *   are kept (per thread); at the exit the names are read from the caller's memory and reported
 *   with the directory each relative name is relative to;
 * - uid and gid changes (setuid, setreuid, setresuid and the gid calls): the new credentials;
 * - memfd_create: the name; finit_module (with the module file's path) and init_module;
 * - accept and accept4: the new socket's two ends;
 * - ptrace attach and seize: the tracee (Elastic Defend's ptrace event);
 * - a TCP connection the task closes (inet_sock_set_state, not a syscall: guard_tcp_state);
 * - modifications (GUARD_CF_MODIFY_EVENTS): the first write, pwrite64, writev, pwritev(2) or
 *   ftruncate through each regular file a task opened (its struct file), with the file's path;
 *   forgotten at the file's close, so a later open of the same file is reported again.
 * Telemetry only: never a deny. x86-64 syscall numbers and registers, as the compat plane's other
 * syscall programs; the exit reads the syscall number first, so other syscalls cost one compare.
 */

#define GUARD_NR_RENAME 82
#define GUARD_NR_UNLINK 87
#define GUARD_NR_UNLINKAT 263
#define GUARD_NR_RENAMEAT 264
#define GUARD_NR_RENAMEAT2 316
#define GUARD_NR_ACCEPT 43
#define GUARD_NR_SETUID 105
#define GUARD_NR_SETGID 106
#define GUARD_NR_SETREUID 113
#define GUARD_NR_SETREGID 114
#define GUARD_NR_SETRESUID 117
#define GUARD_NR_SETRESGID 119
#define GUARD_NR_INIT_MODULE 175
#define GUARD_NR_ACCEPT4 288
#define GUARD_NR_FINIT_MODULE 313
#define GUARD_NR_MEMFD_CREATE 319
#define GUARD_NR_CHOWN 92
#define GUARD_NR_LCHOWN 94
#define GUARD_NR_MOUNT 165
#define GUARD_NR_UMOUNT2 166
#define GUARD_NR_DELETE_MODULE 176
#define GUARD_NR_SETXATTR 188
#define GUARD_NR_LSETXATTR 189
#define GUARD_NR_REMOVEXATTR 197
#define GUARD_NR_LREMOVEXATTR 198
#define GUARD_NR_FCHOWNAT 260
#define GUARD_NR_PTRACE 101
#define GUARD_TCP_ESTABLISHED 1
#define GUARD_TCP_FIN_WAIT1 4
#define GUARD_TCP_CLOSE_WAIT 8
#define GUARD_TCP_LAST_ACK 9
#define GUARD_PTRACE_ATTACH 16
#define GUARD_PTRACE_SEIZE 0x4206
#define GUARD_NR_WRITE 1
#define GUARD_NR_CLOSE 3
#define GUARD_NR_PWRITE64 18
#define GUARD_NR_WRITEV 20
#define GUARD_NR_FTRUNCATE 77
#define GUARD_NR_PWRITEV 296
#define GUARD_NR_PWRITEV2 328
#define GUARD_S_IFMT 0170000
#define GUARD_S_IFREG 0100000
#define GUARD_AT_FDCWD -100
#define GUARD_NO_BASE -2 /* the name is not a path (a module's) */

/* The syscalls whose arguments the entry keeps and whose exit reports a name (with its base). */
static __always_inline int guard_is_named_change(long nr)
{
	switch (nr) {
	case GUARD_NR_UNLINK:
	case GUARD_NR_UNLINKAT:
	case GUARD_NR_RENAME:
	case GUARD_NR_RENAMEAT:
	case GUARD_NR_RENAMEAT2:
	case GUARD_NR_CHOWN:
	case GUARD_NR_LCHOWN:
	case GUARD_NR_FCHOWNAT:
	case GUARD_NR_SETXATTR:
	case GUARD_NR_LSETXATTR:
	case GUARD_NR_REMOVEXATTR:
	case GUARD_NR_LREMOVEXATTR:
	case GUARD_NR_MOUNT:
	case GUARD_NR_UMOUNT2:
	case GUARD_NR_DELETE_MODULE:
		return 1;
	}
	return 0;
}

struct guard_pending_change {
	__u64 path;	/* the file (deletion), the new name (rename) */
	__u64 old_path; /* rename: the old name */
	__s64 dirfd;
	__s64 old_dirfd;
	__u32 kind;
	__u32 pad;
};

BPF_HASH(guard_changes_pending, __u64, struct guard_pending_change, 8192);

/* The open files (struct file *) of a process already reported modified. */
struct guard_modified_key {
	__u64 file;
	__u32 tgid;
	__u32 pad;
};

BPF_TABLE("lru_hash", struct guard_modified_key, __u8, guard_modified, 16384);

static __always_inline __u64 guard_reg(const void *regs, __u32 offset)
{
	__u64 value = 0;

	bpf_probe_read_kernel(&value, sizeof(value), (const char *)regs + offset);
	return value;
}

int guard_change_enter(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0];
	long nr = (long)ctx->args[1];
	struct guard_pending_change p = {};
	__u64 key;

	if (!guard_is_named_change(nr))
		return 0;
	if (!regs || !(guard_proc_wanted() & GUARD_CF_SYSCALL_EVENTS))
		return 0;
	p.dirfd = p.old_dirfd = GUARD_AT_FDCWD;
	if (nr == GUARD_NR_CHOWN || nr == GUARD_NR_LCHOWN) {
		p.kind = GUARD_PROC_CHOWN;
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
	} else if (nr == GUARD_NR_FCHOWNAT) {
		p.kind = GUARD_PROC_CHOWN;
		p.dirfd = (__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI);
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
	} else if (nr == GUARD_NR_SETXATTR || nr == GUARD_NR_LSETXATTR ||
		   nr == GUARD_NR_REMOVEXATTR || nr == GUARD_NR_LREMOVEXATTR) {
		p.kind = GUARD_PROC_XATTR;
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
	} else if (nr == GUARD_NR_MOUNT) {
		p.kind = GUARD_PROC_MOUNT;
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
	} else if (nr == GUARD_NR_UMOUNT2) {
		p.kind = GUARD_PROC_UNMOUNT;
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
	} else if (nr == GUARD_NR_DELETE_MODULE) {
		p.kind = GUARD_PROC_MODULE_UNLOAD;
		p.dirfd = GUARD_NO_BASE;
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
	} else if (nr == GUARD_NR_UNLINK) {
		p.kind = GUARD_PROC_DELETE;
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
	} else if (nr == GUARD_NR_UNLINKAT) {
		p.kind = GUARD_PROC_DELETE;
		p.dirfd = (__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI);
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
	} else if (nr == GUARD_NR_RENAME) {
		p.kind = GUARD_PROC_RENAME;
		p.old_path = guard_reg(regs, GUARD_OFF_PT_REGS_DI);
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
	} else {
		p.kind = GUARD_PROC_RENAME;
		p.old_dirfd = (__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI);
		p.old_path = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
		p.dirfd = (__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DX);
		p.path = guard_reg(regs, GUARD_OFF_PT_REGS_R10);
	}
	key = bpf_get_current_pid_tgid();
	guard_changes_pending.update(&key, &p);
	return 0;
}

/* The file an fd names (0: none). */
static __always_inline void *guard_fd_file(__s64 fd)
{
	void *task = (void *)bpf_get_current_task(), *files, *fdt, *fds;
	__u32 max_fds = 0;

	files = guard_read_ptr(task, GUARD_OFF_TASK_FILES);
	fdt = files ? guard_read_ptr(files, GUARD_OFF_FILES_FDT) : 0;
	if (!fdt || fd < 0)
		return 0;
	bpf_probe_read_kernel(&max_fds, sizeof(max_fds), (char *)fdt + GUARD_OFF_FDTABLE_MAX_FDS);
	if ((__u64)fd >= max_fds)
		return 0;
	fds = guard_read_ptr(fdt, GUARD_OFF_FDTABLE_FD);
	return fds ? guard_read_ptr(fds, (__u32)fd * sizeof(void *)) : 0;
}

/* close: the file is no longer reported modified (a later open of it is a new one). */
int guard_modify_close(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0];
	struct guard_modified_key key = {};

	if ((long)ctx->args[1] != GUARD_NR_CLOSE || !regs)
		return 0;
	if (!(guard_proc_wanted() & GUARD_CF_MODIFY_EVENTS))
		return 0;
	key.file = (__u64)guard_fd_file((__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI));
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	if (key.file)
		guard_modified.delete(&key);
	return 0;
}

/* The path a relative name is relative to: the working directory, or the directory fd's. */
static __always_inline void guard_change_base(struct guard_file_event *ev, char *out, __s64 dirfd)
{
	void *fs, *file;

	if (dirfd == GUARD_AT_FDCWD) {
		fs = guard_read_ptr((void *)bpf_get_current_task(), GUARD_OFF_TASK_FS);
		guard_proc_path(fs ? (char *)fs + GUARD_OFF_FS_PWD : 0, out,
				GUARD_PF_CWD_UNRESOLVED, &ev->proc);
		return;
	}
	file = guard_fd_file(dirfd);
	guard_proc_path(file ? (char *)file + GUARD_OFF_FILE_F_PATH : 0, out,
			GUARD_PF_CWD_UNRESOLVED, &ev->proc);
}

static __always_inline int guard_file_change_exit(long ret)
{
	struct guard_pending_change *pending, p;
	struct guard_file_event *ev;
	__u64 key = bpf_get_current_pid_tgid();

	pending = guard_changes_pending.lookup(&key);
	if (!pending)
		return 0;
	p = *pending;
	guard_changes_pending.delete(&key);
	if (ret != 0)
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_file_event));
	if (!ev) {
		guard_count(GUARD_HOOK_FILE_OPEN, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(), p.kind);
	ev->dir[0] = ev->old_dir[0] = ev->old_path[0] = 0;
	if (bpf_probe_read_user_str(ev->path, sizeof(ev->path), (void *)p.path) < 0)
		ev->path[0] = 0;
	if (ev->path[0] != '/' && p.dirfd != GUARD_NO_BASE)
		guard_change_base(ev, ev->dir, p.dirfd);
	if (p.kind == GUARD_PROC_RENAME) {
		if (bpf_probe_read_user_str(ev->old_path, sizeof(ev->old_path),
					    (void *)p.old_path) < 0)
			ev->old_path[0] = 0;
		if (ev->old_path[0] != '/')
			guard_change_base(ev, ev->old_dir, p.old_dirfd);
	}
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/* A uid or gid change: the header alone carries the new credentials. */
static __always_inline int guard_id_change_exit(__u32 kind)
{
	struct guard_proc_event *ev;

	if (!(guard_proc_wanted() & GUARD_CF_SYSCALL_EVENTS))
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_proc_event));
	if (!ev) {
		guard_count(GUARD_HOOK_EXEC, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(ev, (void *)bpf_get_current_task(), kind);
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/* memfd_create (its name) and module loads (finit_module: the module file's path). */
static __always_inline int guard_named_exit(const void *regs, long nr)
{
	struct guard_file_event *ev;
	void *file;

	if (!(guard_proc_wanted() & GUARD_CF_SYSCALL_EVENTS))
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_file_event));
	if (!ev) {
		guard_count(GUARD_HOOK_FILE_OPEN, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(),
			nr == GUARD_NR_MEMFD_CREATE ? GUARD_PROC_MEMFD : GUARD_PROC_MODULE_LOAD);
	ev->path[0] = ev->dir[0] = ev->old_dir[0] = ev->old_path[0] = 0;
	if (nr == GUARD_NR_MEMFD_CREATE) {
		if (bpf_probe_read_user_str(ev->path, sizeof(ev->path),
					    (void *)guard_reg(regs, GUARD_OFF_PT_REGS_DI)) < 0)
			ev->path[0] = 0;
	} else if (nr == GUARD_NR_FINIT_MODULE) {
		file = guard_fd_file((__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI));
		guard_proc_path(file ? (char *)file + GUARD_OFF_FILE_F_PATH : 0, ev->path,
				GUARD_PF_CWD_UNRESOLVED, &ev->proc);
	}
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/* ptrace attach or seize: the tracee's pid (as the caller named it) and the request. */
static __always_inline int guard_ptrace_exit(const void *regs)
{
	struct guard_ptrace_event *ev;
	__u64 request = guard_reg(regs, GUARD_OFF_PT_REGS_DI);

	if (request != GUARD_PTRACE_ATTACH && request != GUARD_PTRACE_SEIZE)
		return 0;
	if (!(guard_proc_wanted() & GUARD_CF_SYSCALL_EVENTS))
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_ptrace_event));
	if (!ev) {
		guard_count(GUARD_HOOK_PTRACE, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(), GUARD_PROC_PTRACE);
	ev->child_pid = (__u32)guard_reg(regs, GUARD_OFF_PT_REGS_SI);
	ev->request = (__u32)request;
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/* A socket's two ends (ports in host order; IPv4 v4-mapped), as the kernel holds them. */
static __always_inline void guard_sock_ends(struct guard_net_event *ev, void *sk)
{
	__builtin_memset(ev->local_addr, 0, sizeof(ev->local_addr));
	__builtin_memset(ev->remote_addr, 0, sizeof(ev->remote_addr));
	ev->family = ev->local_port = ev->remote_port = ev->pad = 0;
	bpf_probe_read_kernel(&ev->family, sizeof(ev->family), (char *)sk + GUARD_OFF_SKC_FAMILY);
	bpf_probe_read_kernel(&ev->local_port, sizeof(ev->local_port),
			      (char *)sk + GUARD_OFF_SKC_NUM);
	bpf_probe_read_kernel(&ev->remote_port, sizeof(ev->remote_port),
			      (char *)sk + GUARD_OFF_SKC_DPORT);
	ev->remote_port = __builtin_bswap16(ev->remote_port);
	if (ev->family == GUARD_AF_INET6) {
		bpf_probe_read_kernel(ev->local_addr, 16, (char *)sk + GUARD_OFF_SKC_V6_RCV_SADDR);
		bpf_probe_read_kernel(ev->remote_addr, 16, (char *)sk + GUARD_OFF_SKC_V6_DADDR);
	} else {
		ev->local_addr[10] = ev->local_addr[11] = 0xff;
		ev->remote_addr[10] = ev->remote_addr[11] = 0xff;
		bpf_probe_read_kernel(&ev->local_addr[12], 4, (char *)sk + GUARD_OFF_SKC_RCV_SADDR);
		bpf_probe_read_kernel(&ev->remote_addr[12], 4, (char *)sk + GUARD_OFF_SKC_DADDR);
	}
}

/* accept/accept4: the new socket (the returned fd) and its two ends. */
static __always_inline int guard_accept_exit(long fd)
{
	struct guard_net_event *ev;
	void *file, *sock, *sk;

	if (!(guard_proc_wanted() & GUARD_CF_SYSCALL_EVENTS))
		return 0;
	file = guard_fd_file(fd);
	sock = file ? guard_read_ptr(file, GUARD_OFF_FILE_PRIVATE_DATA) : 0;
	sk = sock ? guard_read_ptr(sock, GUARD_OFF_SOCKET_SK) : 0;
	if (!sk)
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_net_event));
	if (!ev) {
		guard_count(GUARD_HOOK_CONNECT, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(), GUARD_PROC_ACCEPT);
	guard_sock_ends(ev, sk);
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/*
 * A governed task closing a TCP connection (close, shutdown, or its exit closing the socket), on
 * inet_sock_set_state: ESTABLISHED -> FIN_WAIT1 (it closes first) or CLOSE_WAIT -> LAST_ACK (after
 * the peer did). Both transitions run in the closing task's own context; the others (a reset, a
 * timeout, the peer's FIN) run wherever the packet or timer is handled, so they are not reported.
 */
int guard_tcp_state(struct bpf_raw_tracepoint_args *ctx)
{
	void *sk = (void *)ctx->args[0];
	int old = (int)ctx->args[1], state = (int)ctx->args[2];
	struct guard_net_event *ev;

	if (!(old == GUARD_TCP_ESTABLISHED && state == GUARD_TCP_FIN_WAIT1) &&
	    !(old == GUARD_TCP_CLOSE_WAIT && state == GUARD_TCP_LAST_ACK))
		return 0;
	if (!sk || !(guard_proc_wanted() & GUARD_CF_SYSCALL_EVENTS))
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_net_event));
	if (!ev) {
		guard_count(GUARD_HOOK_CONNECT, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(), GUARD_PROC_DISCONNECT);
	guard_sock_ends(ev, sk);
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/* The first write (or ftruncate) through a regular file the task opened: a modification. */
int guard_modify_exit(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0], *file, *inode;
	long ret = (long)ctx->args[1], nr = 0;
	struct guard_modified_key key = {};
	struct guard_file_event *ev;
	__u16 mode = 0;
	__u8 one = 1;

	if (!regs || ret < 0)
		return 0;
	bpf_probe_read_kernel(&nr, sizeof(nr), (char *)regs + GUARD_OFF_PT_REGS_ORIG_AX);
	if (nr != GUARD_NR_WRITE && nr != GUARD_NR_PWRITE64 && nr != GUARD_NR_WRITEV &&
	    nr != GUARD_NR_PWRITEV && nr != GUARD_NR_PWRITEV2 && nr != GUARD_NR_FTRUNCATE)
		return 0;
	if (ret == 0 && nr != GUARD_NR_FTRUNCATE)
		return 0; /* nothing written */
	if (!(guard_proc_wanted() & GUARD_CF_MODIFY_EVENTS))
		return 0;
	file = guard_fd_file((__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI));
	inode = file ? guard_read_ptr(file, GUARD_OFF_FILE_F_INODE) : 0;
	if (!inode)
		return 0;
	bpf_probe_read_kernel(&mode, sizeof(mode), (char *)inode + GUARD_OFF_INODE_I_MODE);
	if ((mode & GUARD_S_IFMT) != GUARD_S_IFREG)
		return 0;
	key.file = (__u64)file;
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	if (guard_modified.lookup(&key))
		return 0;
	guard_modified.update(&key, &one);
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_file_event));
	if (!ev) {
		guard_count(GUARD_HOOK_FILE_OPEN, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(), GUARD_PROC_MODIFY);
	ev->path[0] = ev->dir[0] = ev->old_dir[0] = ev->old_path[0] = 0;
	guard_proc_path((char *)file + GUARD_OFF_FILE_F_PATH, ev->path, GUARD_PF_CWD_UNRESOLVED,
			&ev->proc);
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

/*
 * Two programs on sys_exit, each verified on its own budget (one would not pass 6.1's): the file
 * changes (up to two path walks), and the rest. Each returns at once for any other syscall.
 */
int guard_change_exit(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0];
	long nr = 0;

	if (!regs)
		return 0;
	bpf_probe_read_kernel(&nr, sizeof(nr), (char *)regs + GUARD_OFF_PT_REGS_ORIG_AX);
	if (!guard_is_named_change(nr))
		return 0;
	return guard_file_change_exit((long)ctx->args[1]);
}

int guard_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0];
	long ret = (long)ctx->args[1], nr = 0;

	if (!regs)
		return 0;
	bpf_probe_read_kernel(&nr, sizeof(nr), (char *)regs + GUARD_OFF_PT_REGS_ORIG_AX);
	switch (nr) {
	case GUARD_NR_SETUID:
	case GUARD_NR_SETREUID:
	case GUARD_NR_SETRESUID:
		return ret == 0 ? guard_id_change_exit(GUARD_PROC_UID_CHANGE) : 0;
	case GUARD_NR_SETGID:
	case GUARD_NR_SETREGID:
	case GUARD_NR_SETRESGID:
		return ret == 0 ? guard_id_change_exit(GUARD_PROC_GID_CHANGE) : 0;
	case GUARD_NR_MEMFD_CREATE:
		return ret >= 0 ? guard_named_exit(regs, nr) : 0;
	case GUARD_NR_INIT_MODULE:
	case GUARD_NR_FINIT_MODULE:
		return ret == 0 ? guard_named_exit(regs, nr) : 0;
	case GUARD_NR_ACCEPT:
	case GUARD_NR_ACCEPT4:
		return ret >= 0 ? guard_accept_exit(ret) : 0;
	case GUARD_NR_PTRACE:
		return ret == 0 ? guard_ptrace_exit(regs) : 0;
	}
	return 0;
}
