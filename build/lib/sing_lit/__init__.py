"""sing_lit: SING (Jiao et al., AAAI 2018) low-resolution person re-id as a Lightning + Hydra suite."""

__version__ = "0.1.0"
