"""Reading Auspice v2 trees (Nextstrain, Nextclade): the one tree walker and its helpers.

An Auspice v2 tree JSON (``{"version": "v2", "meta": ..., "tree": {...}}``) stores, on every
branch, the nucleotide mutations of that branch (``branch_attrs.mutations.nuc``: ``C241T``,
``A123-``, ``-123A``, or an insertion ``22204:GAG``) and, on every node, attributes such as
``clade_nextstrain`` or ``clade_who`` (usually as ``{"value": ...}``).

Both users of trees read them through this module: the importer
(:mod:`vqdna.data.nextstrain`, genomes and a task from a tree) and the clade distances of the
lineage analysis (:mod:`vqdna.analysis.treedist`). :func:`walk_with_undo` is the walk:
iterative (deep trees are fine), parents before children, children in JSON order, with a
live state that a node's edits change for its subtree only.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

__all__ = [
    "TreeError", "MISSING", "ABSENT", "SUBSTITUTION", "parse_mutation", "node_value", "tip_labels", "node_label",
    "safe_name", "roots", "single_root", "nuc_mutations", "walk_with_undo", "mutation_depths", "load_tree",
]

#: values of a label attribute that mean "no label"
MISSING = (None, "", "?")
#: the ``old value`` of an undo record for a key that was absent (see :func:`walk_with_undo`)
ABSENT = object()
_BASES = "ACGTNRYSWKMBDHVU-"
#: a substitution, deletion or reversal: ``<from><pos><to>`` (``C241T``, ``A123-``, ``-123A``)
SUBSTITUTION = re.compile(r"^([A-Za-z\-])(\d+)([A-Za-z\-])$")
#: an insertion in Nextclade notation: ``<pos>:<bases>``, bases inserted after ``pos``
INSERTION = re.compile(r"^(\d+):([A-Za-z]+)$")


class TreeError(ValueError):
    """Bad tree content; the message names the node and the mutation."""


def parse_mutation(m: str, *, where: str = "") -> tuple[str, int, str]:
    """Parse a nucleotide mutation into ``(from, position, to)``.

    ``"C241T"`` -> ``("C", 241, "T")``; a deletion has ``to == "-"``; the insertion notation
    ``"22204:GAG"`` -> ``("", 22204, "GAG")`` (``from`` is empty for an insertion).
    """
    s = str(m).strip()
    hit = SUBSTITUTION.match(s)
    if hit:
        a, p, b = hit.group(1).upper(), int(hit.group(2)), hit.group(3).upper()
        for x in (a, b):
            if x not in _BASES:
                raise TreeError(f"{where}mutation {m!r}: {x!r} is not a nucleotide (IUPAC or '-')")
        return a, p, b
    hit = INSERTION.match(s)
    if hit:
        seq = hit.group(2).upper()
        bad = [c for c in seq if c not in _BASES or c == "-"]
        if bad:
            raise TreeError(f"{where}insertion {m!r}: {bad[0]!r} is not a nucleotide")
        return "", int(hit.group(1)), seq
    raise TreeError(f"{where}cannot parse nucleotide mutation {m!r} (expected like 'C241T', 'A123-', '-123A')")


# --------------------------------------------------------------------------- nodes


def node_value(v: Any) -> Any:
    """An attribute value with Auspice's ``{"value": x}`` wrapper removed."""
    return v.get("value") if isinstance(v, dict) and "value" in v else v


def tip_labels(node: dict) -> dict:
    """All ``node_attrs`` of a node, with ``{"value": x}`` unwrapped to ``x``."""
    return {k: node_value(v) for k, v in (node.get("node_attrs") or {}).items()}


def node_label(node: dict, attr: str) -> str | None:
    """The node's ``attr`` as a stripped string, or None when missing (see :data:`MISSING`)."""
    v = node_value((node.get("node_attrs") or {}).get(attr))
    if isinstance(v, str):
        v = v.strip()
    return None if v in MISSING else str(v)


def safe_name(s: str) -> str:
    """A tip name with every run of whitespace replaced by ``_`` (as ``genomes.fa`` holds it)."""
    return re.sub(r"\s+", "_", str(s).strip())


def nuc_mutations(node: dict) -> list:
    """The nucleotide mutations of the branch above ``node`` (``[]`` if none)."""
    return ((node.get("branch_attrs") or {}).get("mutations") or {}).get("nuc") or []


# --------------------------------------------------------------------------- the walk


def roots(tree: dict | list) -> list[dict]:
    """Accept a whole Auspice JSON (``{"tree": ...}``), a root node, or a list of roots."""
    if isinstance(tree, list):
        return tree
    if isinstance(tree, dict) and "tree" in tree and "name" not in tree and "children" not in tree:
        t = tree["tree"]
        return t if isinstance(t, list) else [t]
    if not isinstance(tree, dict):
        raise TreeError(f"expected an Auspice tree (dict), got {type(tree).__name__}")
    return [tree]


def single_root(tree: dict | list) -> dict:
    """The root node; several roots hang below a synthetic ``__root__`` without mutations."""
    rs = roots(tree)
    return rs[0] if len(rs) == 1 else {"name": "__root__", "children": rs}


def walk_with_undo(tree_roots) -> Iterator[tuple[dict, list, bool]]:
    """Depth-first over the tree (parents before children, children in JSON order).

    Yields ``(node, undo, is_tip)``. The caller edits its state dicts for the node's branch and
    appends ``(dict, key, old value or ABSENT)`` to ``undo`` for every edit; the edits are
    reverted, newest first, once the node's subtree is done. So a tip sees exactly the changes
    on its path from the root, with one live dict instead of a copy per node.
    """
    stack: list = [("node", r) for r in reversed(list(tree_roots))]
    while stack:
        kind, item = stack.pop()
        if kind == "undo":
            for d, key, old in reversed(item):
                if old is ABSENT:
                    d.pop(key, None)
                else:
                    d[key] = old
            continue
        children = item.get("children") or []
        undo: list = []
        yield item, undo, not children
        if undo:
            stack.append(("undo", undo))
        stack.extend(("node", child) for child in reversed(children))


def mutation_depths(tree: dict | list) -> list[tuple[dict, int, int]]:
    """Pre-order list of ``(node, parent index, depth)`` from :func:`single_root`; the depth of a
    node is the number of nucleotide mutations on its path from the root (the parent of the root
    is -1)."""
    out: list[tuple[dict, int, int]] = []
    above = {"parent": -1, "depth": 0}  # the state a node's children see
    for node, undo, _ in walk_with_undo([single_root(tree)]):
        depth = above["depth"] + len(nuc_mutations(node))
        out.append((node, above["parent"], depth))
        undo.extend([(above, "parent", above["parent"]), (above, "depth", above["depth"])])
        above["parent"], above["depth"] = len(out) - 1, depth
    return out


def load_tree(path) -> dict:
    """The tree JSON at ``path`` (a damaged file: an error naming it)."""
    from ..io import read_json

    return read_json(path)
