"""Recurrent state-space model with discrete or Gaussian latents (DreamerV2/V3) and its KL losses.

State: ``deter`` (N, D) GRU state and ``stoch`` (N, S, K) one-hot samples with ``logits`` their log-probs
(``latent: discrete``), or ``stoch`` (N, S) Gaussian samples with their ``mean`` and ``std`` (``latent:
gaussian``: DV2 nets.py EnsembleRSSM with discrete=False, which DreamerPro's DMC preset uses; std =
2 sigmoid(x / 2) + min_std, DV2 std_act sigmoid2).
DV2 (dreamerv2 common/nets.py EnsembleRSSM; HD wmlib-torch nets/dynamics/rssm.py): ELU, no norm in the MLP
layers but a LayerNorm inside the GRU (``GRUCell(..., norm=True)``, whose Linear keeps its bias), zero initial
state, no unimix. DV3 (dreamerv3 @8fa35f8 nets.py RSSM): SiLU + LayerNorm everywhere (the GRU's Linear has no
bias), learned initial state, unimix 1%, action clip 1.

``observe`` precomputes every input projection that does not depend on the recurrence (the action part of
the prior input, the embedding part of the posterior input, the prior head) for the whole sequence, so the
Python loop over time only does the GRU step and the posterior sample.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from agents.nets import Normal, activation, one_hot, onehot_st, unimix_logits

State = dict[str, torch.Tensor]


class GRUCell(nn.Module):
    """DV2/DV3 GRU: one Linear over [input, state], LayerNorm (eps 1e-3, as TF), update gate bias -1."""

    def __init__(self, inp: int, size: int, norm: bool, bias: bool):
        super().__init__()
        self.linear = nn.Linear(inp + size, 3 * size, bias=bias)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3) if norm else nn.Identity()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)  # DV2/DV3 GRUCell: update_bias -1
        return update * cand + (1 - update) * h


class RSSM(nn.Module):
    def __init__(self, embed: int, actions: int, cfg: dict[str, Any]):
        super().__init__()
        self.deter, self.stoch, self.classes = cfg["deter"], cfg["stoch"], cfg["classes"]
        self.unimix, self.action_clip = cfg["unimix"], cfg["action_clip"]
        hidden, norm, act = cfg["hidden"], cfg["norm"], cfg["act"]
        # hand-built configs without the knobs keep categorical latents
        self.gaussian = cfg.get("latent", "discrete") == "gaussian"
        self.min_std = cfg.get("latent_min_std", 0.1)
        flat = self.stoch if self.gaussian else self.stoch * self.classes  # a flattened sample
        self.flat = flat
        self.stoch_shape = (self.stoch,) if self.gaussian else (self.stoch, self.classes)
        stats = 2 * self.stoch if self.gaussian else flat  # DV2 _suff_stats_layer: mean and std, or logits

        def block(inp: int, bias: bool = True) -> nn.Sequential:
            mods = [nn.Linear(inp, hidden, bias=bias and not norm)]
            return nn.Sequential(*mods, *([nn.LayerNorm(hidden, eps=1e-3)] if norm else []), activation(act))

        # The first Linear of each input is split so that the sequence-wide part is computed once.
        self.img_in_stoch = nn.Linear(flat, hidden, bias=not norm)
        self.img_in_action = nn.Linear(actions, hidden, bias=False)
        self.img_in = nn.Sequential(*([nn.LayerNorm(hidden, eps=1e-3)] if norm else []), activation(act))
        self.cell = GRUCell(hidden, self.deter, cfg["gru_norm"], cfg["gru_bias"])
        self.img_out = nn.Sequential(block(self.deter), nn.Linear(hidden, stats))
        self.obs_in_deter = nn.Linear(self.deter, hidden, bias=not norm)
        self.obs_in_embed = nn.Linear(embed, hidden, bias=False)
        self.obs_in = nn.Sequential(*([nn.LayerNorm(hidden, eps=1e-3)] if norm else []), activation(act))
        self.obs_out = nn.Linear(hidden, stats)
        # DV3 rssm.initial: learned; DV2: zeros
        self.initial = nn.Parameter(torch.zeros(self.deter)) if cfg["initial"] == "learned" else None

    def split_linears(self) -> list[tuple[nn.Linear, ...]]:
        """Linears that the references build as one layer over concatenated inputs ([stoch, action] into
        the prior, [deter, embed] into the posterior); split here so that the sequence-wide part is computed
        once. Their init uses the whole layer's fans."""
        return [(self.img_in_stoch, self.img_in_action), (self.obs_in_deter, self.obs_in_embed)]

    @property
    def feat_dim(self) -> int:
        return self.deter + self.flat

    def _flatten(self, stoch: torch.Tensor) -> torch.Tensor:
        return stoch if self.gaussian else stoch.flatten(-2)

    def feat(self, state: State) -> torch.Tensor:
        return torch.cat([state["deter"], self._flatten(state["stoch"])], -1)

    def initial_state(self, n: int, device: torch.device) -> State:
        if self.initial is None:  # DV2: zeros
            deter = torch.zeros(n, self.deter, device=device)
            stoch = torch.zeros(n, *self.stoch_shape, device=device)
            return {"deter": deter, "stoch": stoch}
        deter = torch.tanh(self.initial)[None]
        stoch = self._mode(self._prior_stats(deter))  # DV3: the initial stoch is the prior's mode
        return {"deter": deter.expand(n, -1), "stoch": stoch.expand(n, *stoch.shape[1:])}

    def _stats(self, out: torch.Tensor) -> State:
        """The latent distribution from a head's output: categorical log-probs (with unimix), or the Gaussian's
        mean and std (DV2 _suff_stats_layer: split in two, std = 2 sigmoid(x / 2) + min_std, in float32)."""
        if self.gaussian:
            mean, std = out.float().chunk(2, -1)
            return {"mean": mean, "std": 2 * torch.sigmoid(std / 2) + self.min_std}
        logits = out.reshape(*out.shape[:-1], self.stoch, self.classes)
        return {"logits": unimix_logits(logits, self.unimix)}

    def _prior_stats(self, deter: torch.Tensor) -> State:
        return self._stats(self.img_out(deter))

    def _sample(self, stats: State) -> torch.Tensor:
        if self.gaussian:
            return stats["mean"] + stats["std"] * torch.randn_like(stats["mean"])
        return onehot_st(stats["logits"].exp())

    def _mode(self, stats: State) -> torch.Tensor:
        if self.gaussian:
            return stats["mean"]
        return one_hot(stats["logits"].argmax(-1), stats["logits"])

    def _clip(self, action: torch.Tensor) -> torch.Tensor:
        if self.action_clip <= 0:
            return action
        # DV3 RSSM: scale actions into [-clip, clip] with a stopped-gradient factor
        return (
            action
            * (self.action_clip / torch.maximum(action.abs(), action.new_tensor(self.action_clip))).detach()
        )

    @staticmethod
    def _reset(state: State, init: State, is_first: torch.Tensor) -> State:
        mask = is_first.to(state["deter"].dtype)
        stoch_mask = mask.reshape(-1, *[1] * (state["stoch"].dim() - 1))
        return {
            "deter": torch.lerp(state["deter"], init["deter"], mask[:, None]),
            "stoch": torch.lerp(state["stoch"], init["stoch"], stoch_mask),
        }

    def img_step(self, state: State, action: torch.Tensor, sample: bool = True) -> State:
        """Prior step: (state, action) -> next state without an observation."""
        x = self.img_in(
            self.img_in_stoch(self._flatten(state["stoch"])) + self.img_in_action(self._clip(action))
        )
        deter = self.cell(x, state["deter"])
        stats = self._prior_stats(deter)
        stoch = self._sample(stats) if sample else self._mode(stats)
        return {"deter": deter, "stoch": stoch, **stats}

    def observe(
        self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor, state: State | None = None
    ) -> tuple[State, State]:
        """Posterior and prior over a sequence. embed (B, T, E), action (B, T, A) the action INTO step t,
        is_first (B, T). Returns (post, prior) with (B, T, ...) tensors; post has deter, stoch and the latent's
        parameters (logits, or mean and std), prior has deter and the parameters."""
        init = self.initial_state(len(embed), embed.device)
        state = init if state is None else state
        action_in = self.img_in_action(self._clip(action))  # (B, T, H) once for all steps
        embed_in = self.obs_in_embed(embed)
        post = self.scan(state, init, is_first.to(embed.dtype), action_in, embed_in)
        prior = {"deter": post["deter"], **self._prior_stats(post["deter"])}  # one batched prior head call
        return post, prior

    def scan(
        self, state: State, init: State, first: torch.Tensor, action_in: torch.Tensor, embed_in: torch.Tensor
    ) -> State:
        """The recurrence of ``observe`` over T steps from projected inputs (B, T, ...): the posterior
        states stacked along T. One function with static shapes, so that ``agent.compile: scan`` can
        capture it whole (one CUDA graph with ``agent.cuda_graphs``)."""
        steps = []
        for t in range(first.shape[1]):
            state, stats = self.obs_step(state, init, first[:, t], action_in[:, t], embed_in[:, t])
            steps.append({**state, **stats})
        return {key: torch.stack([step[key] for step in steps], 1) for key in steps[0]}

    def obs_step(
        self, state: State, init: State, first: torch.Tensor, action_in: torch.Tensor, embed_in: torch.Tensor
    ) -> tuple[State, State]:
        """One posterior step from projected inputs (see ``observe``); resets to ``init`` where ``first``.
        Returns the state and the posterior's parameters."""
        state = self._reset(state, init, first)
        action_in = action_in * (1 - first[:, None])  # the previous action is zero at a reset
        x = self.img_in(self.img_in_stoch(self._flatten(state["stoch"])) + action_in)
        deter = self.cell(x, state["deter"])
        stats = self._stats(self.obs_out(self.obs_in(self.obs_in_deter(deter) + embed_in)))
        return {"deter": deter, "stoch": self._sample(stats)}, stats

    def step(
        self, state: State | None, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor
    ) -> State:
        """One posterior step for acting (N, ...). It calls ``obs_step`` directly, never the (possibly
        graph-captured) training ``scan``, whose outputs a later replay would overwrite."""
        init = self.initial_state(len(embed), embed.device)
        state = init if state is None else state
        first = is_first.to(embed.dtype)
        action_in, embed_in = self.img_in_action(self._clip(action)), self.obs_in_embed(embed)
        state, stats = self.obs_step(state, init, first, action_in, embed_in)
        return {**state, **stats}


