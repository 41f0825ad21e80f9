"""The Theory lab's deep UFM on a busy machine: the training loop's own thread choice against
torch's default threading, with ``--load N`` busy processes (started here, stopped by PID).

    python benchmarks/theory_load.py --load 2 --steps 1500

Prints the best of ``--repeats`` wall times of both and their ratio; the loop's choice should
not be slower than the default on an idle machine and much faster on a loaded one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from busy import busy
from timing import best_of

import ncviz.theory.loop as loop
from ncviz.theory import DeepUFMSettings, train_deep_ufm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=2, help="busy processes beside the run")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    settings = DeepUFMSettings(steps=args.steps)
    with busy(args.load):
        chosen = best_of(lambda: train_deep_ufm(settings), args.repeats)
        # torch's default: the same loop with the thread choice switched off
        with mock.patch.object(loop, "threads_for", lambda flops: contextlib.nullcontext()):
            default = best_of(lambda: train_deep_ufm(settings), args.repeats)
    print(
        f"deep UFM, {args.steps} steps, {args.load} busy process(es): loop's choice "
        f"{chosen:.2f} s, default threading {default:.2f} s, ratio {default / chosen:.1f}×"
    )


if __name__ == "__main__":
    main()
