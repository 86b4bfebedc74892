"""Request router that keeps every call of an LM session on the replica holding its KV cache.

A consistent-hash ring (Ray's `ConsistentHashRouter`) follows the replica set: when autoscaling
adds an LM replica, about 1/k of the live sessions map to it, and their next steps find no cache.
This router remembers instead: a session's first `generate` goes to the replica with the most free
KV budget (each LM replica reports it through `record_routing_stats`; ties and replicas that have
not reported yet are ordered at random), the session is pinned to the replica that accepted it,
and every later call goes there, whatever replicas join or leave meanwhile. `release` unpins.

Pins live in the router, which lives in the caller's process: all calls of one search come from
the one orchestrator replica that runs it, so that router sees all of them.
"""

from __future__ import annotations

import random

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica


class SessionPinRouter(RequestRouter):
    """Routes by `handle.options(session_id=...)`; a `generate` of no pinned session (a new
    search) goes to the replica with the most free KV budget that has room (Serve walks the ranks
    in order and skips full replicas); other unpinned calls go to a random replica.

    A call whose pinned replica has gone (it died) is routed like a new one: that replica answers
    that it does not hold the session, and the search ends with UNAVAILABLE instead of waiting for
    a replica that will never come back."""

    pin_method, unpin_method = "generate", "release"

    def initialize_state(self, **kwargs) -> None:
        self._pins: dict[str, ReplicaID] = {}

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        if pending_request is not None:
            pending_request.routing_context.should_backoff = True  # a full replica: wait, do not spin
            pinned = self._replicas.get(self._pins.get(pending_request.metadata.session_id))
            if pinned is not None:
                return [[pinned]]
        shuffled = random.sample(candidate_replicas, len(candidate_replicas))
        if pending_request is not None and pending_request.metadata.call_method == self.pin_method:
            # a new session: where its KV cache fits best. Other calls (probes) spread at random.
            shuffled.sort(key=lambda replica: -(replica.routing_stats or {}).get("kv_free_tokens", 0))
        return [[replica] for replica in shuffled]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result) -> None:
        session = pending_request.metadata.session_id
        if not session:
            return
        method = pending_request.metadata.call_method
        if method == self.pin_method:
            self._pins[session] = replica_id
        elif method == self.unpin_method:
            self._pins.pop(session, None)
