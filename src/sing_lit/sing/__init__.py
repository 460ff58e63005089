"""The SING method: the joint losses of Eq. (2)-(5), the LightningModule that trains them, and the
multi-resolution adaptive fusion of Eq. (6)-(8) with the fusion-eval stage built on it."""
