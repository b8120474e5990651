"""Evaluation metrics: poses / relocalisation, trajectories (ATE/RPE via evo), mocap, segmentation, images.

Pure functions: numpy arrays in, floats or small dataclasses out.
"""

from perception.metrics.image import psnr, ssim
from perception.metrics.mocap import (
    CameraMetrics,
    ae,
    camera_metrics,
    mpjpe,
    pa_mpjpe,
    procrustes,
    s_te,
    te,
    w_mpjpe,
)
from perception.metrics.pose import (
    MedianRatio,
    RelocSummary,
    median_ratio,
    pose_errors,
    recall_at,
    reloc_summary,
    rotation_error_deg,
    translation_error_m,
)
from perception.metrics.segmentation import (
    confusion_matrix,
    iou_per_class,
    mean_class_accuracy,
    miou,
    overall_accuracy,
)
from perception.metrics.trajectory import ATEResult, RPEResult, ate, rpe

__all__ = [
    "ATEResult",
    "CameraMetrics",
    "MedianRatio",
    "RPEResult",
    "RelocSummary",
    "ae",
    "ate",
    "camera_metrics",
    "confusion_matrix",
    "iou_per_class",
    "mean_class_accuracy",
    "median_ratio",
    "miou",
    "mpjpe",
    "overall_accuracy",
    "pa_mpjpe",
    "pose_errors",
    "procrustes",
    "psnr",
    "recall_at",
    "reloc_summary",
    "rotation_error_deg",
    "rpe",
    "s_te",
    "ssim",
    "te",
    "translation_error_m",
    "w_mpjpe",
]
