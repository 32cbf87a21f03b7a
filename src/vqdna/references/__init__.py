"""Reference rows that need no pre-training: the floor a pre-trained model has to clear.

* :mod:`vqdna.references.cnn`: a small 1D CNN trained from scratch on one-hot DNA
  (``vqdna baseline cnn --task DIR``).
"""
