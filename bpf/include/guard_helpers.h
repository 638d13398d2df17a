/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every hook shares: the preamble (mode, call count, scope), the verdict search context, the
 * table lookups (dynamic, inode, exact, prefix, suffix, DFA, network), the decision (with per-rule
 * modes) and the event (with the task's lineage).
 */
#ifndef GUARD_HELPERS_H
#define GUARD_HELPERS_H

/* Kernel structs are opaque here: fields are read at BTF offsets, never through headers. */
struct file;
struct path;
struct linux_binprm;
struct socket;
struct sockaddr;
struct msghdr;
struct task_struct;
struct dentry;

#define GUARD_EPERM 1

/* Hide a value from the compiler so a bounding mask survives into the verifier's view. */
#define guard_barrier_var(v) asm volatile("" : "=r"(v) : "0"(v))
#define GUARD_AF_INET 2
#define GUARD_AF_INET6 10

/* One hook call's search state. Tables are consulted in order; the first deny wins. */
struct guard_ctx {
	__u32 hook; /* the hook whose mode, flags, tables and counters apply */
	__u32 kind; /* the event's hook field: the hook, or GUARD_EVENT_CHMOD */
	__u32 mode;
	__u32 hook_flags;
	__u32 dfa_slot;
	__u32 deny_rule;
	__u32 deny_match;
	__u32 denied;
	__u32 notify_rule;
	__u32 notify_match;
	__u32 flags;	/* GUARD_EVF_* */
	__u32 path_len; /* bytes, without the NUL; 0 = no path */
	__u32 target_tgid;
	__u32 file_mode; /* the event's mode: i_mode of a file, the new mode of a chmod */
	__u16 family;
	__u16 port; /* host order */
	struct guard_inode_key inode;
	__u8 addr[16];
	__u64 who[2]; /* the caller's subject-test bits, per bank (GUARD_HF_HAS_CONDS hooks) */
};

static __always_inline void *guard_read_ptr(const void *base, __u32 offset)
{
	void *value = 0;

	bpf_probe_read_kernel(&value, sizeof(value), (const char *)base + offset);
	return value;
}

static __always_inline void guard_count(__u32 hook, __u32 counter)
{
	__u32 idx = hook * GUARD_CNT_COUNT + counter;
	__u64 *value = guard_counters.lookup(&idx);

	if (value)
		*value += 1;
}

/* Is the current task governed? By tgid or by cgroup; the agent itself is always exempt. */
static __always_inline int guard_in_scope(struct guard_config *cfg)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 cgroup_id;

	if (tgid == cfg->agent_tgid)
		return 0;
	if (cfg->flags & GUARD_CF_ALL_TASKS)
		return 1;
	if (guard_scope_pids.lookup(&tgid))
		return 1;
	cgroup_id = bpf_get_current_cgroup_id();
	return guard_scope_cgroups.lookup(&cgroup_id) != 0;
}

/* One field's subject bits (both banks) for the value in w->key, ORed into ctx->who. */
static __always_inline void guard_who_add(struct guard_ctx *ctx, struct guard_who_buf *w,
					  __u32 field)
{
	struct guard_subject_bits *bits;

	w->key.field = field;
	bits = guard_subject_atoms.lookup(&w->key);
	if (bits) {
		ctx->who[0] |= bits->bank[0];
		ctx->who[1] |= bits->bank[1];
	}
}

/*
 * The caller's subject bits (guard_abi.h): its comm, its uid and its parent's name: the comm of
 * the real parent's thread-group leader or, when that was cut at 15 bytes, the leader's
 * executable's file name if it begins with the comm (process.parent.name in events says the same).
 * Read once, in the preamble, before the search branches: the verifier sees it once.
 */
