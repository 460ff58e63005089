"""Result tables (mean ± std over trials) and the numbers quoted from the paper."""
