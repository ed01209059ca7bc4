"""Grids (网格) and their workers' tasks before, during and after a case (办理前解答、办理中跟踪、办理后评价)."""
