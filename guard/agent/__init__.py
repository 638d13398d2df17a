"""The agent: the composition root that turns a policy, a data plane and the audit trail into the product."""