static __always_inline void guard_read_who(struct guard_ctx *ctx)
{
	void *task = (void *)bpf_get_current_task(), *parent, *leader, *mm, *exe, *dentry, *name;
	__u32 zero = 0, uid = (__u32)bpf_get_current_uid_gid(), i;
	struct guard_who_buf *w = guard_who.lookup(&zero);
	long len;

	if (!w || !task)
		return;
	__builtin_memset(w, 0, sizeof(*w));
	/* up to the NUL: before 5.16 a comm is not zero-padded (strlcpy), the bytes after are stale */
	bpf_probe_read_kernel_str(w->key.value, GUARD_COMM_LEN, (char *)task + GUARD_OFF_TASK_COMM);
	guard_who_add(ctx, w, GUARD_SUBJ_NAME);
	__builtin_memset(w->key.value, 0, sizeof(w->key.value));
	__builtin_memcpy(w->key.value, &uid, sizeof(uid));
	guard_who_add(ctx, w, GUARD_SUBJ_UID);
	parent = guard_read_ptr(task, GUARD_OFF_TASK_REAL_PARENT);
	leader = parent ? guard_read_ptr(parent, GUARD_OFF_TASK_GROUP_LEADER) : 0;
	if (!leader)
		return;
	__builtin_memset(w->key.value, 0, sizeof(w->key.value));
	len = bpf_probe_read_kernel_str(w->key.value, GUARD_COMM_LEN,
					(char *)leader + GUARD_OFF_TASK_COMM);
	if (len == GUARD_COMM_LEN) { /* cut: the executable's file name, if it extends the comm */
		mm = guard_read_ptr(leader, GUARD_OFF_TASK_MM);
		exe = mm ? guard_read_ptr(mm, GUARD_OFF_MM_EXE_FILE) : 0;
		dentry = exe ? guard_read_ptr(exe, GUARD_OFF_FILE_F_PATH + GUARD_OFF_PATH_DENTRY) :
			       0;
		name = dentry ? guard_read_ptr(dentry,
					       GUARD_OFF_DENTRY_D_NAME + GUARD_OFF_QSTR_NAME) :
				0;
		len = name ? bpf_probe_read_kernel_str(w->parent, sizeof(w->parent), name) : 0;
		if (len > GUARD_COMM_LEN) {
			for (i = 0; i < GUARD_COMM_LEN - 1; i++)
				if (w->parent[i] != w->key.value[i])
					break;
			if (i == GUARD_COMM_LEN - 1) {
				/* longer than any subject value: '/' is in no name, so none matches */
				if (len >= (long)sizeof(w->parent)) {
					__builtin_memset(w->parent, 0, sizeof(w->parent));
					w->parent[0] = '/';
				}
				__builtin_memcpy(w->key.value, w->parent, sizeof(w->key.value));
			}
		}
	}
	guard_who_add(ctx, w, GUARD_SUBJ_PARENT_NAME);
}

/*
 * Every hook's preamble: fills ctx and returns 1 if the current task is governed by an active
 * hook. Off returns before anything is counted (an empty config map means off); an active hook
 * counts the call, governed or not, unless ``count`` is 0 (a constant: a call that is another way
 * to the hook's object, such as an executable mapping, is not one of the hook's calls).
 */
static __always_inline int guard_enter_who(__u32 hook, struct guard_ctx *ctx, int count, int who)
{
	__u32 zero = 0;
	struct guard_config *cfg = guard_config.lookup(&zero);

	__builtin_memset(ctx, 0, sizeof(*ctx));
	if (!cfg || hook >= GUARD_HOOK_COUNT)
		return 0;
	ctx->hook = hook;
	ctx->kind = hook;
	ctx->mode = cfg->mode[hook];
	ctx->hook_flags = cfg->hook_flags[hook];
	/* the process ring reports every governed exec already (with its argv): not twice */
	if (hook == GUARD_HOOK_EXEC && (cfg->flags & GUARD_CF_PROCESS_EVENTS))
		ctx->hook_flags &= ~GUARD_HF_EMIT_ALL;
	ctx->dfa_slot = cfg->dfa_slot[hook];
	if (ctx->mode == GUARD_MODE_OFF)
		return 0;
	if (count)
		guard_count(hook, GUARD_CNT_CALLS);
	if (!guard_in_scope(cfg))
		return 0;
	if (who && (ctx->hook_flags & GUARD_HF_HAS_CONDS))
		guard_read_who(ctx);
	/*
	 * The same bytes through a helper: the verifier then knows nothing of them on either way
	 * here, so the two walk on as one (known zeros on one way would double every later state).
	 */
	bpf_probe_read_kernel(ctx->who, sizeof(ctx->who), ctx->who);
	return 1;
}

/*
 * ``who`` (a constant) reads the caller for subject conditions: 0 where the program may not read
 * the current task (the loader refuses conditioned rules there).
 */
#define guard_enter_as(hook, ctx, count) guard_enter_who((hook), (ctx), (count), 1)
#define guard_enter(hook, ctx) guard_enter_as((hook), (ctx), 1)

/* Record one (rule, action): returns 1 once a deny has been found (the first deny and notify stay). */
static __always_inline int guard_take_rule(struct guard_ctx *ctx, __u32 rule, __u32 action,
					   __u32 match)
{
	if (rule && action == GUARD_ACTION_DENY && !ctx->denied) {
		ctx->denied = 1;
		ctx->deny_rule = rule;
		ctx->deny_match = match;
	} else if (rule && action == GUARD_ACTION_NOTIFY && !ctx->notify_rule) {
		ctx->notify_rule = rule;
		ctx->notify_match = match;
	}
	return ctx->denied;
}

/* 1 iff x != 0, without a branch. */
static __always_inline __u64 guard_nonzero(__u64 x)
{
	guard_barrier_var(x);
	return (x | (0 - x)) >> 63;
}

