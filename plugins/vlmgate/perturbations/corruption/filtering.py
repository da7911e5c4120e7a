"""Linear filters the corruptions share: skimage-style Gaussian smoothing and FFT correlation.

``gaussian_smooth`` is what ImageNet-C's ``skimage.filters.gaussian`` does (spatial axes
only, border ``'nearest'``, truncated at 4 sigma). ``correlate_fft`` correlates with a
dense kernel through the FFT after padding the borders explicitly: defocus disks and
motion-blur lines reach ~90 px on a 1024-px image, where direct correlation (and
``scipy.ndimage``, which visits every cell of the kernel's square) takes seconds.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage, signal


def gaussian_smooth(layer: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """Gaussian-smooth the spatial axes of an H x W or H x W x C float layer."""
    if sigma <= 0:
        return layer
    sigmas = (sigma, sigma) + (0.0,) * (layer.ndim - 2)
    return ndimage.gaussian_filter(layer, sigma=sigmas, mode=mode, truncate=truncate)


def correlate_fft(layer: np.ndarray, kernel: np.ndarray, pad_mode: Literal["reflect", "edge"]) -> np.ndarray:
    """``out[p] = sum_o kernel[c + o] · layer[p + o]`` for an odd square ``kernel``.

    Borders follow ``numpy.pad(mode=pad_mode)``: ``'reflect'`` is OpenCV's default
    reflect-101 (scipy's ``'mirror'``), ``'edge'`` is scipy's ``'nearest'``.
    """
    half = kernel.shape[0] // 2
    spatial = ((half, half), (half, half))
    padded = np.pad(layer, spatial + ((0, 0),) * (layer.ndim - 2), mode=pad_mode)
    flipped = kernel[::-1, ::-1].astype(np.float32)  # correlation = convolution with the flipped kernel
    if layer.ndim == 3:
        flipped = flipped[:, :, np.newaxis]
    out = signal.fftconvolve(padded, flipped, mode="valid", axes=(0, 1))
    return out.astype(np.float32)
