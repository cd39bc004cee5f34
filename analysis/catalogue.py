"""Published baselines by name: released score files (URL, commit, SHA-256, format), fetched once into a
user cache, verified, and read offline afterwards. ``bench list published`` prints this catalogue;
``bench report --published NAME`` uses it.

Sources (both MIT-licensed): HarmonyDream's Atari100K scores (github.com/thuml/HarmonyDream,
dreamerv3-jax/scores) and DreamerV3's released scores (github.com/danijar/dreamerv3, scores/). Each file is
pinned to a commit, and its SHA-256 and size are those of the file at that commit. Formats: see
``analysis.published`` (A: one JSON per method; B: a gzip JSON list of runs).

A download is held in memory (at most the catalogued size), checked against the SHA-256, and only then
written to the cache through a temporary file and an atomic rename, so a failed or corrupted download leaves
nothing behind. The cache is ``--cache DIR``, else ``$HARMONYBENCH_CACHE``, else
``$XDG_CACHE_HOME/harmonybench``, else ``~/.cache/harmonybench``. ``$HARMONYBENCH_PUBLISHED_URL`` replaces the
base URL (``https://raw.githubusercontent.com``), e.g. for a mirror; files are fetched from
``<base>/<owner>/<repo>/<commit>/<path>``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
BASE_URL_ENV = "HARMONYBENCH_PUBLISHED_URL"
CACHE_ENV = "HARMONYBENCH_CACHE"
TIMEOUT_S = 30


@dataclass(frozen=True)
class Baseline:
    """One released score file, pinned to a commit."""

    name: str  # <origin>-<suite>-<method>: analysis.published reads origin, suite and method from it
    repo: str
    commit: str
    path: str
    size: int
    sha256: str
    format: str  # "A" or "B", see analysis.published
    what: str

    @property
    def filename(self) -> str:
        return self.name + (".json.gz" if self.path.endswith(".gz") else ".json")

    def url(self, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        return f"{base.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


_HARMONYDREAM = ("thuml/HarmonyDream", "0a22e33fb47489361a9f239867a1cf34b958b320")
_DREAMERV3 = ("danijar/dreamerv3", "e3f02248693a79dc8b0ebd62c93683888ddaccfe")

# name, (repo, commit), path, size in bytes, SHA-256, format, what it holds (tasks x runs, budget in frames)
# fmt: off
_ENTRIES = [
    ("harmonydream-atari100k-harmony_dreamerv3", _HARMONYDREAM, "dreamerv3-jax/scores/harmony.json", 20433,
     "413c631ea2d7ed03d27fea9939af352c37aa34400655e49bb0f2f84def0250ac", "A", "Harmony DreamerV3 on atari100k: 26 tasks x 5 runs, 400K frames"),
    ("harmonydream-atari100k-dreamerv3", _HARMONYDREAM, "dreamerv3-jax/scores/dreamerv3.json", 20322,
     "45c1f9502684d1c875d73e5c074101703a82bd79b9fe29483d7e1977ea439b24", "A", "DreamerV3 (HarmonyDream's reproduction) on atari100k: 26 tasks x 5 runs, 400K frames"),
    ("danijar-atari100k-dreamerv3", _DREAMERV3, "scores/atari100k-dreamerv3.json.gz", 64096,
     "c839ef2fd28a5c4b7c6f36151a8d16cb41d4d2fb72338c265850b2b4dd5b5e15", "B", "dreamerv3 on atari100k: 26 tasks x 5 runs, 400K frames"),
    ("danijar-atari100k-ppo_fixhp", _DREAMERV3, "scores/atari100k-ppo_fixhp.json.gz", 86614,
     "8794eee54b57e8ddf65035d2fcbf4a5c8d84918b67cb6949f83d28a4ce47a9f4", "B", "ppo_fixhp on atari100k: 26 tasks x 5 runs, 400K frames"),
    ("danijar-atari57-dreamerv3", _DREAMERV3, "scores/atari57-dreamerv3.json.gz", 616575,
     "59af8b6fbb5d83fb9b9e522421112526be3bf857b9ca17bb56ed7aa39610436e", "B", "dreamerv3 on atari57: 57 tasks x 3-6 runs, 200M frames; the built-in human table has only the 26 Atari100K games, so normalise with --reference"),
    ("danijar-atari57-muzero", _DREAMERV3, "scores/atari57-muzero.json.gz", 27182,
     "5e9b1c29f58ec5fc0c3f4fdc6564432023930081ac87a867374c339f9d6a6c45", "B", "muzero on atari57: 57 tasks x 1 run, 200M frames; the built-in human table has only the 26 Atari100K games, so normalise with --reference"),
    ("danijar-atari57-ppo_fixhp", _DREAMERV3, "scores/atari57-ppo_fixhp.json.gz", 666876,
     "a728e888a790915434fe188ffdaf8516705cc5ea2a856c39db997addfa93b153", "B", "ppo_fixhp on atari57: 57 tasks x 5 runs, 200M frames; the built-in human table has only the 26 Atari100K games, so normalise with --reference"),
    ("danijar-dmc_proprio-d4pg", _DREAMERV3, "scores/dmc_proprio-d4pg.json.gz", 200341,
     "a6d87670d584daef223736948cb08887b66758433431b4a39e735fff7a9e5bdf", "B", "d4pg on dmc_proprio: 18 tasks x 10 runs, 500K frames"),
    ("danijar-dmc_proprio-ddpg", _DREAMERV3, "scores/dmc_proprio-ddpg.json.gz", 207077,
     "894cde656c479594dbe481487c6f3e784f6dacfbfd88d28f506d0b1c47a61a89", "B", "ddpg on dmc_proprio: 18 tasks x 10 runs, 500K frames"),
    ("danijar-dmc_proprio-dmpo", _DREAMERV3, "scores/dmc_proprio-dmpo.json.gz", 223933,
     "e270f18cfdc75b0eaac7cf6dda8415ec1677568067b8a77ea021e242ecf72cf4", "B", "dmpo on dmc_proprio: 18 tasks x 10 runs, 500K frames"),
    ("danijar-dmc_proprio-dreamerv3", _DREAMERV3, "scores/dmc_proprio-dreamerv3.json.gz", 21986,
     "8182860a8a56dc56836c319fde9b941376621e1e0d474141c7d174ab833cc7f4", "B", "dreamerv3 on dmc_proprio: 18 tasks x 5 runs, 490K frames"),
    ("danijar-dmc_proprio-mpo", _DREAMERV3, "scores/dmc_proprio-mpo.json.gz", 215771,
     "cc6de76168519ab697cc8bf8d86ea78770526f741912cc5716724e963c1bd23e", "B", "mpo on dmc_proprio: 18 tasks x 10 runs, 500K frames"),
    ("danijar-dmc_proprio-ppo_fixhp", _DREAMERV3, "scores/dmc_proprio-ppo_fixhp.json.gz", 105325,
     "8530f273c3a457b95e4819f788a39629e3663f15ef31c13a075c389faf2afe82", "B", "ppo_fixhp on dmc_proprio: 18 tasks x 5 runs, 500K frames"),
    ("danijar-dmc_vision-curl", _DREAMERV3, "scores/dmc_vision-curl.json.gz", 53690,
     "1d024d75c143cfdbdeed63f8d476c669d4be647759b35ef8fd44ae20d679c47d", "B", "curl on dmc_vision: 20 tasks x 10 runs, 1M frames"),
    ("danijar-dmc_vision-dreamerv3", _DREAMERV3, "scores/dmc_vision-dreamerv3.json.gz", 921415,
     "68dd7e83ee6af076734e1edb843a3816cd241736c92e91837e7cf460231b7b08", "B", "dreamerv3 on dmc_vision: 20 tasks x 8-10 runs, 1M frames"),
    ("danijar-dmc_vision-drqv2", _DREAMERV3, "scores/dmc_vision-drqv2.json.gz", 51025,
     "18f932e73f139f8192d79f84f90d74b4e7bb9e7a089944fa01a8d10895cf1337", "B", "drqv2 on dmc_vision: 20 tasks x 8-10 runs, 1M frames"),
    ("danijar-dmc_vision-ppo_fixhp", _DREAMERV3, "scores/dmc_vision-ppo_fixhp.json.gz", 247609,
     "7cd24804d6596759c1bfc52d76c0c95badbd96ceae3239ef1602755c8b17c8e0", "B", "ppo_fixhp on dmc_vision: 20 tasks x 5 runs, 1M frames"),
    ("danijar-dmc_vision-sac", _DREAMERV3, "scores/dmc_vision-sac.json.gz", 50043,
     "1d8f352472da8016c113053eba46b4274fc3dac20e1a4eb05ed38267e2a26aa9", "B", "sac on dmc_vision: 20 tasks x 10 runs, 1M frames"),
    ("danijar-dmlab30-dreamerv3", _DREAMERV3, "scores/dmlab30-dreamerv3.json.gz", 67364,
     "bb13d28c90c5f1fdd0e13be710db75bb73571079a1997b06edc66be78bb3b838", "B", "dreamerv3 on dmlab30: 30 tasks x 5 runs, 100M frames"),
    ("danijar-dmlab30-impala_deep", _DREAMERV3, "scores/dmlab30-impala_deep.json.gz", 83238,
     "9114b16af49087bb80edad2ac91ac5e2a6e959ed37a12b475b78e71049ca7aef", "B", "impala_deep on dmlab30: 30 tasks x 1 run, 1G frames"),
    ("danijar-dmlab30-ppo_fixhp", _DREAMERV3, "scores/dmlab30-ppo_fixhp.json.gz", 207601,
     "c47924d94c1765d9187a2e95f707e7ba7611a7056ffec872ef92b05021553e79", "B", "ppo_fixhp on dmlab30: 30 tasks x 5 runs, 100M frames"),
    ("danijar-minecraft_diamond-dreamerv3", _DREAMERV3, "scores/minecraft_diamond-dreamerv3.json.gz", 512970,
     "8580751af2ed04479056f0159c404747efe42c20e81464c4a04205b94296f09a", "B", "dreamerv3 on minecraft_diamond: 1 tasks x 20 runs, 100M frames"),
    ("danijar-minecraft_diamond-impala", _DREAMERV3, "scores/minecraft_diamond-impala.json.gz", 332532,
     "dc8174eabf09ac3b24e839f2bf3402218f416d8d3811866d6b53d1b4ec9a3f79", "B", "impala on minecraft_diamond: 1 tasks x 15 runs, 100M frames"),
    ("danijar-minecraft_diamond-ppo_fixhp", _DREAMERV3, "scores/minecraft_diamond-ppo_fixhp.json.gz", 666589,
     "3f1135eef4dd2b49f26f834bbbdb7d321e49cc18437832937404cd267e36a4ac", "B", "ppo_fixhp on minecraft_diamond: 1 tasks x 14 runs, 100M frames"),
    ("danijar-minecraft_diamond-r2d2", _DREAMERV3, "scores/minecraft_diamond-r2d2.json.gz", 32302,
     "2e708fee94bde11b1b7ad845c48d4dabedc20762d99889c6e6bd4cc4bcc3e127", "B", "r2d2 on minecraft_diamond: 1 tasks x 15 runs, 100M frames"),
    ("danijar-minecraft_diamond-rainbow", _DREAMERV3, "scores/minecraft_diamond-rainbow.json.gz", 412764,
     "cc240d7b00100574993d093bf9cff4cc244fe7a073c49f2265c18d98bc0e5a73", "B", "rainbow on minecraft_diamond: 1 tasks x 15 runs, 100M frames"),
    ("danijar-procgen-dreamerv3", _DREAMERV3, "scores/procgen-dreamerv3.json.gz", 11324,
     "72f7e3c119053cd907a618fac72b909dd393617c919b5ea3b960f27955bbe0d0", "B", "dreamerv3 on procgen: 16 tasks x 1 run, 50M frames"),
    ("danijar-procgen-ppg", _DREAMERV3, "scores/procgen-ppg.json.gz", 109206,
     "d843ca993dd005de1b61ef5a1badc201f5a0599affb63f319b71dccdac8f51c2", "B", "ppg on procgen: 16 tasks x 3 runs, 50M frames"),
    ("danijar-procgen-ppo_fixhp", _DREAMERV3, "scores/procgen-ppo_fixhp.json.gz", 79784,
     "0d8a07301a0d48b1d77fc0e105e35b4645f78983c35231af61231479473bc1be", "B", "ppo_fixhp on procgen: 16 tasks x 5 runs, 50M frames"),
]
# fmt: on
CATALOGUE: dict[str, Baseline] = {
    name: Baseline(name, repo, commit, path, size, sha256, fmt, what)
    for name, (repo, commit), path, size, sha256, fmt, what in _ENTRIES
}


def cache_dir(cache: str | Path | None = None) -> Path:
    """Where fetched baselines live: ``cache``, else $HARMONYBENCH_CACHE, else the user's cache directory."""
    if cache:
        return Path(cache).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "harmonybench"


