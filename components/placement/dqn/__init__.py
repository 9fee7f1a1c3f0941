"""The DQN placement policy: its inputs, scoring network, replay, double-DQN agent, environment
and training.

:mod:`~components.placement.dqn.inputs` needs only numpy (the extender and the KServe predictor
build the policy's inputs with it); importing :mod:`~components.placement.dqn.policy`, which
needs torch, registers the ``dqn`` policy (see :mod:`components.placement.policy`).
"""
