/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * socket_sendmsg: a datagram sent to an explicit destination (sendto/sendmsg/sendmmsg on an
 * unconnected UDP socket, a TCP Fast Open sendto) never passes socket_connect, so its destination
 * meets the connect hook's verdicts here: same mode, scope, tables and counters, and the event
 * carries GUARD_EVF_SENDMSG. A send without a destination (msg_name NULL: a connected socket) was
 * decided at connect and returns at once. msg_name points at the kernel's copy of the address.
 */

LSM_PROBE(socket_sendmsg, struct socket *sock, struct msghdr *msg, int size)
{
	void *name = 0;
	int namelen = 0;

	if (!msg)
		return 0;
	bpf_probe_read_kernel(&name, sizeof(name), (char *)msg + GUARD_OFF_MSGHDR_MSG_NAME);
	if (!name)
		return 0;
	bpf_probe_read_kernel(&namelen, sizeof(namelen),
			      (char *)msg + GUARD_OFF_MSGHDR_MSG_NAMELEN);
	return guard_net_hook((struct sockaddr *)name, namelen, GUARD_EVF_SENDMSG);
}