/*
 * ``deny`` if it is a rule, else the conditioned rule ``c`` if the caller meets it, else 0: branch-
 * free, so a table lookup costs the verifier's walk no split (every split would go through the
 * rest of the search, the DFA loop included).
 */
static __always_inline __u32 guard_cond_pick(struct guard_ctx *ctx, __u32 deny,
					     const struct guard_cond *c)
{
	__u64 bank = c->bank & 1, who, ok;

	who = (ctx->who[0] & (bank - 1)) | (ctx->who[1] & (0 - bank));
	ok = (1 - guard_nonzero((who & c->need) ^ c->need)) & (1 - guard_nonzero(who & c->forbid)) &
	     (1 - guard_nonzero(deny));
	return deny | (c->rule & (__u32)(0 - ok));
}

/* Record a static table's verdict for this hook: returns 1 once a deny has been found. */
static __always_inline int guard_take(struct guard_ctx *ctx, const struct guard_verdict *v,
				      __u32 match)
{
	__u32 h = ctx->hook & (GUARD_HOOK_COUNT - 1);

	if (v) {
		__u32 deny = v->deny[h];

		/* (subtree verdicts carry no conditions: ``match`` is a constant, this folds away) */
		if (match != GUARD_MATCH_SUBTREE) {
			deny = guard_cond_pick(ctx, deny, &v->cond[h * GUARD_COND_SLOTS]);
			deny = guard_cond_pick(ctx, deny, &v->cond[h * GUARD_COND_SLOTS + 1]);
		}
		guard_take_rule(ctx, deny, GUARD_ACTION_DENY, match);
		guard_take_rule(ctx, v->notify[h], GUARD_ACTION_NOTIFY, match);
	}
	return ctx->denied;
}

/* Armed per-entity verdicts: the current process's group, for this target, then for any target. */
static __always_inline int guard_dynamic_lookup(struct guard_ctx *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct guard_entity *entity = guard_entities.lookup(&tgid);
	struct guard_dyn_verdict *v;
	struct guard_dyn_key key = {};
	int attempt;

	if (!entity)
		return 0;
	key.group = entity->group;
	key.hook = ctx->hook;
	key.dev = ctx->inode.dev;
	key.ino = ctx->inode.ino;
	for (attempt = 0; attempt < 2; attempt++) {
		if (attempt == 1) {
			if (!key.dev && !key.ino)
				break;
			key.dev = 0;
			key.ino = 0;
		}
		v = guard_dynamic.lookup(&key);
		if (!v)
			continue;
		if (v->expires_ns && bpf_ktime_get_ns() > v->expires_ns) {
			guard_dynamic.delete(&key);
			continue;
		}
		if (guard_take_rule(ctx, v->rule_id, v->action, GUARD_MATCH_DYNAMIC))
			return 1;
	}
	return ctx->denied;
}

/*
 * The current task's lineage into an event: its real parent's tgid, and the start times
 * (task_struct.start_time, CLOCK_MONOTONIC ns) of its thread-group leader and of its real parent's,
 * which with the tgids name the processes (ECS entity ids) across pid reuse.
 */
static __always_inline void guard_lineage(struct guard_event *ev)
{
	void *task = (void *)bpf_get_current_task(), *leader, *parent;

	ev->start_ns = 0;
	ev->parent_start_ns = 0;
	ev->ppid = 0;
	if (!task)
		return;
	leader = guard_read_ptr(task, GUARD_OFF_TASK_GROUP_LEADER);
	if (leader)
		bpf_probe_read_kernel(&ev->start_ns, sizeof(ev->start_ns),
				      (char *)leader + GUARD_OFF_TASK_START_TIME);
	parent = guard_read_ptr(task, GUARD_OFF_TASK_REAL_PARENT);
	if (!parent)
		return;
	bpf_probe_read_kernel(&ev->ppid, sizeof(ev->ppid), (char *)parent + GUARD_OFF_TASK_TGID);
	leader = guard_read_ptr(parent, GUARD_OFF_TASK_GROUP_LEADER);
	if (leader)
		bpf_probe_read_kernel(&ev->parent_start_ns, sizeof(ev->parent_start_ns),
				      (char *)leader + GUARD_OFF_TASK_START_TIME);
}

/*
 * How a hook ends, a constant at every call site (so the verifier never sees a helper the program
 * type may not call): GUARD_REACT_KILL enforces a deny by killing the task (compat tracepoints)
 * instead of returning -EPERM; GUARD_REACT_NO_TASK leaves the lineage out of events where the
 * program type may not read the current task (the loader's probe decides, for cgroup programs).
 */
#define GUARD_REACT_DENY 0
#define GUARD_REACT_KILL 1
#define GUARD_REACT_NO_TASK 2
#define GUARD_SIGKILL 9

