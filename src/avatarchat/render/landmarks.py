"""Face landmarks from mediapipe's bundled face mesh (478 points with iris refinement)."""

from __future__ import annotations

import threading

import numpy as np

from avatarchat.errors import NoFaceError

# Every mediapipe face-mesh index the project uses is named here (renderer, tests and benchmarks alike), so a
# number in the code always says which point of the face it means. "Left" and "right" are the image's sides.
FOREHEAD, CHIN, NOSE_TIP, NOSE_BOTTOM = 10, 152, 1, 2
NOSE_BRIDGE = 6  # between the eyes
FACE_LEFT, FACE_RIGHT = 234, 454  # the face's outline at cheek height
CHIN_SIDES = [148, 377]

INNER_LIP_TOP, INNER_LIP_BOTTOM = 13, 14  # the middle of the lips' inner edges: their distance is the opening
OUTER_LIP_TOP, OUTER_LIP_BOTTOM = 0, 17  # the middle of the lips' outer edges
MOUTH_LEFT, MOUTH_RIGHT = 61, 291  # the outer corners of the mouth
UPPER_LIP_PEAKS = [37, 267]  # the two peaks of the upper lip's outer edge (its cupid's bow)
UPPER_LIP_INNER = [78, 191, 80, 81, 82, INNER_LIP_TOP, 312, 311, 310, 415, 308]
LOWER_LIP_INNER = [95, 88, 178, 87, INNER_LIP_BOTTOM, 317, 402, 318, 324]
UPPER_LIP_OUTER = [185, 40, 39, UPPER_LIP_PEAKS[0], OUTER_LIP_TOP, UPPER_LIP_PEAKS[1], 269, 270, 409]
LOWER_LIP_OUTER = [146, 91, 181, 84, OUTER_LIP_BOTTOM, 314, 405, 321, 375]
MOUTH_CORNERS = [MOUTH_LEFT, MOUTH_RIGHT, 78, 308]  # outer, then inner corners
LOWER_LIP_MID = [77, 90, 180, 85, 16, 315, 404, 320, 307, 96, 89, 179, 86, 15, 316, 403, 319, 325]
UPPER_LIP_MID = [184, 74, 73, 72, 11, 302, 303, 304, 408, 183, 42, 41, 38, 12, 268, 271, 272, 407]
INNER_MOUTH_POLYGON = UPPER_LIP_INNER + LOWER_LIP_INNER[::-1]

LEFT_EYE_UPPER = [246, 161, 160, 159, 158, 157, 173]
LEFT_EYE_LOWER = [7, 163, 144, 145, 153, 154, 155]
RIGHT_EYE_UPPER = [466, 388, 387, 386, 385, 384, 398]
RIGHT_EYE_LOWER = [249, 390, 373, 374, 380, 381, 382]
LEFT_EYE_CORNERS = [33, 133]
RIGHT_EYE_CORNERS = [263, 362]
LEFT_EYE = LEFT_EYE_UPPER + LEFT_EYE_LOWER + LEFT_EYE_CORNERS  # the whole eye outline
RIGHT_EYE = RIGHT_EYE_UPPER + RIGHT_EYE_LOWER + RIGHT_EYE_CORNERS

CHEEK_SKIN = [50, 280, 205, 425, 118, 347]  # cheek points beside the nose, where skin colour is sampled
# Points a lip-sync renderer has no reason to move (the lids do move: clips blink).
NOSE_RIDGE = [168, NOSE_BRIDGE, 197, 195, 5, 4, NOSE_TIP]
FOREHEAD_MIDLINE = [FOREHEAD, 151, 9, 8]
TEMPLES = [127, 356, 162, 389]

# Brows, image-left then image-right, each from the temple side to the middle (upper edge, then lower edge).
LEFT_BROW = [70, 63, 105, 66, 107, 46, 53, 52, 65, 55]
RIGHT_BROW = [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]
BROW_INNER = [107, 55, 66, 65, 336, 285, 296, 295]  # the ends by the nose: they knit
BROW_TOP = [105, 334]  # the middle of each brow's upper edge (brow-to-eye distance)
EYE_TOP = [159, 386]  # the middle of each upper lid (the other end of that distance)
# Forehead skin just above the brows: it rides part of a brow lift.
FOREHEAD_LOW = [104, 69, 108, 151, 337, 299, 333, 67, 109, 338, 297]
IRIS = list(range(468, 478))  # both irises (centre and four rim points each): gaze
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
# Rigid points for measuring head pose: forehead, nose bridge and eye corners move with the skull only.
RIGID = FOREHEAD_MIDLINE + [168, NOSE_BRIDGE] + LEFT_EYE_CORNERS + RIGHT_EYE_CORNERS

class FaceMesh:
    """A thread-safe wrapper: mediapipe graphs must not be entered from two threads at once."""

    def __init__(self, static: bool = True, max_faces: int = 2) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=max_faces, refine_landmarks=True, min_detection_confidence=0.5
        )
        self._lock = threading.Lock()

    def detect_all(self, rgb: np.ndarray) -> list[np.ndarray]:
        """All faces in an RGB uint8 image, each (478, 3) with x, y in pixels and z in pixel-ish units."""
        h, w = rgb.shape[:2]
        with self._lock:
            result = self._mesh.process(np.ascontiguousarray(rgb))
        faces = result.multi_face_landmarks or []
        return [np.array([[p.x * w, p.y * h, p.z * w] for p in f.landmark], dtype=np.float32) for f in faces]

    def detect_one(self, rgb: np.ndarray, what: str = "image") -> np.ndarray:
        faces = self.detect_all(rgb)
        if not faces:
            raise NoFaceError(
                f"No face found in {what}. Use a front-facing photo or video where one face is clearly visible "
                "and at least about 100 px wide."
            )
        if len(faces) > 1:
            raise NoFaceError(f"Found {len(faces)} faces in {what}; the avatar needs exactly one. Crop to one face.")
        return faces[0]

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
