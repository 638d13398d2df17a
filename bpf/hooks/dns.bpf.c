/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * DNS, for rules (GUARD_CF_DNS_EVENTS, both planes): the messages a governed task sends to port 53
 * and the ones it reads back, with their first GUARD_DNS_MAX bytes, which user space parses
 * (lookup_requested, lookup_result). Read from the caller's own buffers at the syscall, so the
 * same on every kernel: no packet parsing, no per-kernel iov_iter layout.
 * - a send (write, sendto, sendmsg, sendmmsg: its first message) on an IPv4/IPv6 socket whose
 *   remote port, or the address the send names, is 53: reported at the entry; the socket is
 *   remembered (guard_dns_socks) so the reads of an unconnected one are known too;
 * - a read (read, recvfrom, recvmsg, recvmmsg: its first message) on a socket connected to port
 *   53 or remembered: the buffer is kept at the entry (per thread) and read at the exit, with
 *   the sender's address the call filled in (an unconnected socket's only record of it).
 * TCP (a length-prefixed message) is reported the same way; user space tells the two apart.
 * Telemetry only: never a deny. x86-64 syscall numbers, registers and user-space struct layouts
 * (msghdr, iovec, mmsghdr), as the compat plane's other syscall programs.
 */

#define GUARD_NR_READ 0
#define GUARD_NR_SENDTO 44
#define GUARD_NR_RECVFROM 45
#define GUARD_NR_SENDMSG 46
#define GUARD_NR_RECVMSG 47
#define GUARD_NR_RECVMMSG 299
#define GUARD_NR_SENDMMSG 307
#define GUARD_DNS_PORT 53
#define GUARD_S_IFSOCK 0140000
/* The user-space ABI (x86-64): struct msghdr's msg_name and msg_iov, struct iovec, and
 * struct mmsghdr's msg_len (after its 56-byte msghdr). */
#define GUARD_UMSG_NAME 0
#define GUARD_UMSG_IOV 16
#define GUARD_UIOV_BASE 0
#define GUARD_UIOV_LEN 8
#define GUARD_UMMSG_LEN 56

/* Sockets (struct sock *) a governed task sent a DNS message on: their reads are answers. */
BPF_TABLE("lru_hash", __u64, __u8, guard_dns_socks, 4096);

struct guard_dns_read {
	__u64 buf;  /* read, recvfrom: the buffer; recvmsg, recvmmsg: the (first) message header */
	__u64 from; /* the sockaddr the call fills with the sender's address (0: none) */
	__u64 sk;
	__u64 nr;
};

/* Per thread; LRU, so a read never finished (its thread killed in the call) cannot fill it. */
BPF_TABLE("lru_hash", __u64, struct guard_dns_read, guard_dns_reads, 4096);

static __always_inline int guard_is_dns_call(long nr)
{
	switch (nr) {
	case GUARD_NR_READ:
	case GUARD_NR_WRITE:
	case GUARD_NR_SENDTO:
	case GUARD_NR_RECVFROM:
	case GUARD_NR_SENDMSG:
	case GUARD_NR_RECVMSG:
	case GUARD_NR_RECVMMSG:
	case GUARD_NR_SENDMMSG:
		return 1;
	}
	return 0;
}

/* The socket (struct sock *) an fd names, when it is an IPv4 or IPv6 one (0: not). */
static __always_inline void *guard_fd_inet_sock(__s64 fd)
{
	void *file = guard_fd_file(fd), *inode, *sock, *sk;
	__u16 mode = 0, family = 0;

	inode = file ? guard_read_ptr(file, GUARD_OFF_FILE_F_INODE) : 0;
	if (!inode)
		return 0;
	bpf_probe_read_kernel(&mode, sizeof(mode), (char *)inode + GUARD_OFF_INODE_I_MODE);
	if ((mode & GUARD_S_IFMT) != GUARD_S_IFSOCK)
		return 0;
	sock = guard_read_ptr(file, GUARD_OFF_FILE_PRIVATE_DATA);
	sk = sock ? guard_read_ptr(sock, GUARD_OFF_SOCKET_SK) : 0;
	if (!sk)
		return 0;
	bpf_probe_read_kernel(&family, sizeof(family), (char *)sk + GUARD_OFF_SKC_FAMILY);
	return family == GUARD_AF_INET || family == GUARD_AF_INET6 ? sk : 0;
}

