/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * socket_connect: deny connecting to a destination network and port, for governed tasks.
 *
 * IPv4 and IPv6 share one LPM trie keyed by (port, IPv6 address); an IPv4 destination is looked up
 * as its v4-mapped address, so "::ffff:10.0.0.1" and "10.0.0.1" meet the same verdict. Looked up
 * twice: (port, address) then (0 = every port, address). Other families (AF_UNIX, AF_UNSPEC) allow.
 * socket_sendmsg.bpf.c sends a datagram's explicit destination through the same decision.
 */

/* The connect hook's decision for a destination sockaddr (a kernel copy); evflags go on the event. */
static __always_inline int guard_net_hook(struct sockaddr *address, int addrlen, __u32 evflags)
{
	struct guard_ctx gc;
	__u16 family = 0, port_be = 0;

	if (!guard_enter(GUARD_HOOK_CONNECT, &gc) || !address)
		return 0;
	bpf_probe_read_kernel(&family, sizeof(family), address);
	if (family == GUARD_AF_INET && addrlen >= 8) {
		bpf_probe_read_kernel(&port_be, sizeof(port_be), (char *)address + 2);
		gc.addr[10] = 0xff;
		gc.addr[11] = 0xff;
		bpf_probe_read_kernel(&gc.addr[12], 4, (char *)address + 4);
	} else if (family == GUARD_AF_INET6 && addrlen >= 24) {
		bpf_probe_read_kernel(&port_be, sizeof(port_be), (char *)address + 2);
		bpf_probe_read_kernel(gc.addr, 16, (char *)address + 8);
	} else {
		return 0;
	}
	gc.flags |= evflags;
	gc.family = family;
	gc.port = bpf_ntohs(port_be);
	guard_net_decide(&gc, port_be);
	return guard_finish(&gc, 0);
}

LSM_PROBE(socket_connect, struct socket *sock, struct sockaddr *address, int addrlen)
{
	return guard_net_hook(address, addrlen, 0);
}
