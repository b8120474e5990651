"""RootSIFT (Arandjelovic & Zisserman 2012): OpenCV SIFT with Hellinger-normalised descriptors."""

from __future__ import annotations

import cv2
import numpy as np

from perception.errors import InputError
from perception.features.types import Features


class RootSiftExtractor:
    dim = 128
    name = "rootsift"

    def __init__(self, max_keypoints: int = 1024) -> None:
        self.sift = cv2.SIFT_create(nfeatures=max_keypoints)
        self.max_keypoints = max_keypoints

    def __call__(self, image: np.ndarray) -> Features:
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"RootSIFT: expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        kps, desc = self.sift.detectAndCompute(gray, None)
        h, w = gray.shape
        if desc is None or len(kps) == 0:
            return Features(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, 128), np.float32),
                            (w, h), "rootsift")  # fmt: skip
        desc = desc.astype(np.float32)
        desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-12)  # L1
        desc = np.sqrt(desc)  # Hellinger: rows are now L2-unit
        kp = np.array([k.pt for k in kps], dtype=np.float32)
        scores = np.array([k.response for k in kps], dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[: self.max_keypoints]
        return Features(kp[order], scores[order], desc[order], (w, h), "rootsift")
