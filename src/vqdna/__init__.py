"""vqdna: genome language modelling with a learned vocabulary (VQDNA, ICML 2024)."""
__version__ = "0.1.0"