/*
 * A decision the guard_decisions ring had no room for: counted per hook and under its (rule, hook,
 * decision) in guard_decision_drops, which user space turns into audit records. The table first:
 * a reader that reads the per-hook counter before the table never sees more counted there than
 * the table holds for attributable drops. A table too full for a new key leaves the drop in the
 * per-hook counter only (user space reports that surplus without a rule).
 */
static __always_inline void guard_decision_dropped(struct guard_ctx *ctx, __u32 decision,
						   __u32 rule_id)
{
	struct guard_decision_drop_key key = {};
	__u64 one = 1, *count;

	key.rule_id = rule_id;
	key.hook = ctx->hook;
	key.decision = decision;
	count = guard_decision_drops.lookup(&key);
	if (!count) {
		if (guard_decision_drops.insert(&key, &one) == 0)
			goto counted;
		count = guard_decision_drops.lookup(&key); /* another CPU inserted it first */
	}
	if (count)
		__sync_fetch_and_add(count, 1);
counted:
	guard_count(ctx->hook, GUARD_CNT_DECISION_DROPS);
}

/*
 * Emit to a ring buffer: a decision (denied, would-block, killed) to guard_decisions, an allowed
 * event (telemetry) to guard_events. A full ring is counted, never blocks the hook; ``decision``
 * is a constant at every call site, so each one reserves from one ring only.
 */
static __always_inline void guard_emit_as(struct guard_ctx *ctx, __u32 decision, __u32 rule_id,
					  __u32 match, const char *path, int reaction)
{
	struct guard_event *ev;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (decision == GUARD_DECISION_ALLOWED)
		ev = guard_events.ringbuf_reserve(sizeof(struct guard_event));
	else
		ev = guard_decisions.ringbuf_reserve(sizeof(struct guard_event));
	if (!ev) {
		if (decision == GUARD_DECISION_ALLOWED)
			guard_count(ctx->hook, GUARD_CNT_RINGBUF_DROPS);
		else
			guard_decision_dropped(ctx, decision, rule_id);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->hook = ctx->kind;
	ev->decision = decision;
	ev->rule_id = rule_id;
	ev->match = match;
	ev->pid = (__u32)pid_tgid;
	ev->tgid = pid_tgid >> 32;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->flags = ctx->flags;
	ev->dev = ctx->inode.dev;
	ev->ino = ctx->inode.ino;
	ev->mode = ctx->file_mode;
	if (reaction & GUARD_REACT_NO_TASK) {
		ev->start_ns = 0;
		ev->parent_start_ns = 0;
		ev->ppid = 0;
	} else {
		guard_lineage(ev);
	}
	ev->target_tgid = ctx->target_tgid;
	ev->family = ctx->family;
	ev->port = ctx->port;
	__builtin_memcpy(ev->addr, ctx->addr, sizeof(ev->addr));
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	if (path && ctx->path_len)
		bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), path);
	else
		ev->path[0] = 0;
	guard_events.ringbuf_submit(ev, 0);
	guard_count(ctx->hook, GUARD_CNT_EMITTED);
}

#define guard_emit(ctx, decision, rule_id, match, path) \
	guard_emit_as((ctx), (decision), (rule_id), (match), (path), GUARD_REACT_DENY)

/*
 * Is the deciding rule's deny waived for this caller? Its executable (current->mm->exe_file, the
 * image the task runs; a kernel thread has none) by (device, inode) in guard_exempt for the rule.
 */
static __always_inline int guard_caller_exempt(__u32 rule)
{
	struct guard_exempt_key key = {};
	void *task = (void *)bpf_get_current_task(), *mm, *exe, *inode, *sb;
	__u32 dev = 0;

	if (!rule || !task)
		return 0;
	mm = guard_read_ptr(task, GUARD_OFF_TASK_MM);
	exe = mm ? guard_read_ptr(mm, GUARD_OFF_MM_EXE_FILE) : 0;
	inode = exe ? guard_read_ptr(exe, GUARD_OFF_FILE_F_INODE) : 0;
	if (!inode)
		return 0;
	bpf_probe_read_kernel(&key.ino, sizeof(key.ino), (char *)inode + GUARD_OFF_INODE_I_INO);
	sb = guard_read_ptr(inode, GUARD_OFF_INODE_I_SB);
	if (sb)
		bpf_probe_read_kernel(&dev, sizeof(dev), (char *)sb + GUARD_OFF_SB_S_DEV);
	key.dev = dev;
	key.rule_id = rule;
	return guard_exempt.lookup(&key) != 0;
}

