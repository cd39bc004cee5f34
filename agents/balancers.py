"""Loss balancers: turn a world model's group losses into one scalar and report each group's weight.

A world model is multi-task learning over its loss groups (obs, reward, dyn, cont for Dreamer; consistency,
reward, value for TD-MPC). Every balancer takes ``{group: raw scalar loss}`` and returns
``(total, {group: effective weight, detached})``. Learnable parameters are ``nn.Parameter``s of the
balancer (the backbone adds them to its world-model optimizer); state that must survive a checkpoint lives
in registered buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

NAMES = ("fixed", "harmony", "uncertainty", "dwa", "nashmtl")
ALIASES = {"uw": "uncertainty"}


def default_config(weights: dict[str, float]) -> dict[str, Any]:
    """Every balancer knob with its default (JSON types only); ``weights`` are the backbone's fixed weights."""
    return {
        "name": "fixed",
        "weights": dict(weights),
        # HD dreamerv2.py: rectified harmonious loss log(1 + sigma) is the paper default
        "rectified": True,
        # HD: obs, reward and the KL term are harmonised; cont keeps its fixed weight
        "harmonize": ["obs", "reward", "dyn"],
        # HD: the s parameters sit inside the world-model grad-norm clipping (faithful default)
        "clip_with_model": True,
        # HD: the s parameters train in the world-model optimizer at its lr (None). Adam moves s by about lr
        # per update, so a run of a few thousand updates needs a larger lr for sigma to settle.
        "lr": None,
        # Liu et al. 2019 / NASH weight_methods.py: temperature 2, iteration window 25 (FIFO of 2x25)
        "dwa_temperature": 2.0,
        "dwa_window": 25,
        # NASH: re-weight from call window + 2 on, against a FIFO that starts filled with ones (faithful);
        # "full_window" waits until the FIFO holds real losses only (2 x window calls)
        "dwa_start": "nash",
        # NASH weight_methods.py: update_weights_every 1, max_norm 1.0, optim_niter 20
        "nash_update_every": 1,
        "nash_max_norm": 1.0,
        "nash_iters": 20,
    }


