"""Regenerate ``authcore/_data/common-passwords.txt.gz`` from zxcvbn's frequency lists.

The list is zxcvbn's ``passwords`` frequency list (the 30,000 most frequent
passwords of Xato's 10-million-password corpus, as curated by Dropbox's
zxcvbn and shipped by the PyPI package ``zxcvbn``, MIT licence), lower-cased,
de-duplicated and kept in frequency order, one password per line, gzipped
with a fixed timestamp so the output is byte-for-byte reproducible.

Usage (in a throwaway environment; zxcvbn is not a dependency of authcore)::

    pip install "zxcvbn==4.5.0"
    python scripts/build_common_passwords.py
"""

from __future__ import annotations

import gzip
import sys
from importlib.metadata import version
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "authcore" / "_data" / "common-passwords.txt.gz"


def main() -> int:
    try:
        from zxcvbn.frequency_lists import FREQUENCY_LISTS
    except ImportError:
        print("install zxcvbn first: pip install 'zxcvbn==4.5.0'", file=sys.stderr)
        return 1
    seen: dict[str, None] = {}
    for password in FREQUENCY_LISTS["passwords"]:
        word = password.strip().lower()
        if word and not word.startswith("#"):
            seen.setdefault(word, None)
    header = (
        f"# {len(seen)} common passwords, lower-cased, most frequent first.\n"
        f"# Source: zxcvbn {version('zxcvbn')} (PyPI), frequency list 'passwords';\n"
        "# MIT licence, see README.md in this folder. Regenerate with\n"
        "# scripts/build_common_passwords.py; do not edit by hand.\n"
    )
    body = header + "".join(f"{word}\n" for word in seen)
    with (
        TARGET.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as out,
    ):
        out.write(body.encode("utf-8"))
    print(f"wrote {len(seen)} passwords to {TARGET} ({TARGET.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
