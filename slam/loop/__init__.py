"""Place recognition for loop closure: an incremental ANN index of global descriptors and a verified detector."""

from slam.loop.detector import LoopDetector, LoopOptions, LoopResult, Place
from slam.loop.index import PlaceIndex

__all__ = ["LoopDetector", "LoopOptions", "LoopResult", "Place", "PlaceIndex"]
