"""The inside of an open mouth, synthesised where the warped lips part: a dark cavity lit like the face, a row
of upper teeth (or the avatar's own, when its photo shows them) and a hint of tongue. Pixels only; the lips'
motion is render/face_rig.py.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarchat.render import landmarks as L
from avatarchat.render.face_rig import MouthRig, smoothstep
from avatarchat.render.warp import read_only


class MouthInterior:
    """Synthesises the inside of an open mouth (dark cavity, upper teeth, tongue hint), lit like the face."""

    def __init__(self, image: np.ndarray, lm: np.ndarray, rig: MouthRig) -> None:
        p = lm[:, :2]
        f = rig.face
        # Skin colour from the cheeks beside the nose: robust median, in float RGB.
        samples = []
        for i in L.CHEEK_SKIN:
            x, y = int(p[i, 0]), int(p[i, 1])
            patch = image[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].reshape(-1, 3)
            samples.append(patch)
        skin = np.median(np.concatenate(samples), axis=0).astype(np.float32)
        light = float(np.clip(skin.mean() / 170.0, 0.45, 1.3))
        teeth_light = float(np.clip(skin.mean() / 150.0, 0.8, 1.1))  # teeth stay light even on dark photos
        self.cavity = np.array([70.0, 22.0, 24.0], np.float32) * light * 0.55 + skin * 0.08
        self.teeth = np.array([236.0, 226.0, 205.0], np.float32) * teeth_light
        self.tongue = np.array([170.0, 78.0, 80.0], np.float32) * light * 0.75
        self.rest_gap = float(np.linalg.norm(p[L.INNER_LIP_BOTTOM] - p[L.INNER_LIP_TOP]))
        self.height = f.height
        self.rig = rig
        # An avatar photographed with parted lips shows its real teeth: they hang from the upper jaw, which does
        # not move, so they are kept where they are and drawn over the cavity instead of synthetic ones.
        self.image = image
        src_poly = p[L.INNER_MOUTH_POLYGON].astype(np.float64)
        self.real_teeth = self.rest_gap > 0.02 * f.height
        self.src_poly = src_poly
        read_only(self.cavity, self.teeth, self.tongue, self.src_poly)

    def gap_alpha(self, gap: float) -> float:
        """How much synthetic interior shows: none at the rest opening, all once the jaw has dropped a bit."""
        return float(np.clip((gap - self.rest_gap - 0.3) / (0.025 * self.height), 0.0, 1.0))

    def paint(self, frame: np.ndarray, dst: np.ndarray) -> None:
        rig = self.rig
        upper = np.array([rig.point(dst, i) for i in L.UPPER_LIP_INNER])
        lower = np.array([rig.point(dst, i) for i in L.LOWER_LIP_INNER])
        gap = float(np.linalg.norm(rig.point(dst, L.INNER_LIP_BOTTOM) - rig.point(dst, L.INNER_LIP_TOP)))
        alpha_max = self.gap_alpha(gap)
        if alpha_max <= 0.0:
            return
        poly = np.concatenate([upper, lower[::-1]])
        x0 = max(0, int(poly[:, 0].min()) - 2)
        y0 = max(0, int(poly[:, 1].min()) - 2)
        x1 = min(frame.shape[1], int(np.ceil(poly[:, 0].max())) + 3)
        y1 = min(frame.shape[0], int(np.ceil(poly[:, 1].max())) + 3)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        hh, ww = y1 - y0, x1 - x0
        mask = np.zeros((hh * 4, ww * 4), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA)
        mask = cv2.resize(mask, (ww, hh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        mask = cv2.GaussianBlur(mask, (3, 3), 0.8) * alpha_max

        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ou = np.argsort(upper[:, 0])
        ol = np.argsort(lower[:, 0])
        y_up = np.interp(gx[0], upper[ou, 0], upper[ou, 1])[None, :]
        y_lo = np.interp(gx[0], lower[ol, 0], lower[ol, 1])[None, :]
        depth = np.clip((gy - y_up) / np.maximum(y_lo - y_up, 1.0), 0.0, 1.0)
        cx = (upper[0, 0] + upper[-1, 0]) / 2
        half = max(abs(upper[-1, 0] - upper[0, 0]) / 2, 1.0)
        side = np.clip(np.abs(gx - cx) / half, 0.0, 1.0)
        # The opening narrows into the corners of the mouth instead of ending in a square edge.
        mask = mask * smoothstep((1.0 - side) / 0.2)

        col = self.cavity[None, None, :] * (1.0 - 0.35 * depth[..., None]) * (1.0 - 0.4 * side[..., None] ** 2)
        open_px = max(gap - self.rest_gap, 0.0)
        if self.real_teeth:
            tmask = np.zeros((hh * 4, ww * 4), np.uint8)
            cv2.fillPoly(tmask, [np.round((self.src_poly - (x0, y0)) * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA)
            teeth = cv2.resize(tmask, (ww, hh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            teeth = cv2.GaussianBlur(teeth, (3, 3), 0.8)
            col = col * (1 - teeth[..., None]) + self.image[y0:y1, x0:x1].astype(np.float32) * teeth[..., None]
        else:
            teeth_h = min(0.026 * self.height, 0.35 * (gap + 1.0))
            teeth = smoothstep((y_up + teeth_h - gy) / 1.5) * smoothstep((gy - y_up + 2.0) / 1.5)
            teeth *= smoothstep((1.0 - side) / 0.35)  # the row curves back out of sight at the corners
            # Separate teeth: faint gaps, about eight across the opening, narrower towards the corners.
            tooth_w = max(2 * half / 8.0, 2.0)
            gaps = np.maximum(np.cos(np.pi * (gx - cx) / tooth_w * (1 + 0.4 * side)), 0.0) ** 12
            shade = (1.0 - 0.15 * np.clip((gy - y_up) / max(teeth_h, 1.0), 0, 1) - 0.3 * side**2) * (1 - 0.18 * gaps)
            col = col * (1 - teeth[..., None]) + (self.teeth[None, None, :] * shade[..., None]) * teeth[..., None]
        tongue_h = min(0.3 * open_px, 0.04 * self.height)
        if tongue_h > 2.0:  # only once the mouth is open enough to show it
            bump = np.clip(1.0 - (side / 0.8) ** 2, 0.0, 1.0)  # a rounded mound in the middle
            tongue = smoothstep((gy - (y_lo - tongue_h * np.sqrt(bump))) / 2.0) * bump * depth
            tongue = cv2.GaussianBlur(tongue.astype(np.float32), (5, 5), 1.2) * 0.8
            col = col * (1 - tongue[..., None]) + self.tongue[None, None, :] * tongue[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi * (1 - mask[..., None]) + col * mask[..., None], 0, 255).astype(np.uint8)
