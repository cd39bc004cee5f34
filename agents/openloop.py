"""What the world model believes: open-loop predictions over a recorded episode.

The model observes the first ``context`` steps (the Dreamer posterior, the TD-MPC encoder), then rolls its
dynamics forward on the actions actually taken, seeing no further observation (the Dreamer prior's mode,
the TD-MPC latent dynamics). Every step gets a predicted reward and value; a Dreamer world model with an
image decoder also gets a predicted frame. DreamerPro and TD-MPC have no decoder, so no frames.

An episode is a dict of numpy arrays over steps 0..T-1 from the episode's first step: the observation keys
(``image`` uint8 (T, H, W, C), ``state``), ``action`` (T, A) the action that led INTO each step (row 0 is
ignored) and ``reward`` (T,) the reward received on entering it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class OpenLoop:
    context: int  # steps observed; predictions from step ``context`` on are open loop
    reward: np.ndarray  # (T,) predicted reward per step (NaN where the model predicts none)
    true_reward: np.ndarray  # (T,) the episode's rewards as the reward head was trained on them
    value: np.ndarray  # (T,) predicted value of each step (discounted rewards after it)
    discount: float  # the agent's discount, to compare the values with a return-to-go
    frames: np.ndarray | None  # (T, H, W, C) uint8 decoded frames; None without an image decoder

    @property
    def horizon(self) -> int:
        return len(self.reward) - self.context


def open_loop(agent: Any, episode: dict[str, np.ndarray], context: int, seed: int = 0) -> OpenLoop:
    """Open-loop predictions of a trained Dreamer (V2/V3/Pro) or TD-MPC agent over ``episode``.

    ``seed`` fixes the Dreamer posterior's samples during the context (the open-loop part is deterministic);
    the caller's random state is left as it was. ValueError for an agent of another kind or a context that
    leaves no open-loop step."""
    length = len(episode["action"])
    if not 1 <= context < length:
        raise ValueError(f"context={context} is invalid for a {length}-step episode; valid: 1..{length - 1}")
    device = torch.device(agent.device)
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if hasattr(agent, "wm"):
            return _dreamer(agent, episode, context)
        if hasattr(agent, "model") and hasattr(agent.model, "next"):
            return _tdmpc(agent, episode, context)
    raise ValueError(
        f"agent {type(agent).__name__} is invalid for open-loop predictions; valid: Dreamer, TD-MPC"
    )


def _dreamer(agent: Any, episode: dict[str, np.ndarray], context: int) -> OpenLoop:
    wm, rssm = agent.wm, agent.wm.rssm
    is_first = np.zeros(len(episode["action"]), np.float32)
    is_first[0] = 1.0
    observed = {key: episode[key][None, :context] for key in agent.obs_keys}
    # The agent's own preprocessing (uint8 images into the encoder's input space), not a copy of it.
    data = agent.to_device({**observed, "action": episode["action"][None], "is_first": is_first[None]})
    # Only the context's observations are encoded: what follows cannot reach the open-loop predictions.
    post, _ = rssm.observe(wm.encode(data), data["action"][:, :context], data["is_first"][:, :context])
    state = {"deter": post["deter"][:, -1], "stoch": post["stoch"][:, -1]}
    feats = [rssm.feat(post)[0]]
    for t in range(context, len(is_first)):
        state = rssm.img_step(state, data["action"][:, t], sample=False)
        feats.append(rssm.feat(state))
    feat = torch.cat(feats).float()
    frames = None
    if "image" in agent.obs_keys and hasattr(wm, "cnn_decoder"):
        mean = wm.cnn_decoder(feat)  # (T, C, H, W) in the encoder's input space [-0.5, 0.5]
        frames = ((mean.movedim(-3, -1) + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    true_reward = np.asarray(episode["reward"], np.float32)
    if agent.cfg["clip_rewards"] == "tanh":
        true_reward = np.tanh(true_reward)
    return OpenLoop(
        context=context,
        reward=wm.reward(feat).float().cpu().numpy(),
        true_reward=true_reward,
        value=agent.ac.value(agent.ac.critic, feat).float().cpu().numpy(),
        discount=float(agent.cfg["discount"]),
        frames=frames,
    )


def _tdmpc(agent: Any, episode: dict[str, np.ndarray], context: int) -> OpenLoop:
    from agents.tdmpc import stack_frames

    model, device = agent.model, torch.device(agent.device)
    obs = torch.as_tensor(np.ascontiguousarray(episode[agent.obs_key][:context]), device=device)
    obs = obs if agent.obs_key == "image" else obs.float()
    # The policy fills its frame stack with the first observation at a reset: pad the same way.
    padded = torch.cat([obs[:1].expand(agent.stack - 1, *obs.shape[1:]), obs])[:, None]
    is_first = torch.zeros(len(padded), 1, dtype=torch.bool, device=device)
    is_first[0] = True
    latents = [model.h(stack_frames(padded, is_first, agent.stack)[:, 0])]  # (context, L)
    action = torch.as_tensor(episode["action"], device=device).float()
    # One-step rewards inside the context: R(z_{t-1}, a_t) for the reward received on entering step t.
    _, context_reward = model.next(latents[0][:-1], action[1:context])
    rewards = [torch.full((1,), float("nan"), device=device), context_reward]
    z = latents[0][-1:]
    for t in range(context, len(action)):
        z, reward = model.next(z, action[t : t + 1])
        latents.append(z)
        rewards.append(reward)
    latent = torch.cat(latents)
    value = torch.min(*model.Q(latent, model.pi(latent)))
    return OpenLoop(
        context=context,
        reward=torch.cat(rewards).float().cpu().numpy(),
        true_reward=np.asarray(episode["reward"], np.float32),
        value=value.float().cpu().numpy(),
        discount=float(agent.config["discount"]),
        frames=None,
    )
