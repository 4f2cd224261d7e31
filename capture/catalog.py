"""``bodytalk sources``: the source URI schemes with a line of help and an example each."""
from __future__ import annotations

import argparse

from bodytalk.capture import source


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="bodytalk sources", description=__doc__).parse_args(argv)
    width = max(map(len, source.SCHEMES)) + 1
    for scheme in source.SCHEMES:
        try:
            cls = source.source_class(scheme)
            print(f"{scheme + ':':<{width}}  {cls.help}\n{'':<{width}}  e.g. {cls.example}")
        except ImportError as err:  # a source module whose optional dependency is missing
            print(f"{scheme + ':':<{width}}  (unavailable: {err})")
    return 0
