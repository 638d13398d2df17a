"""The plan: a policy compiled for the kernel (inline, sequence-armed or detect-only), and explain."""
