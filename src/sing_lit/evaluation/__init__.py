"""Re-id evaluation: L2 distances, pessimistic-tie CMC, mAP and mINP (single-shot and query/gallery)."""

from sing_lit.evaluation.ranking import cmc_and_map, cmc_curve, pairwise_l2, rank_metrics

__all__ = ["cmc_and_map", "cmc_curve", "pairwise_l2", "rank_metrics"]
