"""Analysis of learned vocabularies (paper Sec. 4.4): ``vqdna analyze``.

* :mod:`.gradcam` -- bag-of-codes features, the linear probe and its Grad-CAM attribution;
* :mod:`.codespace` -- nearest-neighbour purity, class centroids, Mantel and group tests;
* :mod:`.treedist` -- clade distances from a Nextstrain tree (genome and patristic) or k-mers
  (trees are read by :mod:`vqdna.data.auspice`);
* :mod:`.lineage` -- :func:`~vqdna.analysis.lineage.analyze`: the whole run, in named steps;
* :mod:`.lineage_figures`, :mod:`.lineage_report` -- its figures and its ``report.md``.
"""
