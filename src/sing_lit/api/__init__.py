"""Use a trained SING suite from Python: :func:`load` a sweep, run dirs or checkpoints, then
``encode`` images and ``fuse`` distances (Eq. 6-8); see :mod:`sing_lit.api.model` for an example."""

from sing_lit.api.model import Anchor, Encoded, Fused, SINGModel, load

__all__ = ["Anchor", "Encoded", "Fused", "SINGModel", "load"]