/* A rule's mode: its guard_rule_modes entry, else the hook's (rule 0, the long-path deny, has none). */
static __always_inline __u32 guard_rule_mode(__u32 rule, __u32 hook_mode)
{
	__u32 *mode;

	if (!rule)
		return hook_mode;
	mode = guard_rule_modes.lookup(&rule);
	return mode ? *mode : hook_mode;
}

/*
 * The end of every hook. A deny whose rule exempts the caller's executable is dropped (hooks the
 * loader flags GUARD_HF_HAS_EXEMPTIONS; never where the task cannot be read). The deciding deny's
 * mode is its rule's (guard_rule_modes) or else the hook's: off drops the deny (as if the rule had
 * not matched), enforce returns -EPERM (a kill reaction instead sends SIGKILL to the current task,
 * which dies before it returns to user space), detect records a would-block. Without a deny, an
 * unresolvable path under GUARD_HF_LONG_PATH_DENY is denied under the hook's mode; otherwise a
 * notify match (unless its rule is off), the hook's "emit every call" interest, its "emit created
 * files" interest or an over-long path is reported as an allowed event. ``reaction`` is a constant
 * at every call site.
 */
static __always_inline int guard_finish_as(struct guard_ctx *ctx, const char *path, int reaction)
{
	__u32 mode = ctx->mode;

	if (ctx->denied && (ctx->hook_flags & GUARD_HF_HAS_EXEMPTIONS) &&
	    !(reaction & GUARD_REACT_NO_TASK) && guard_caller_exempt(ctx->deny_rule))
		ctx->denied = 0;
	if (ctx->denied) {
		mode = guard_rule_mode(ctx->deny_rule, ctx->mode);
		if (mode == GUARD_MODE_OFF)
			ctx->denied = 0;
	}
	if (!ctx->denied && (ctx->flags & GUARD_EVF_PATH_TOO_LONG) &&
	    (ctx->hook_flags & GUARD_HF_LONG_PATH_DENY)) {
		ctx->denied = 1;
		ctx->deny_rule = 0;
		ctx->deny_match = GUARD_MATCH_LONG_PATH;
		mode = ctx->mode;
	}
	if (ctx->denied) {
		if (mode == GUARD_MODE_ENFORCE) {
			guard_count(ctx->hook, GUARD_CNT_DENIES);
#ifdef GUARD_COMPAT
			if (reaction & GUARD_REACT_KILL) {
				bpf_send_signal(GUARD_SIGKILL);
				guard_emit_as(ctx, GUARD_DECISION_KILLED, ctx->deny_rule,
					      ctx->deny_match, path, reaction);
				return 0;
			}
#endif
			guard_emit_as(ctx, GUARD_DECISION_DENIED, ctx->deny_rule, ctx->deny_match,
				      path, reaction);
			return -GUARD_EPERM;
		}
		guard_count(ctx->hook, GUARD_CNT_WOULD_BLOCK);
		guard_emit_as(ctx, GUARD_DECISION_WOULD_BLOCK, ctx->deny_rule, ctx->deny_match,
			      path, reaction);
		return 0;
	}
	if (ctx->notify_rule && guard_rule_mode(ctx->notify_rule, ctx->mode) != GUARD_MODE_OFF)
		guard_emit_as(ctx, GUARD_DECISION_ALLOWED, ctx->notify_rule, ctx->notify_match,
			      path, reaction);
	else if (ctx->hook_flags & GUARD_HF_EMIT_ALL)
		guard_emit_as(ctx, GUARD_DECISION_ALLOWED, 0, GUARD_MATCH_ALL, path, reaction);
	else if ((ctx->hook_flags & GUARD_HF_EMIT_CREATED) && (ctx->flags & GUARD_EVF_CREATED))
		guard_emit_as(ctx, GUARD_DECISION_ALLOWED, 0, GUARD_MATCH_ALL, path, reaction);
	else if (ctx->flags & GUARD_EVF_PATH_TOO_LONG)
		guard_emit_as(ctx, GUARD_DECISION_ALLOWED, 0, GUARD_MATCH_LONG_PATH, path,
			      reaction);
	return 0;
}

#define guard_finish(ctx, path) guard_finish_as((ctx), (path), GUARD_REACT_DENY)

/*
 * The connect decision once ctx holds the destination (gc->addr as IPv6 or v4-mapped, port in
 * network order): armed verdicts, then (port, address), then (0 = every port, address).
 */
static __always_inline void guard_net_decide(struct guard_ctx *gc, __u16 port_be)
{
	struct guard_net_key key = {};

	if (guard_dynamic_lookup(gc))
		return;
	key.prefixlen = 16 + 128;
	__builtin_memcpy(&key.data[0], &port_be, 2);
	__builtin_memcpy(&key.data[2], gc->addr, 16);
	if (guard_take(gc, guard_nets.lookup(&key), GUARD_MATCH_NET))
		return;
	key.data[0] = 0;
	key.data[1] = 0;
	guard_take(gc, guard_nets.lookup(&key), GUARD_MATCH_NET);
}

