"""Replay of a synthetic day of pod arrivals through the scheduler extender over HTTP.

* :mod:`.extender_policy`: :class:`ExtenderPolicy`, a placement policy that asks a running
  extender (filter, then prioritize) for every pod the simulator schedules.
* :mod:`.snapshot`: the simulator's live cluster state as node metrics, node features and the
  snapshot file the extender re-reads.
* :mod:`.prometheus`: the extender's ``/metrics`` counters.
* :mod:`.run`: :func:`run_replay`, the summary beside the simulator's baselines, the report.
* :mod:`.cli`: ``add_replay_parser(subparsers)`` for ``mlsched replay``.
"""
