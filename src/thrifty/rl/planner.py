"""The expert for MiniGrid demonstrations: breadth-first search over the environment's full
state (agent position and direction, what it carries, every cell's object and state).

MiniGrid levels are deterministic once generated, so a copy of the environment is an exact
model: the planner expands states by stepping copies with each useful action and returns the
shortest action sequence that ends the episode with a reward. It is written here rather than
taken from a library because MiniGrid ships no planner and the search needs only its public
step / grid API. ``done`` is never useful; the other six actions are all searched, so tasks
that need ``drop`` (KeyCorridor) are solvable too.
"""

from __future__ import annotations

import copy
from collections import deque

SEARCHED_ACTIONS = (0, 1, 2, 3, 4, 5)  # left, right, forward, pickup, drop, toggle


def state_key(env) -> tuple:
    """What decides the future of a MiniGrid level: the grid's cells, the agent and its load."""
    carrying = env.carrying
    load = None if carrying is None else (carrying.type, carrying.color)
    return (tuple(env.agent_pos), int(env.agent_dir), load, env.grid.encode().tobytes())


def shortest_plan(env, max_states: int = 200_000) -> list[int] | None:
    """The shortest list of actions that solves the level from ``env``'s current state (the
    unwrapped MiniGrid env, left unchanged), or None when no plan exists within the episode's
    remaining steps or ``max_states`` expanded states."""
    start = copy.deepcopy(env)
    frontier = deque([(start, [])])
    seen = {state_key(start)}
    while frontier:
        node, plan = frontier.popleft()
        for action in SEARCHED_ACTIONS:
            child = copy.deepcopy(node)
            _, reward, terminated, truncated, _ = child.step(action)
            if terminated:
                if reward > 0:
                    return plan + [action]
                continue  # lava or a wrong ending: a dead branch
            if truncated:
                continue
            key = state_key(child)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > max_states:
                return None
            frontier.append((child, plan + [action]))
    return None