/* (device, inode) of an inode into ctx->inode. */
static __always_inline void guard_inode_ids(struct guard_ctx *ctx, const void *inode)
{
	void *sb;
	__u32 dev = 0;

	bpf_probe_read_kernel(&ctx->inode.ino, sizeof(ctx->inode.ino),
			      (char *)inode + GUARD_OFF_INODE_I_INO);
	sb = guard_read_ptr(inode, GUARD_OFF_INODE_I_SB);
	if (sb)
		bpf_probe_read_kernel(&dev, sizeof(dev), (char *)sb + GUARD_OFF_SB_S_DEV);
	ctx->inode.dev = dev;
}

/*
 * (device, inode) and i_mode of a file into ctx, and from its f_mode the event flags
 * GUARD_EVF_CREATED (this open created it) and GUARD_EVF_WRITE (open for writing).
 */
static __always_inline void guard_file_inode(struct guard_ctx *ctx, struct file *file)
{
	void *inode = guard_read_ptr(file, GUARD_OFF_FILE_F_INODE);
	__u32 f_mode = 0;
	__u16 i_mode = 0;

	bpf_probe_read_kernel(&f_mode, sizeof(f_mode), (char *)file + GUARD_OFF_FILE_F_MODE);
	if (f_mode & GUARD_FMODE_CREATED)
		ctx->flags |= GUARD_EVF_CREATED;
	if (f_mode & GUARD_FMODE_WRITE)
		ctx->flags |= GUARD_EVF_WRITE;
	if (!inode)
		return;
	guard_inode_ids(ctx, inode);
	bpf_probe_read_kernel(&i_mode, sizeof(i_mode), (char *)inode + GUARD_OFF_INODE_I_MODE);
	ctx->file_mode = i_mode;
}

/*
 * Protection at exec (sched_process_exec, in the task, before it returns to user space): a process
 * that execs a protected file (guard_protect_exes) or takes a protected name (guard_protect_names)
 * is a protected ptrace target from then on, before it runs an instruction of the new image (user
 * space resolving names to pids would leave it open until its next refresh).
 */
static __always_inline void guard_protect_at_exec(void *task, void *bprm)
{
	void *file, *inode, *sb;
	struct guard_inode_key id = {};
	struct guard_comm_key name = {};
	struct guard_verdict *v = 0, copy;
	__u32 tgid = 0, dev = 0;

	bpf_probe_read_kernel(&tgid, sizeof(tgid), (char *)task + GUARD_OFF_TASK_TGID);
	file = bprm ? guard_read_ptr(bprm, GUARD_OFF_BINPRM_FILE) : 0;
	inode = file ? guard_read_ptr(file, GUARD_OFF_FILE_F_INODE) : 0;
	if (inode) {
		bpf_probe_read_kernel(&id.ino, sizeof(id.ino),
				      (char *)inode + GUARD_OFF_INODE_I_INO);
		sb = guard_read_ptr(inode, GUARD_OFF_INODE_I_SB);
		if (sb)
			bpf_probe_read_kernel(&dev, sizeof(dev), (char *)sb + GUARD_OFF_SB_S_DEV);
		id.dev = dev;
		v = guard_protect_exes.lookup(&id);
	}
	if (!v) {
		bpf_get_current_comm(name.comm, sizeof(name.comm));
		v = guard_protect_names.lookup(&name);
	}
	if (v) {
		copy = *v;
		guard_ptrace_targets.update(&tgid, &copy);
	}
}

/* The dentry of a file (file->f_path.dentry). */
static __always_inline void *guard_file_dentry(struct file *file)
{
	return guard_read_ptr(file, GUARD_OFF_FILE_F_PATH + GUARD_OFF_PATH_DENTRY);
}

/*
 * Subtree verdicts: the directories above ``dentry`` on its filesystem (d_parent up to that
 * filesystem's root, at most GUARD_SUBTREE_DEPTH of them), each by (device, inode) in
 * guard_subtrees. A dentry's parents do not depend on the path that reached it, so a bind mount, a
 * chroot or a mount namespace of one's own leads to the same directories. The walk stays on the
 * file's filesystem: a directory of another filesystem mounted above it is not looked at. Only on
 * hooks the loader flags GUARD_HF_HAS_SUBTREES. Returns 1 once a deny has been found.
 */
