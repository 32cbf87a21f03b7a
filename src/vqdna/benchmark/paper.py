"""The paper's GUE numbers, printed beside ours (test MCC x 100, mean of 3 trials).

Source: Li et al., "VQDNA: Unleashing the Power of Vector Quantization for Multi-Species Genomic
Sequence Modeling", ICML 2024 -- the per-task GUE tables of Sec. 4.2:

* Table 3 (columns PD all / notata / tata, CPD all / notata / tata, TFP (Human) 0-4):
  PD = promoter detection, 300 nt (our ``prom_300_*``); CPD = core promoter detection, 70 nt
  (our ``prom_core_*``); TFP-H = human TF binding (our ``tf0`` .. ``tf4``);
* Table 4 (columns TFP (Mouse) 0-4, CVC, SSP, EEP K562 / Jurkat / H1): our ``mouse0``,
  ``mouse2``, ``mouse3``, ``mouse4``.

The text we read (the paper's tables as plain text) carries no table captions; the numbers 3
and 4 follow from Sec. 4.2 ("Table 5, Table 3, and Table 4" for EMP, TFP, CVC, PD, CPD, SSP, and
"EEP ... in Table 4"), and Table 2 is the overall ranking table. Rows used: "DNABERT-2 (BPE)" (the
paper's run of DNABERT-2) and "VQDNA (HRQ)". Every value of the 13 tasks below is read from
one unambiguous cell. Not included: ``doench2016`` (the paper's gRNA tasks are EEP K562 /
Jurkat / H1, not Doench 2016), GUE tasks we do not have (mouse1, prom_300_all / notata, EMP,
CVC, SSP), and anything with another metric. Means over the 13: DNABERT-2 68.38, VQDNA (HRQ)
70.04 (the issue's 68.4 / 70.0).
"""
from __future__ import annotations

__all__ = ["PAPER_GUE", "PAPER_ROWS", "paper_mean"]

PAPER_ROWS = ("DNABERT-2", "VQDNA-HRQ")

#: task name (as :func:`vqdna.benchmark.inputs.task_name` gives it) -> (DNABERT-2, VQDNA-HRQ), MCC x 100
PAPER_GUE: dict[str, tuple[float, float]] = {
    # Table 3: PD tata, CPD all / notata / tata
    "prom_300_tata": (71.59, 74.52),
    "prom_core_all": (69.37, 71.02),
    "prom_core_notata": (68.04, 70.58),
    "prom_core_tata": (74.17, 78.50),
    # Table 3: TFP (Human) 0-4
    "tf0": (71.99, 72.48),
    "tf1": (76.06, 76.43),
    "tf2": (66.52, 66.85),
    "tf3": (58.54, 58.92),
    "tf4": (77.43, 78.10),
    # Table 4: TFP (Mouse) 0, 2, 3, 4
    "mouse0": (56.76, 58.34),
    "mouse2": (79.32, 80.39),
    "mouse3": (66.47, 69.72),
    "mouse4": (52.66, 54.73),
}


def paper_mean(tasks, row: str) -> float | None:
    """Mean of the paper's ``row`` (``"DNABERT-2"`` or ``"VQDNA-HRQ"``) over ``tasks`` (x 100)."""
    i = PAPER_ROWS.index(row)
    vals = [PAPER_GUE[t][i] for t in tasks if t in PAPER_GUE]
    return sum(vals) / len(vals) if vals else None