/* A message header's first buffer and its length (user memory). */
static __always_inline __u64 guard_umsg_buf(__u64 msg, __u64 *len)
{
	__u64 iov = 0, buf = 0;

	bpf_probe_read_user(&iov, sizeof(iov), (void *)(msg + GUARD_UMSG_IOV));
	if (!iov)
		return 0;
	bpf_probe_read_user(&buf, sizeof(buf), (void *)(iov + GUARD_UIOV_BASE));
	bpf_probe_read_user(len, sizeof(*len), (void *)(iov + GUARD_UIOV_LEN));
	return buf;
}

/* One message on the ring: the socket's ends (the remote one replaced by ``to``, a user-space
 * sockaddr, when the send names one or the read filled one) and its first bytes. */
static __always_inline int guard_dns_submit(__u32 kind, void *sk, __u64 buf, __u64 len, __u64 to)
{
	struct guard_dns_event *ev;
	__u16 family = 0, port = 0;
	__u32 kept;

	if (!buf || len < 12) /* shorter than a DNS header */
		return 0;
	ev = guard_procs.ringbuf_reserve(sizeof(struct guard_dns_event));
	if (!ev) {
		guard_count(GUARD_HOOK_CONNECT, GUARD_CNT_RINGBUF_DROPS);
		return 0;
	}
	guard_proc_fill(&ev->proc, (void *)bpf_get_current_task(), kind);
	guard_sock_ends((struct guard_net_event *)ev, sk); /* the same layout up to len */
	if (to) {
		bpf_probe_read_user(&family, sizeof(family), (void *)to);
		bpf_probe_read_user(&port, sizeof(port), (void *)(to + 2));
		if (family == GUARD_AF_INET) {
			ev->remote_port = __builtin_bswap16(port);
			__builtin_memset(ev->remote_addr, 0, 10);
			ev->remote_addr[10] = ev->remote_addr[11] = 0xff;
			bpf_probe_read_user(&ev->remote_addr[12], 4, (void *)(to + 4));
		} else if (family == GUARD_AF_INET6) {
			ev->remote_port = __builtin_bswap16(port);
			bpf_probe_read_user(ev->remote_addr, 16, (void *)(to + 8));
		}
	}
	ev->len = len > 0xffffffff ? 0xffffffff : (__u32)len;
	if (len >= GUARD_DNS_MAX) {
		ev->data_len = GUARD_DNS_MAX;
		if (bpf_probe_read_user(ev->data, GUARD_DNS_MAX, (void *)buf) < 0)
			ev->data_len = 0;
	} else {
		/* the mask is kept (the barrier): older verifiers lose the compare's bound */
		kept = len;
		guard_barrier_var(kept);
		kept &= GUARD_DNS_MAX - 1;
		ev->data_len = kept;
		if (bpf_probe_read_user(ev->data, kept, (void *)buf) < 0)
			ev->data_len = 0;
	}
	guard_procs.ringbuf_submit(ev, 0);
	return 0;
}

