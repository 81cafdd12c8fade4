"""The embedded demo: scikit-learn's digits, small PyTorch and Flax models.

torch, flax and optax are imported inside the functions that need them,
so ``import holejax.demo`` loads none of them.
"""

from holejax.demo.data import load_digits, split_digits

__all__ = ["load_digits", "split_digits"]