def categorical_kl(lhs_logp: torch.Tensor, rhs_logp: torch.Tensor) -> torch.Tensor:
    """KL(lhs || rhs) of (…, S, K) categorical log-probs, summed over the S latents."""
    return (lhs_logp.exp() * (lhs_logp - rhs_logp)).sum((-2, -1))


def kl_terms(post_logits: torch.Tensor, prior_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dyn, rep) per element: dyn = KL(sg(post) || prior) trains the prior only, rep = KL(post || sg(prior))
    trains the posterior only (DV3 paper eq. 5; DV2 KL balancing)."""
    post, prior = post_logits.float(), prior_logits.float()
    dyn = categorical_kl(post.detach(), prior)
    rep = categorical_kl(post, prior.detach())
    return dyn, rep


def gaussian_kl(
    lhs_mean: torch.Tensor, lhs_std: torch.Tensor, rhs_mean: torch.Tensor, rhs_std: torch.Tensor
) -> torch.Tensor:
    """KL(lhs || rhs) of diagonal Gaussians (…, S), summed over the S latents (DV2 MultivariateNormalDiag)."""
    var_ratio = (lhs_std / rhs_std) ** 2
    return 0.5 * (var_ratio + ((lhs_mean - rhs_mean) / rhs_std) ** 2 - 1 - var_ratio.log()).sum(-1)


def latent_kl_terms(post: State, prior: State) -> tuple[torch.Tensor, torch.Tensor]:
    """``kl_terms`` for either latent: from the states' logits, or their Gaussian mean and std."""
    if "logits" in post:
        return kl_terms(post["logits"], prior["logits"])
    lhs, rhs = (post["mean"].float(), post["std"].float()), (prior["mean"].float(), prior["std"].float())
    dyn = gaussian_kl(*(x.detach() for x in lhs), *rhs)
    rep = gaussian_kl(*lhs, *(x.detach() for x in rhs))
    return dyn, rep


