/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * connect and sendmsg without LSM: cgroup sock_addr programs, attached by the loader to every
 * cgroup in scope (and inherited by their descendants), decide the same (port, address) verdicts
 * as the LSM socket_connect hook: IPv4 is looked up v4-mapped, so a v4-mapped IPv6 destination meets
 * the IPv4 rules. The kernel calls sendmsg4/6 only for a datagram with an explicit destination on
 * an unconnected socket, which is what the LSM socket_sendmsg hook decides. Returning 0 denies
 * (EPERM); 1 allows. The scope check still applies (a pid scope attaches at the cgroup root).
 * Where the kernel refuses bpf_get_current_task to cgroup programs (the loader probes it and sets
 * GUARD_SOCK_ADDR_NO_TASK), their events carry no lineage (ppid, start times).
 */

#ifdef GUARD_SOCK_ADDR_NO_TASK
#define GUARD_SOCK_ADDR_REACT GUARD_REACT_NO_TASK
#define GUARD_SOCK_ADDR_WHO 0 /* the caller cannot be read: the loader refuses subject conditions */
#else
#define GUARD_SOCK_ADDR_REACT GUARD_REACT_DENY
#define GUARD_SOCK_ADDR_WHO 1
#endif

static __always_inline int guard_sock_addr(struct bpf_sock_addr *sa, int v6, __u32 evflags)
{
	struct guard_ctx gc;
	__u16 port_be;
	__u32 ip;

	if (!guard_enter_who(GUARD_HOOK_CONNECT, &gc, 1, GUARD_SOCK_ADDR_WHO))
		return 1;
	if (v6) {
		ip = sa->user_ip6[0];
		__builtin_memcpy(&gc.addr[0], &ip, 4);
		ip = sa->user_ip6[1];
		__builtin_memcpy(&gc.addr[4], &ip, 4);
		ip = sa->user_ip6[2];
		__builtin_memcpy(&gc.addr[8], &ip, 4);
		ip = sa->user_ip6[3];
		__builtin_memcpy(&gc.addr[12], &ip, 4);
		gc.family = GUARD_AF_INET6;
	} else {
		ip = sa->user_ip4;
		gc.addr[10] = 0xff;
		gc.addr[11] = 0xff;
		__builtin_memcpy(&gc.addr[12], &ip, 4);
		gc.family = GUARD_AF_INET;
	}
	port_be = (__u16)sa->user_port;
	gc.port = bpf_ntohs(port_be);
	gc.flags |= evflags;
	guard_net_decide(&gc, port_be);
	return guard_finish_as(&gc, 0, GUARD_SOCK_ADDR_REACT) == 0;
}

int guard_connect4(struct bpf_sock_addr *ctx)
{
	return guard_sock_addr(ctx, 0, 0);
}

int guard_connect6(struct bpf_sock_addr *ctx)
{
	return guard_sock_addr(ctx, 1, 0);
}

int guard_sendmsg4(struct bpf_sock_addr *ctx)
{
	return guard_sock_addr(ctx, 0, GUARD_EVF_SENDMSG);
}

int guard_sendmsg6(struct bpf_sock_addr *ctx)
{
	return guard_sock_addr(ctx, 1, GUARD_EVF_SENDMSG);
}
