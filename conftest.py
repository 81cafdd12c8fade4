"""Test-suite configuration shared by tests/, the doctests in holejax/ and adapters/.

Hypothesis draws the same examples on every run (``derandomize``), so a run
on a clean clone gives the same verdict as the last one. Set
``HOLEJAX_HYPOTHESIS=explore`` to draw fresh random examples instead (for
hunting new counterexamples locally).
"""

import os

from hypothesis import settings

settings.register_profile("holejax", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("explore" if os.environ.get("HOLEJAX_HYPOTHESIS") == "explore" else "holejax")
