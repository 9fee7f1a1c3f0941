"""The DQN placement policy: scoring network, replay, double-DQN agent, environment, training.

Importing the package registers the ``dqn`` policy (see :mod:`components.placement.policy`).
"""

from components.placement.dqn.policy import DQNPolicy, load_dqn_policy, save_dqn_model

__all__ = ["DQNPolicy", "load_dqn_policy", "save_dqn_model"]
