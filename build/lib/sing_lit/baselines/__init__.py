"""Hand-crafted re-id baselines of SING's Table 2: LOMO features with XQDA or NFST.

``from sing_lit.baselines.lomo import lomo`` for the descriptor (the function is not
re-exported here so that ``sing_lit.baselines.lomo`` stays the module).
"""

from sing_lit.baselines.nfst import NFST
from sing_lit.baselines.xqda import XQDA, xqda_covariances

__all__ = ["NFST", "XQDA", "xqda_covariances"]