class Balancer(nn.Module):
    """Base: fixed weight per group (groups absent from ``weights`` get 1.0)."""

    needs_shared_params = False

    def __init__(self, groups: Sequence[str], config: dict[str, Any]):
        super().__init__()
        self.groups = list(groups)
        weights = config.get("weights", {})
        self.fixed_weights = {g: float(weights.get(g, 1.0)) for g in self.groups}

    def _check(self, losses: dict[str, torch.Tensor]) -> None:
        if set(losses) != set(self.groups):
            raise ValueError(f"balancer got loss groups {sorted(losses)}; expected {sorted(self.groups)}")

    def forward(
        self, losses: dict[str, torch.Tensor], shared_params: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._check(losses)
        weights = {g: losses[g].new_tensor(self.fixed_weights[g]) for g in self.groups}
        total = sum(weights[g] * losses[g] for g in self.groups)
        return total, weights

    def after_backward(self, shared_params: Sequence[torch.Tensor] | None) -> None:
        """Called between the backward pass (gradients unscaled) and the backbone's own clipping."""


class Fixed(Balancer):
    """Fixed loss scales from the config, as the backbones' papers use them."""


class Adaptive(Balancer):
    """Balances the groups in ``harmonize``; every other group (cont, ...) keeps its fixed weight."""

    def __init__(self, groups: Sequence[str], config: dict[str, Any]):
        super().__init__(groups, config)
        self.balanced = [g for g in self.groups if g in config["harmonize"]]
        self.kept = [g for g in self.groups if g not in self.balanced]

    def _kept_part(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        weights = {g: losses[g].new_tensor(self.fixed_weights[g]) for g in self.kept}
        total = sum((weights[g] * losses[g] for g in self.kept), start=0.0)
        return total, weights


class Harmony(Adaptive):
    """HarmonyDream: sigma_i = exp(s_i), s_i init 0; L_i/sigma_i + log(1 + sigma_i) (rectified) or + s_i (plain).

    HD wmlib-torch dreamerv2.py L116-177, dreamerv3-jax nets.py L612-622: nothing detached; the fixed weights of
    harmonised groups are ignored; effective weight 1/sigma_i.
    """

    def __init__(self, groups: Sequence[str], config: dict[str, Any]):
        super().__init__(groups, config)
        self.rectified = bool(config["rectified"])
        self.log_sigma = nn.ParameterDict({g: nn.Parameter(torch.zeros(())) for g in self.balanced})

    def forward(self, losses, shared_params=None):
        self._check(losses)
        total, weights = self._kept_part(losses)
        for g in self.balanced:
            s = self.log_sigma[g]
            regulariser = torch.log1p(torch.exp(s)) if self.rectified else s
            total = total + losses[g] * torch.exp(-s) + regulariser
            weights[g] = torch.exp(-s).detach()
        return total, weights


class Uncertainty(Adaptive):
    """Kendall et al. 2018 as in NASH weight_methods.py L418-440: sum 1/2 (exp(-s_i) L_i + s_i), s_i init 0."""

    def __init__(self, groups: Sequence[str], config: dict[str, Any]):
        super().__init__(groups, config)
        self.log_variance = nn.ParameterDict({g: nn.Parameter(torch.zeros(())) for g in self.balanced})

    def forward(self, losses, shared_params=None):
        self._check(losses)
        total, weights = self._kept_part(losses)
        for g in self.balanced:
            s = self.log_variance[g]
            total = total + 0.5 * (torch.exp(-s) * losses[g] + s)
            weights[g] = 0.5 * torch.exp(-s).detach()
        return total, weights


class DynamicWeightAverage(Adaptive):
    """Liu et al. 2019, NASH's iteration-window variant: w = K softmax(r / T), r = recent / older window mean.

    The FIFO holds the last 2 x window detached loss vectors (current one included, as NASH does). Weights are
    ones until the FIFO holds only real losses (NASH starts after window + 1 calls, against its ones-filled
    FIFO). The balanced groups enter as mean_i w_i L_i, as NASH's ``(task_weights * losses).mean()``, so
    each effective weight is w_i / K; groups kept out of the balance add their fixed-weight terms.

    ``dwa_start``: ``nash`` re-weights from call window + 2 on against a FIFO that starts filled with ones,
    as NASH does; for Dreamer's losses (obs in the hundreds) that gives ratios of ~100 and one group nearly
    all the weight until the ones leave the window. ``full_window`` waits until the FIFO holds real losses.
    """

    def __init__(self, groups: Sequence[str], config: dict[str, Any]):
        super().__init__(groups, config)
        self.window = int(config["dwa_window"])
        self.temperature = float(config["dwa_temperature"])
        nash = config.get("dwa_start", "nash") == "nash"
        self.start = self.window + 2 if nash else 2 * self.window
        self.register_buffer("history", torch.ones(2 * self.window, len(self.balanced)))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def current_weights(self) -> torch.Tensor:
        if self.calls < self.start:
            return self.history.new_ones(len(self.balanced))
        ratio = self.history[self.window :].mean(0) / self.history[: self.window].mean(0)
        return len(self.balanced) * torch.softmax(ratio / self.temperature, dim=0)

    def forward(self, losses, shared_params=None):
        self._check(losses)
        latest = torch.stack([losses[g].detach().float() for g in self.balanced]).to(self.history.device)
        self.history.copy_(torch.cat([self.history[1:], latest[None]]))
        self.calls += 1
        total, weights = self._kept_part(losses)
        for g, w in zip(self.balanced, self.current_weights()):
            weights[g] = w.to(losses[g].device) / len(self.balanced)
            total = total + weights[g] * losses[g]
        return total, weights


class NashMTL(Adaptive):
    """Navon et al. 2022 (NASH weight_methods.py L99-272): weights alpha with G G^T alpha = 1/alpha.

    Per-group gradients on the shared parameters give G; alpha comes from sequential convex solves on
    G G^T / ||G G^T||_F (warm-started), then is rescaled to solve the unnormalised condition, recomputed every
    ``nash_update_every`` calls and reused in between. After backward, the shared parameters' gradient is
    clipped to norm ``max_norm`` (NASH weight_methods.py L269-270; 0 disables); the heads keep theirs. A group
    with a zero gradient (KL under free bits) gets alpha 0 and the rest are solved among themselves.
    """

    needs_shared_params = True

    def __init__(self, groups: Sequence[str], config: dict[str, Any]):
        super().__init__(groups, config)
        self.update_every = int(config["nash_update_every"])
        self.max_norm = float(config["nash_max_norm"])
        self.iters = int(config["nash_iters"])
        self.register_buffer("alpha", torch.ones(len(self.balanced)))  # weights in use
        self.register_buffer("solution", torch.ones(len(self.balanced), dtype=torch.float64))  # warm start
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, losses, shared_params=None):
        self._check(losses)
        if shared_params is None:
            raise ValueError(
                "the nashmtl balancer needs the shared parameters (forward(losses, shared_params))"
            )
        if self.calls % self.update_every == 0:
            self._update([losses[g] for g in self.balanced], list(shared_params))
        self.calls += 1
        total, weights = self._kept_part(losses)
        for g, a in zip(self.balanced, self.alpha):
            weights[g] = a.to(losses[g].device)
            total = total + weights[g] * losses[g]
        return total, weights

    def _update(self, losses: list[torch.Tensor], params: list[torch.Tensor]) -> None:
        rows = []
        for loss in losses:
            if not loss.requires_grad:  # a constant loss (detached KL under free bits): a zero row
                rows.append(torch.cat([torch.zeros_like(p).flatten() for p in params]))
                continue
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            rows.append(
                torch.cat(
                    [(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)]
                )
            )
        jacobian = torch.stack(rows).detach().double()
        gram = (jacobian @ jacobian.T).cpu().numpy()
        active = np.diag(gram) > 1e-12 * max(np.diag(gram).max(), 1e-300)
        if not active.any():  # every group flat: keep the weights in use
            return
        sub = gram[np.ix_(active, active)]
        scale = np.linalg.norm(sub)
        solution = self.solution.cpu().numpy().copy()
        solution[active] = nash_bargaining_weights(sub / scale, solution[active], self.iters)
        self.solution.copy_(torch.from_numpy(solution))
        alpha = np.zeros(len(losses))
        # G_n a = 1/a  <=>  G (a / sqrt(|G|)) = sqrt(|G|) / a
        alpha[active] = solution[active] / np.sqrt(scale)
        self.alpha.copy_(torch.from_numpy(alpha))

    def after_backward(self, shared_params: Sequence[torch.Tensor] | None) -> None:
        if self.max_norm > 0 and shared_params:
            nn.utils.clip_grad_norm_(list(shared_params), self.max_norm, foreach=True)


def nash_bargaining_weights(gram: np.ndarray, start: np.ndarray, iters: int) -> np.ndarray:
    """alpha >= 0 with gram @ alpha ~= 1/alpha, by NASH's sequential convex solves (ECOS, warm start).

    Each step minimises sum(gram alpha) + grad(phi)(alpha_prev) . alpha subject to
    log(alpha_i) + log((gram alpha)_i) >= 0, with phi(alpha) = sum_i log(alpha_i) + log((gram alpha)_i)
    linearised at the previous iterate; stops when the condition holds to 1e-3 or alpha moves < 1e-6.
    """
    import cvxpy as cp  # imported on first use: it takes seconds, and only Nash-MTL needs it

    size = len(start)
    alpha = cp.Variable(size, nonneg=True)
    slope = cp.Parameter(size)
    gram_alpha = gram @ alpha
    problem = cp.Problem(
        cp.Minimize(cp.sum(gram_alpha) + slope @ alpha), [cp.log(alpha) + cp.log(gram_alpha) >= 0]
    )
    current = np.asarray(start, dtype=np.float64)
    for _ in range(iters):
        slope.value = 1.0 / current + gram @ (1.0 / (gram @ current))
        alpha.value = current
        try:
            problem.solve(solver=cp.ECOS, warm_start=True, max_iters=100)
        except (cp.SolverError, ValueError):
            break
        if alpha.value is None or not np.all(np.isfinite(alpha.value)):
            break
        moved = np.linalg.norm(alpha.value - current)
        current = np.maximum(alpha.value, 1e-10)
        if moved < 1e-6 or np.linalg.norm(gram @ current - 1.0 / (current + 1e-10)) < 1e-3:
            break
    return current


def _check_choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(
            f"agent.balancer.{key}={value!r} is invalid; valid choices: {', '.join(map(str, choices))}"
        )


def _check_positive(key: str, value: Any, kind: type = float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"agent.balancer.{key}={value!r} is invalid; valid: a positive {kind.__name__}")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"agent.balancer.{key}={value!r} is invalid; valid: a positive int")


