"""Camera relocalization: FaVoR (descriptor voxel rendering) maps, queries and baselines."""

from slam.reloc.build import MapConfig, TrainFrame, build_map
from slam.reloc.favor_map import FavorMap
from slam.reloc.localize import METHODS, QueryConfig, QueryResult, Relocalizer

__all__ = ["METHODS", "FavorMap", "MapConfig", "QueryConfig", "QueryResult", "Relocalizer", "TrainFrame", "build_map"]
