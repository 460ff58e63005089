"""Pictures for people: SR grids, ranked lists, CMC plots, and the callback that logs them."""
