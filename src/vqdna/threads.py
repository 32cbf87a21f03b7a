"""Torch CPU threads for the commands that train or encode (``--threads``), and a one-line warning
when the machine is already busy.

On a machine shared with other jobs, torch's default (one thread per core) can be many times
slower than one thread: in issue 23 a demo's pre-training ran at 3.6 s/step with the default
threads and 0.3 s/step with one, beside the same jobs. So every such command takes ``--threads``
(:func:`add_threads_argument`) and :func:`use_threads` applies it, or, without it, keeps torch's
choice and warns when the 1-minute load average exceeds the cores.
"""
from __future__ import annotations

import argparse
import os
import sys

THREADS_HELP = ("torch CPU threads (default: torch's choice, one per core; on a machine busy with other jobs "
                "use 1: two threads there ran ten times slower than one)")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` on a command that trains or encodes."""
    parser.add_argument("--threads", type=int, help=THREADS_HELP)


def busy_machine_warning(threads: int, load: float | None = None, cores: int | None = None) -> str | None:
    """The warning line when the 1-minute load average exceeds the cores and more than one thread
    would run; None otherwise (or where the load average is unknown)."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            return None
    cores = cores or os.cpu_count() or 1
    if threads <= 1 or load <= cores:
        return None
    return (f"warning: the machine is busy (1-minute load average {load:.1f} on {cores} cores); {threads} torch "
            f"threads can run many times slower than one here: consider --threads 1")


def use_threads(threads: int | None) -> int:
    """Set torch's CPU threads to ``threads``; without it keep torch's choice and print
    :func:`busy_machine_warning` to stderr if the machine is busy. Returns the threads in use."""
    import torch

    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads {threads}: give at least 1")
        torch.set_num_threads(threads)
        return threads
    n = torch.get_num_threads()
    warning = busy_machine_warning(n)
    if warning:
        print(warning, file=sys.stderr)
    return n
