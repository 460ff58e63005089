"""sing_lit: SING (Jiao et al., AAAI 2018) low-resolution person re-id as a Lightning + Hydra suite."""

from sing_lit.runtime.allocator import tune_malloc

# Before anything allocates: every entry point, worker, DDP rank and test gets it (see runtime/allocator.py).
tune_malloc()

__version__ = "0.1.0"
