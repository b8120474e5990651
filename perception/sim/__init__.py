"""Sensor simulation: data with exact ground truth, written in the real datasets' formats.

Scene and camera: :mod:`.world` (``Mesh``, ``World.raycast`` -> ``RayHits``), :mod:`.primitives` (textured
``quad_mesh``, ``box_mesh``, ``ground_plane``, ``cylinder_mesh``), :mod:`.textures` (photographs bundled with
scikit-image), :mod:`.render` (``render_camera`` -> ``Frame`` with RGB, depth, instance and semantic ids).
"""

from perception.sim.primitives import box_mesh, cylinder_mesh, ground_plane, quad_mesh
from perception.sim.render import Frame, Light, render_camera
from perception.sim.world import Mesh, RayHits, World

__all__ = [
    "Frame",
    "Light",
    "Mesh",
    "RayHits",
    "World",
    "box_mesh",
    "cylinder_mesh",
    "ground_plane",
    "quad_mesh",
    "render_camera",
]