def latent_entropy(state: State) -> torch.Tensor:
    """Mean entropy of the latent distribution, summed over the latents."""
    if "logits" in state:
        logp = state["logits"]
        return -(logp.exp() * logp).sum((-2, -1)).mean()
    return Normal(state["mean"].float(), state["std"].float()).entropy().mean()


def dv2_kl_loss(
    dyn: torch.Tensor, rep: torch.Tensor, balance: float, free: float, free_avg: bool
) -> torch.Tensor:
    """DV2 KL balancing: balance * dyn + (1 - balance) * rep, free nats on the mean (free_avg) or per element.

    DV2 agent.py kl_loss: lhs = KL(post || sg(prior)) weight 1 - balance, rhs = KL(sg(post) || prior)."""
    if free_avg:
        dyn, rep = dyn.mean().clamp_min(free), rep.mean().clamp_min(free)
    else:
        dyn, rep = dyn.clamp_min(free).mean(), rep.clamp_min(free).mean()
    return balance * dyn + (1 - balance) * rep


def dv3_kl_loss(
    dyn: torch.Tensor, rep: torch.Tensor, dyn_scale: float, rep_scale: float, free: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DV3 free bits per element (configs.yaml dyn_loss/rep_loss free 1.0). Returns (group, dyn, rep) with
    group = (dyn_scale * dyn + rep_scale * rep) / (dyn_scale + rep_scale), so one weight (0.6) covers both."""
    dyn, rep = dyn.clamp_min(free).mean(), rep.clamp_min(free).mean()
    return (dyn_scale * dyn + rep_scale * rep) / (dyn_scale + rep_scale), dyn, rep
