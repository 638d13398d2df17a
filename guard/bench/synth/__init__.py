"""The one synthetic workload of the benchmarks and tests: ECS events and the rules that watch them.

:func:`generate_events` is a deterministic stream of nested ECS documents (process trees from
web, database, CI, bastion and Kubernetes hosts; file opens; connections, some IPv6; rare attack
scenarios, so about 0.7% of events alert under the generated rules). :func:`generate_rules` is
policy TOML of realistic Linux detections, single events and sequences, a few of which target
those attacks. Both are pure functions of their sizes and seed.
"""

from __future__ import annotations

from guard.bench.synth.events import generate_events
from guard.bench.synth.rules import generate_rules
from guard.bench.synth.world import Event

__all__ = ["Event", "generate_events", "generate_rules"]