static __always_inline int guard_subtree_lookup(struct guard_ctx *ctx, void *dentry)
{
	struct guard_inode_key key = {};
	void *parent, *inode;
	__u32 i;

	if (!dentry || !(ctx->hook_flags & GUARD_HF_HAS_SUBTREES))
		return ctx->denied;
	key.dev = ctx->inode.dev;
	for (i = 0; i < GUARD_SUBTREE_DEPTH; i++) {
		parent = guard_read_ptr(dentry, GUARD_OFF_DENTRY_D_PARENT);
		if (!parent || parent == dentry)
			break;
		inode = guard_read_ptr(parent, GUARD_OFF_DENTRY_D_INODE);
		if (!inode)
			break;
		key.ino = 0;
		bpf_probe_read_kernel(&key.ino, sizeof(key.ino),
				      (char *)inode + GUARD_OFF_INODE_I_INO);
		if (guard_take(ctx, guard_subtrees.lookup(&key), GUARD_MATCH_SUBTREE))
			break;
		dentry = parent;
	}
	return ctx->denied;
}

/* The per-CPU scratch buffers: [0] raw d_path output, [1] zero-padded key, [2] reversed key. */
static __always_inline int guard_path_buffers(struct guard_lpm_path_key **raw,
					      struct guard_lpm_path_key **key,
					      struct guard_lpm_path_key **rev)
{
	__u32 i0 = 0, i1 = 1, i2 = 2;

	*raw = guard_scratch.lookup(&i0);
	*key = guard_scratch.lookup(&i1);
	*rev = guard_scratch.lookup(&i2);
	return *raw && *key && *rev;
}

#ifndef GUARD_NO_D_PATH
/*
 * The path of a file, NUL-terminated and zero-padded into key->path (bpf_d_path leaves stale bytes
 * after the NUL), with key->prefixlen set for an LPM lookup. A path that does not fit (>= 256 bytes)
 * or cannot be resolved sets GUARD_EVF_PATH_TOO_LONG and is counted: never a silent allow.
 */
static __always_inline int guard_file_path(struct guard_ctx *ctx, struct file *file,
					   struct guard_lpm_path_key *raw,
					   struct guard_lpm_path_key *key)
{
	long len = bpf_d_path((struct path *)((char *)file + GUARD_OFF_FILE_F_PATH), raw->path,
			      sizeof(raw->path));

	if (len <= 1 || len > GUARD_PATH_MAX) {
		guard_count(ctx->hook, GUARD_CNT_PATH_TOO_LONG);
		ctx->flags |= GUARD_EVF_PATH_TOO_LONG;
		return -1;
	}
	__builtin_memset(key->path, 0, sizeof(key->path));
	bpf_probe_read_kernel_str(key->path, sizeof(key->path), raw->path);
	key->prefixlen = 8 * GUARD_PATH_MAX;
	ctx->path_len = (__u32)len - 1;
	return 0;
}
#endif

/*
 * min(best, hit) over rule ids where 0 means "none", without a branch: ids are shifted down by one
 * (0 wraps to the largest value) and the comparison is the sign of a 64-bit difference. The DFA
 * loop stays branch-free apart from its length test, so the verifier's walk of its 255 iterations
 * pushes one pending state per iteration.
 */
static __always_inline __u32 guard_min_id(__u32 best_m1, __u32 hit)
{
	__u64 h = (__u32)(hit - 1), b = best_m1, lt;

	/* Opaque to clang, which would otherwise turn the sign test back into a branch. */
	guard_barrier_var(h);
	guard_barrier_var(b);
	lt = (h - b) >> 63;
	return (__u32)(b ^ ((h ^ b) & (0 - lt)));
}

/*
 * Walk the hook's DFA over the path (guard/lsm/dfa.py documents the loop this mirrors). The table
 * is one map value and every index is masked into it, so no step needs a lookup or a bounds
 * branch; the anchored lane always steps (from dead it stays dead, and dead reports nothing).
 */
static __always_inline void guard_dfa_lookup(struct guard_ctx *ctx, const char *path)
{
	__u32 slot = ctx->dfa_slot, len = ctx->path_len, best_m1 = 0xffffffff;
	__u32 s, a, nc, best, i, idx;
	struct guard_dfa_rule *rule;
	struct guard_dfa *d;

	if (!slot || len == 0 || len >= GUARD_PATH_MAX)
		return;
	slot -= 1;
	d = guard_dfas.lookup(&slot);
	if (!d || !d->num_states)
		return;
	nc = d->num_classes;
	s = d->start;
	a = d->anchored_start;
	for (i = 0; i < GUARD_PATH_MAX - 1; i++) {
		__u32 c, j = i, n = len;

		/*
		 * Opaque bound: clang would fold both tests into `i != min(len, 255)`, which the
		 * verifier cannot bound.
		 */
		guard_barrier_var(n);
		if (i >= n)
			break;
		/* keep the mask: clang would turn path[i] into a pointer walk */
		guard_barrier_var(j);
		c = d->byte_class[(__u8)path[j & (GUARD_PATH_MAX - 1)]];
		s = d->trans[(s * nc + c) & (GUARD_DFA_TRANS - 1)];
		a = d->trans[(a * nc + c) & (GUARD_DFA_TRANS - 1)];
		best_m1 = guard_min_id(best_m1, d->states[s & (GUARD_DFA_STATES - 1)].step_first);
		best_m1 = guard_min_id(best_m1, d->states[a & (GUARD_DFA_STATES - 1)].step_first);
	}
	best_m1 = guard_min_id(best_m1, d->states[s & (GUARD_DFA_STATES - 1)].accept_first);
	best_m1 = guard_min_id(best_m1, d->states[a & (GUARD_DFA_STATES - 1)].accept_first);
	best = best_m1 + 1;
	if (!best)
		return;
	idx = d->rule_base + best - 1;
	rule = guard_dfa_rules.lookup(&idx);
	if (rule)
		guard_take_rule(ctx, rule->rule_id, rule->action, GUARD_MATCH_DFA);
}

