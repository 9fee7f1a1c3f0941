"""Pod placement: the cluster simulator, the policy interface and registry, and the baselines.

Modules: :mod:`~components.placement.kube_scores` (kube-scheduler's scoring formulas),
:mod:`~components.placement.policy` (interface, cluster state, registry),
:mod:`~components.placement.gpu` (GPU rules), :mod:`~components.placement.baselines`,
:mod:`~components.placement.workload` (trace and nodes table as arrays),
:mod:`~components.placement.simulator`, :mod:`~components.placement.evaluate`,
:mod:`~components.placement.families` (workload families from the real traces and the
generator) and :mod:`~components.placement.cli`; the DQN lives in :mod:`components.placement.dqn`.
See README.md.
"""
