"""Kineo: calibration-free metric multi-view motion capture from 2D keypoints."""

from recon.mocap.pipeline import MocapConfig, MocapResult, run_mocap

__all__ = ["MocapConfig", "MocapResult", "run_mocap"]