int guard_dns_enter(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0], *sk;
	long nr = (long)ctx->args[1];
	__u64 buf = 0, len = 0, to = 0, key;
	__u16 port = 0, family = 0;
	__u8 one = 1;

	if (!guard_is_dns_call(nr) || !regs)
		return 0;
	if (!(guard_proc_wanted() & GUARD_CF_DNS_EVENTS))
		return 0;
	sk = guard_fd_inet_sock((__s32)guard_reg(regs, GUARD_OFF_PT_REGS_DI));
	if (!sk)
		return 0;
	bpf_probe_read_kernel(&port, sizeof(port), (char *)sk + GUARD_OFF_SKC_DPORT);
	port = __builtin_bswap16(port);
	key = (__u64)sk;
	if (nr == GUARD_NR_READ || nr == GUARD_NR_RECVFROM || nr == GUARD_NR_RECVMSG ||
	    nr == GUARD_NR_RECVMMSG) {
		struct guard_dns_read pending = {};

		if (port != GUARD_DNS_PORT && !guard_dns_socks.lookup(&key))
			return 0;
		pending.buf = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
		if (nr == GUARD_NR_RECVFROM)
			pending.from = guard_reg(regs, GUARD_OFF_PT_REGS_R8);
		else if (nr != GUARD_NR_READ)
			bpf_probe_read_user(&pending.from, sizeof(pending.from),
					    (void *)(pending.buf + GUARD_UMSG_NAME));
		pending.sk = key;
		pending.nr = nr;
		key = bpf_get_current_pid_tgid();
		guard_dns_reads.update(&key, &pending);
		return 0;
	}
	if (nr == GUARD_NR_WRITE || nr == GUARD_NR_SENDTO) {
		buf = guard_reg(regs, GUARD_OFF_PT_REGS_SI);
		len = guard_reg(regs, GUARD_OFF_PT_REGS_DX);
		to = nr == GUARD_NR_SENDTO ? guard_reg(regs, GUARD_OFF_PT_REGS_R8) : 0;
	} else { /* sendmsg; sendmmsg: its first message (an mmsghdr starts with its msghdr) */
		__u64 msg = guard_reg(regs, GUARD_OFF_PT_REGS_SI);

		bpf_probe_read_user(&to, sizeof(to), (void *)(msg + GUARD_UMSG_NAME));
		buf = guard_umsg_buf(msg, &len);
	}
	if (to) {
		bpf_probe_read_user(&family, sizeof(family), (void *)to);
		if (family == GUARD_AF_INET || family == GUARD_AF_INET6) {
			bpf_probe_read_user(&port, sizeof(port), (void *)(to + 2));
			port = __builtin_bswap16(port);
		} else {
			to = 0;
		}
	}
	if (port != GUARD_DNS_PORT)
		return 0;
	guard_dns_socks.update(&key, &one);
	return guard_dns_submit(GUARD_PROC_DNS_QUERY, sk, buf, len, to);
}

/* The read's exit: what it read, from the buffer the entry kept. */
int guard_dns_exit(struct bpf_raw_tracepoint_args *ctx)
{
	void *regs = (void *)ctx->args[0];
	long ret = (long)ctx->args[1], nr = 0;
	struct guard_dns_read *pending, p;
	__u64 key, buf, len = 0;
	__u32 got = 0;

	if (!regs)
		return 0;
	bpf_probe_read_kernel(&nr, sizeof(nr), (char *)regs + GUARD_OFF_PT_REGS_ORIG_AX);
	if (nr != GUARD_NR_READ && nr != GUARD_NR_RECVFROM && nr != GUARD_NR_RECVMSG &&
	    nr != GUARD_NR_RECVMMSG)
		return 0;
	key = bpf_get_current_pid_tgid();
	pending = guard_dns_reads.lookup(&key);
	if (!pending)
		return 0;
	p = *pending;
	guard_dns_reads.delete(&key);
	if (ret <= 0 || p.nr != (__u64)nr)
		return 0;
	buf = p.buf;
	len = ret;
	if (nr == GUARD_NR_RECVMSG) {
		buf = guard_umsg_buf(p.buf, &len);
		len = (__u64)ret < len ? (__u64)ret : len;
	} else if (nr == GUARD_NR_RECVMMSG) { /* ret: messages; the first one's length */
		buf = guard_umsg_buf(p.buf, &len);
		bpf_probe_read_user(&got, sizeof(got), (void *)(p.buf + GUARD_UMMSG_LEN));
		len = got < len ? got : len;
	}
	return guard_dns_submit(GUARD_PROC_DNS_ANSWER, (void *)p.sk, buf, len, p.from);
}
