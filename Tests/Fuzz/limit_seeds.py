#!/usr/bin/env python3
"""Writes inputs that sit at the loader's limits, one byte (or one level) either side, into the
folder given: a scalar of 64 KiB, nesting 64 deep, a file of 8 MiB. The fuzzer starts from them
(those it can hold) and the replay build runs every one (scripts/test.sh), so the limits are
exercised exactly, not left to chance. Kept in step with YAMLLoader's limits."""
import os
import sys

SCALAR = 64 * 1024
DEPTH = 64
FILE = 8 * 1024 * 1024
HEAD = "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: limits}\nspec:\n  template: t\n"


def write(folder, name, text):
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        f.write(text)


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    for size in (SCALAR - 1, SCALAR, SCALAR + 1):
        write(folder, f"scalar-{size}.yaml", HEAD + "  label: " + "y" * size + "\n")
    # The document's mapping is level 1 and spec level 2; the lists under traits are the rest.
    for depth in (DEPTH - 1, DEPTH, DEPTH + 1):
        inner = depth - 2
        write(folder, f"nesting-{depth}.yaml", HEAD + "  traits: " + "[" * inner + "a" + "]" * inner + "\n")
    for size in (FILE - 1, FILE, FILE + 1):
        pad = size - len(HEAD)
        lines, rest = divmod(pad, 64)
        text = HEAD + ("#" + "p" * 62 + "\n") * lines
        if rest:
            text += "#" + "p" * (rest - 2) + "\n" if rest >= 2 else "\n"
        assert len(text.encode()) == size, (size, len(text.encode()))
        write(folder, f"file-{size}.yaml", text)


if __name__ == "__main__":
    main()