/* Exact, prefix, suffix and DFA verdicts of a resolved path (key from guard_file_path). */
static __always_inline void guard_path_lookups(struct guard_ctx *ctx,
					       struct guard_lpm_path_key *key,
					       struct guard_lpm_path_key *rev)
{
	__u32 len = ctx->path_len, i;

	if (guard_take(ctx, guard_paths.lookup((struct guard_path_key *)key->path),
		       GUARD_MATCH_PATH))
		return;
	if (guard_take(ctx, guard_prefixes.lookup(key), GUARD_MATCH_PREFIX))
		return;
	if (!(ctx->hook_flags & GUARD_HF_HAS_SUFFIXES))
		goto dfa; /* no suffix verdict on this hook: spare every call the reversal */
	rev->prefixlen = 8 * GUARD_PATH_MAX;
	/*
	 * Branch-free: byte i is path[len - 1 - i] masked to zero past the length. A branch here would
	 * split the verifier's walk by length and send every split through the DFA loop again.
	 */
	for (i = 0; i < GUARD_PATH_MAX; i++) {
		__u64 j = len - 1 - i, before = (__u64)i - (__u64)len; /* bit 63 set iff i < len */

		guard_barrier_var(j);
		guard_barrier_var(before);
		rev->path[i] = key->path[j & (GUARD_PATH_MAX - 1)] & (__u8)(0 - (before >> 63));
	}
	if (guard_take(ctx, guard_suffixes.lookup(rev), GUARD_MATCH_SUFFIX))
		return;
dfa:
	guard_dfa_lookup(ctx, key->path);
}

/*
 * A file's verdicts once ctx holds the inode and, when have_path, key the path: dynamic, inode,
 * path verdicts, then subtree (the directories above ``dentry``). The first deny ends the search.
 * The subtree walk comes last so that the verifier walks the DFA loop before it, not once per way
 * out of the walk.
 */
static __always_inline void guard_file_lookups(struct guard_ctx *ctx, void *dentry, int have_path,
					       struct guard_lpm_path_key *key,
					       struct guard_lpm_path_key *rev)
{
	if (guard_dynamic_lookup(ctx))
		return;
	if (guard_take(ctx, guard_inodes.lookup(&ctx->inode), GUARD_MATCH_INODE))
		return;
	if (have_path && key && rev)
		guard_path_lookups(ctx, key, rev);
	guard_subtree_lookup(ctx, dentry);
}

/* A file hook's verdicts (guard_file_lookups), then the decision (``reaction``: a constant). */
static __always_inline int guard_file_verdicts(struct guard_ctx *ctx, void *dentry, int have_path,
					       struct guard_lpm_path_key *key,
					       struct guard_lpm_path_key *rev, int reaction)
{
	guard_file_lookups(ctx, dentry, have_path, key, rev);
	return guard_finish_as(ctx, have_path && key ? key->path : 0, reaction);
}

/*
 * A file hook (exec, file_open): resolve the path, then dynamic, inode and path verdicts. Without
 * bpf_d_path (5.10's BPF-LSM) only the dynamic and inode verdicts apply; the loader refuses path
 * rules there.
 */
static __always_inline int guard_file_hook(__u32 hook, struct file *file)
{
	struct guard_ctx ctx;
	struct guard_lpm_path_key *raw = 0, *key = 0, *rev = 0;
	int have_path = 0;

	if (!guard_enter(hook, &ctx) || !file)
		return 0;
	guard_file_inode(&ctx, file);
#ifndef GUARD_NO_D_PATH
	if (guard_path_buffers(&raw, &key, &rev))
		have_path = guard_file_path(&ctx, file, raw, key) == 0;
#endif
	return guard_file_verdicts(&ctx, guard_file_dentry(file), have_path, key, rev,
				   GUARD_REACT_DENY);
}

#endif /* GUARD_HELPERS_H */