def validate(groups: Sequence[str], config: dict[str, Any]) -> str:
    """Check a balancer config against the backbone's groups; returns the canonical balancer name."""
    name = ALIASES.get(config.get("name"), config.get("name"))
    _check_choice("name", config.get("name"), [*NAMES, *ALIASES])
    weights = config.get("weights", {})
    if not isinstance(weights, dict):
        raise ValueError(f"agent.balancer.weights={weights!r} is invalid; valid: a mapping group -> weight")
    for group, weight in weights.items():
        _check_choice("weights", group, groups)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"agent.balancer.weights.{group}={weight!r} is invalid; valid: a number >= 0")
    if name != "fixed":  # the groups adaptive balancers weigh (TD-MPC names its own: no obs/dyn there)
        harmonize = config.get("harmonize")
        if not isinstance(harmonize, list) or not harmonize:
            raise ValueError(
                f"agent.balancer.harmonize={harmonize!r} is invalid; valid: a non-empty list of {list(groups)}"
            )
        for group in harmonize:
            _check_choice("harmonize", group, groups)
    if config.get("lr") is not None:
        _check_positive("lr", config["lr"])
    _check_positive("dwa_temperature", config.get("dwa_temperature", 2.0))
    _check_positive("dwa_window", config.get("dwa_window", 25), int)
    _check_choice("dwa_start", config.get("dwa_start", "nash"), ("nash", "full_window"))
    _check_positive("nash_update_every", config.get("nash_update_every", 1), int)
    max_norm = config.get("nash_max_norm", 1.0)
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float) or max_norm < 0:
        raise ValueError(
            f"agent.balancer.nash_max_norm={max_norm!r} is invalid; valid: a number >= 0 (0: no clip)"
        )
    _check_positive("nash_iters", config.get("nash_iters", 20), int)
    return name


def param_groups(balancer: Balancer, config: dict[str, Any], model_lr: float) -> list[dict[str, Any]]:
    """The optimizer param group of the balancer's own parameters (none for fixed, DWA, Nash-MTL), at
    ``config["lr"]`` or else the world model's lr."""
    params = list(balancer.parameters())
    lr = config.get("lr")
    return [{"params": params, "lr": model_lr if lr is None else float(lr)}] if params else []


def make(groups: Sequence[str], config: dict[str, Any]) -> Balancer:
    """The balancer named by ``config["name"]`` for these loss groups; ValueError on a bad config."""
    name = validate(groups, config)
    return _CLASSES[name](groups, config)


_CLASSES: dict[str, type[Balancer]] = {
    "fixed": Fixed,
    "harmony": Harmony,
    "uncertainty": Uncertainty,
    "dwa": DynamicWeightAverage,
    "nashmtl": NashMTL,
}
