"""The embedded demo: scikit-learn's digits, small PyTorch and Flax models.

torch and flax are imported inside the functions that need them, so
``import holejax.demo`` stays as light as ``import holejax``.
"""

from holejax.demo.data import load_digits, split_digits

__all__ = ["load_digits", "split_digits"]
