"""Image metrics (core.model.metrics) against values computed by hand."""

import numpy as np

from core.model.metrics import edge_chroma_departure


def _square(colour) -> tuple[np.ndarray, np.ndarray]:
    alpha = np.zeros((32, 32), np.float32)
    alpha[8:24, 8:24] = 1.0
    return alpha[..., None] * np.asarray(colour, np.float32), alpha


def test_a_coloured_speck_on_the_silhouette_departs_by_its_chroma_and_nothing_else_does():
    img, alpha = _square((0.8, 0.5, 0.3))
    edge = edge_chroma_departure(img, alpha)
    assert len(edge) == 4 * 15 and edge.max() == 0  # the square's outline; one colour: no departure
    img[8, 12] = (0.9, 0.0, 0.0)  # a red speck on the top edge
    edge = edge_chroma_departure(img, alpha)
    assert (edge > 0.01).sum() == 1  # its neighbours' median is still the subject's colour
    np.testing.assert_allclose(edge.max(), 1.0 - 0.8 / 1.6, rtol=1e-6)  # r chroma 1 against 0.5
    img[12, 12] = (0.0, 0.0, 0.9)  # inside the subject: not a silhouette pixel
    assert (edge_chroma_departure(img, alpha) > 0.01).sum() == 1


def test_a_smooth_colour_gradient_along_the_edge_departs_little():
    img, alpha = _square((0.5, 0.5, 0.5))
    ramp = np.linspace(0.0, 1.0, 32, dtype=np.float32)
    img[..., 0] *= 1.0 + ramp[None, :]  # red rises across the frame, doubling
    edge = edge_chroma_departure(img, alpha)
    assert edge.max() < 0.02  # about one step of the ramp in chroma
