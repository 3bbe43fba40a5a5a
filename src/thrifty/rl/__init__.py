"""Online decision-making on the same spine: MiniGrid environments (gymnasium, Farama's
``minigrid``), planner demonstrations, and PPO through Stable-Baselines3 with thrifty's
pretrained policies. Everything here needs the ``rl`` extra (``pip install 'thrifty[rl]'``);
the data source and objective that train on the demonstrations (``thrifty.data.demo_source``,
``thrifty.objectives.bc``) do not."""