def cached_path(name: str, cache: str | Path | None = None) -> Path:
    return cache_dir(cache) / "published" / CATALOGUE[name].filename


def fetch(name: str, cache: str | Path | None = None, base_url: str | None = None) -> Path:
    """The verified local copy of catalogue entry ``name``, downloading it on first use.

    Raises ValueError (one line, nothing cached) for an unknown name, a failed download or a wrong checksum.
    """
    if name not in CATALOGUE:
        raise ValueError(
            f"unknown published baseline {name!r} (and no such file); known: {', '.join(CATALOGUE)}"
        )
    entry = CATALOGUE[name]
    target = cached_path(name, cache)
    if target.is_file() and _sha256(target.read_bytes()) == entry.sha256:
        return target  # offline from here on
    url = entry.url(base_url)
    data = _download(url, entry.size)
    digest = _sha256(data)
    if digest != entry.sha256:
        raise ValueError(
            f"published baseline {name} from {url} failed its checksum (SHA-256 {digest}, expected "
            f"{entry.sha256}); nothing cached"
        )
    _atomic_write(target, data)
    return target


def _download(url: str, size: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read(size + 1)  # one byte more than expected is enough to fail the checksum
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise ValueError(
            f"cannot download {url} ({type(err).__name__}: {str(reason).splitlines()[0] if str(reason) else ''}); "
            "nothing cached: check the network, or download the file yourself and pass its path"
        ) from None


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
