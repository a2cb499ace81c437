#!/usr/bin/env python3
"""Make tools/assets/DejaVuSans-subset.ttf, the font `tinyrnn eval --plot out.png` draws its
text with (never run in CI; the output is committed).

The source is DejaVu Sans 2.37 as Debian's `fonts-dejavu-core` package installs it
(/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf, sha256 abdc775b...582322; matplotlib's
wheel also ships a DejaVuSans.ttf, in mpl-data/fonts/ttf/). The subset keeps Latin
(ASCII, Latin-1, Latin Extended-A), Greek, Cyrillic, general punctuation, super/subscripts
and a few math signs, drops the hinting (the PNG renderer, ab_glyph, does not use it) and
the OpenType layout tables, and keeps the legacy `kern` table (the one ab_glyph reads) and the
outline of `.notdef` (a character outside the subset shows as a box, not as nothing):
759,720 bytes become about 69 kB. Licence: tools/assets/LICENSE-DejaVu.txt (Bitstream Vera
and Arev; the DejaVu changes are in the public domain).

Usage: pip install fonttools==4.68.0; python tools/scripts/subset_font.py [SOURCE.ttf]
"""
from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset

REPO = Path(__file__).resolve().parents[2]
SOURCE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
OUT = REPO / "tools" / "assets" / "DejaVuSans-subset.ttf"
UNICODES = ",".join(
    [
        "U+0020-007E",  # ASCII
        "U+00A0-017F",  # Latin-1 Supplement, Latin Extended-A
        "U+0370-03FF",  # Greek
        "U+0400-04FF",  # Cyrillic
        "U+2010-2027",  # dashes, quotes, bullet, ellipsis
        "U+2030-203A",  # per mille, primes, angle quotes
        "U+2070-209F",  # superscripts and subscripts
        "U+2190-2193",  # arrows
        "U+2212,U+2248,U+221E,U+2260-2265",  # minus, approx, infinity, ≠ ≡ ≤ ≥
        "U+FFFD",  # replacement character
    ]
)


def main() -> None:
    src = sys.argv[1] if len(sys.argv) > 1 else SOURCE
    subset.main(
        [
            src,
            f"--unicodes={UNICODES}",
            "--no-hinting",
            "--notdef-outline",
            "--legacy-kern",
            "--layout-features=",
            "--drop-tables+=GSUB,GPOS,GDEF,MATH,FFTM",
            f"--output-file={OUT}",
        ]
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
