"""Published baselines by name: download from a real HTTP server on 127.0.0.1, verify, cache, reuse offline.

The server (http.server in a thread) serves files at <repo>/<commit>/<path>, the layout of
raw.githubusercontent.com; HARMONYBENCH_PUBLISHED_URL points the catalogue at it. The real catalogue entries
are checked against the released files kept for developers and CI (skipped where they are absent); the
download mechanics use a small score file added to the catalogue for the test.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import pytest
from analysis_data import PUBLISHED

from analysis import catalogue
from bench.cli import main

NAME = "testorigin-dmc-testagent"  # <origin>-<suite>-<method>, as the catalogue's names
LOCAL_COPIES = {  # catalogue name -> file name of the released copy kept for developers and CI
    "harmonydream-atari100k-harmony_dreamerv3": "harmonydream-atari100k-harmony_dreamerv3.json",
    "harmonydream-atari100k-dreamerv3": "harmonydream-atari100k-dreamerv3.json",
    "danijar-atari100k-dreamerv3": "danijar-atari100k-dreamerv3.json.gz",
    **{
        f"danijar-dmc_vision-{m}": f"danijar-dmc_vision-{m}.json.gz"
        for m in ("dreamerv3", "drqv2", "curl", "sac")
    },
}


class _Server:
    """A real HTTP server on 127.0.0.1 serving ``root``; ``stop()`` closes it (then connections are refused)."""

    def __init__(self, root: Path):
        handler = _quiet_handler(root)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.requests = handler.requests
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _quiet_handler(root: Path):
    class Handler(http.server.SimpleHTTPRequestHandler):
        requests: list[str] = []

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # keep the test output clean; the paths are recorded instead
            Handler.requests.append(self.path)

    return Handler


def _serve(root: Path, entry: catalogue.Baseline, data: bytes) -> None:
    path = root / entry.repo / entry.commit / entry.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _score_file() -> bytes:
    """A small format-B score file: 2 DMC tasks x 2 seeds, 5 evaluations each."""
    runs = [
        {
            "task": f"dmc_{task}",
            "method": "testagent",
            "seed": seed,
            "xs": [200_000 * i for i in range(1, 6)],
            "ys": [100.0 * i + 10 * seed + (50 if task == "walker_walk" else 0) for i in range(1, 6)],
        }
        for task in ("cheetah_run", "walker_walk")
        for seed in range(2)
    ]
    return gzip.compress(json.dumps(runs).encode(), mtime=0)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(server, entry, cache): a test entry in the catalogue, its file on a live server, an empty cache."""
    data = _score_file()
    entry = catalogue.Baseline(
        NAME, "test/scores", "0" * 40, "scores/dmc-testagent.json.gz", len(data),
        hashlib.sha256(data).hexdigest(), "B", "testagent on dmc: 2 tasks x 2 runs",
    )  # fmt: skip
    monkeypatch.setitem(catalogue.CATALOGUE, NAME, entry)
    root = tmp_path / "www"
    _serve(root, entry, data)
    server = _Server(root)
    monkeypatch.setenv(catalogue.BASE_URL_ENV, server.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy set for the real network must not catch loopback
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    yield server, entry, tmp_path / "cache"
    server.stop()


def _bench(capsys, *argv: str) -> tuple[int, str, str]:
    """The real command line, in-process so the test's catalogue entry is visible to it."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def _cached_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_first_use_downloads_verifies_and_caches_then_works_offline(served, tmp_path, capsys):
    server, entry, cache = served
    code, out, err = _bench(
        capsys,
        "report",
        "--published",
        NAME,
        "--cache",
        str(cache),
        "--out",
        str(tmp_path / "a"),
        "--reps",
        "50",
    )
    assert code == 0, err
    cached = cache / "published" / entry.filename
    assert _cached_files(cache) == [cached]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == entry.sha256
    assert server.requests == [f"/{entry.repo}/{entry.commit}/{entry.path}"]
    md = (tmp_path / "a" / "report.md").read_text()
    assert "| 1 | testagent (testorigin) |" in md and f"{entry.filename}: format B" in md

    server.stop()  # offline from here on
    server.stop = lambda: None
    code, _, err = _bench(
        capsys,
        "report",
        "--published",
        NAME,
        "--cache",
        str(cache),
        "--out",
        str(tmp_path / "b"),
        "--reps",
        "50",
    )
    assert code == 0, err
    assert (tmp_path / "b" / "report.md").read_text() == md.replace(str(tmp_path / "a"), str(tmp_path / "b"))


def test_cache_location_comes_from_the_environment(served, tmp_path, monkeypatch):
    _, entry, cache = served
    monkeypatch.setenv(catalogue.CACHE_ENV, str(cache))
    assert catalogue.fetch(NAME) == cache / "published" / entry.filename
    monkeypatch.delenv(catalogue.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert catalogue.cache_dir() == tmp_path / "xdg" / "harmonybench"


def test_corrupted_download_is_refused_and_nothing_is_cached(served, tmp_path, capsys):
    _, entry, cache = served
    good = _score_file()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01  # one flipped bit
    _serve(tmp_path / "www", entry, bytes(bad))
    code, _, err = _bench(
        capsys, "report", "--published", NAME, "--cache", str(cache), "--out", str(tmp_path / "out")
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "checksum" in err and NAME in err and entry.sha256 in err
    assert _cached_files(cache) == [] and not (tmp_path / "out").exists()


def test_a_damaged_cached_copy_is_fetched_again(served):
    server, entry, cache = served
    cached = catalogue.fetch(NAME, cache)
    cached.write_bytes(cached.read_bytes()[:-3])
    assert catalogue.fetch(NAME, cache) == cached
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == entry.sha256
    assert len(server.requests) == 2


def test_server_down_is_one_line_and_nothing_is_cached(served, tmp_path, capsys):
    server, _, cache = served
    server.stop()
    server.stop = lambda: None
    code, _, err = _bench(
        capsys, "report", "--published", NAME, "--cache", str(cache), "--out", str(tmp_path / "out")
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot download" in err and "127.0.0.1" in err
    assert _cached_files(cache) == [] and not (tmp_path / "out").exists()


def test_unknown_name_lists_the_catalogue(served, tmp_path, capsys):
    _, _, cache = served
    code, _, err = _bench(
        capsys, "report", "--published", "dreamerv9", "--cache", str(cache), "--out", str(tmp_path)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (
        "unknown published baseline 'dreamerv9'" in err and "harmonydream-atari100k-harmony_dreamerv3" in err
    )
    assert _cached_files(cache) == []


def test_bench_list_published_prints_every_entry_with_its_source_and_checksum(capsys):
    code, out, _ = _bench(capsys, "list", "published")
    assert code == 0
    for entry in catalogue.CATALOGUE.values():
        assert entry.name in out and entry.url() in out and entry.sha256 in out


def test_catalogue_entries_are_pinned_and_well_formed():
    assert len(catalogue.CATALOGUE) >= len(LOCAL_COPIES)
    for name, entry in catalogue.CATALOGUE.items():
        assert re.fullmatch(r"[0-9a-f]{40}", entry.commit) and re.fullmatch(r"[0-9a-f]{64}", entry.sha256), (
            name
        )
        assert entry.format in ("A", "B") and entry.size > 0
        assert entry.url().startswith(f"https://raw.githubusercontent.com/{entry.repo}/{entry.commit}/")
        assert len(name.split("-")) == 3, name  # origin, suite, method: analysis.published reads them
    assert set(LOCAL_COPIES) <= set(catalogue.CATALOGUE)


def test_real_entries_download_and_verify_against_the_released_files(tmp_path, monkeypatch):
    """Every catalogue entry with a released copy at hand: served as GitHub serves it, fetched, verified."""
    present = {name: PUBLISHED / file for name, file in LOCAL_COPIES.items() if (PUBLISHED / file).exists()}
    if not present:
        pytest.skip(f"{PUBLISHED} is absent (shared data exists for developers and CI only)")
    root = tmp_path / "www"
    for name, path in present.items():
        _serve(root, catalogue.CATALOGUE[name], path.read_bytes())
    server = _Server(root)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    try:
        for name, path in present.items():
            cached = catalogue.fetch(name, tmp_path / "cache", base_url=server.url)
            assert cached.read_bytes() == path.read_bytes()
            assert cached.name == path.name  # the released copies follow the catalogue's file names
    finally:
        server.stop()
