"""Atari random and human reference scores and the human-normalised score (pure data, no imports).

Source: the standard table of Mnih et al. 2015 / Badia et al. 2020 (Agent57, Table H.4) used by every
Atari 100K paper (DreamerV3, HarmonyDream, rliable). Game names follow the HarmonyDream/DreamerV3 score
files (lower snake case, ``james_bond``).
"""

from __future__ import annotations

# game -> (random, human)
ATARI_RANDOM_HUMAN: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "demon_attack": (152.1, 1971.0),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "hero": (1027.0, 30826.4),
    "james_bond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "ms_pacman": (307.3, 6951.6),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "road_runner": (11.5, 7845.0),
    "seaquest": (68.4, 42054.7),
    "up_n_down": (533.4, 11693.2),
}

ATARI100K_GAMES: tuple[str, ...] = tuple(ATARI_RANDOM_HUMAN)


def hns(game: str, score: float) -> float:
    """Human-normalised score: 0 at the random agent's score, 1 at the human's."""
    if game not in ATARI_RANDOM_HUMAN:
        raise ValueError(f"unknown Atari game {game!r}; choose from {', '.join(ATARI100K_GAMES)}")
    random, human = ATARI_RANDOM_HUMAN[game]
    return (score - random) / (human - random)
