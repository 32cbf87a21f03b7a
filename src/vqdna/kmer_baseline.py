"""Moved to :mod:`vqdna.references.kmer` (the reference rows live in :mod:`vqdna.references`);
this module keeps ``from vqdna.kmer_baseline import run_kmer_baseline`` working."""
from .references.kmer import *  # noqa: F401,F403
from .references.kmer import __all__  # noqa: F401
