"""Re-id evaluation: L2 distances, pessimistic-tie CMC and mAP."""

from sing_lit.evaluation.ranking import cmc_and_map, cmc_curve, pairwise_l2

__all__ = ["cmc_and_map", "cmc_curve", "pairwise_l2"]
