"""Figures: labelled image rows, wrapped titles, a colour bar on density panels, readable paths."""

import pytest
import torch
from PIL import Image

from sdegen.figures import density_panels, image_grid, trajectory_panels


def test_image_rows_are_labelled_and_a_wrong_count_of_labels_is_refused(tmp_path):
    images = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = image_grid(images, tmp_path / "plain.png", nrow=4)
    labelled = image_grid(
        images, tmp_path / "labelled.png", nrow=4, row_labels=["original", "observed", "sample"]
    )
    # the labels take room to the left of the same grid, drawn at twice its pixel size
    (w0, h0), (w1, h1) = Image.open(plain).size, Image.open(labelled).size
    assert w1 > 2 * w0 and h1 >= 2 * h0 - 10
    with pytest.raises(ValueError, match="row_labels must name each of the 3 rows"):
        image_grid(images, tmp_path / "bad.png", nrow=4, row_labels=["original", "observed"])


def test_density_panels_share_one_colour_bar_and_paths_are_thinned(tmp_path):
    grid = torch.linspace(-1, 1, 16)
    log_p = -(grid[:, None] ** 2 + grid[None, :] ** 2)
    path = density_panels({"true": log_p, "model": log_p - 0.1}, (-1, 1, -1, 1), tmp_path / "density.png")
    without_bar = density_panels({"true": log_p}, (-1, 1, -1, 1), tmp_path / "one.png")
    assert Image.open(path).size[0] > Image.open(without_bar).size[0]
    paths = torch.randn(1001, 50, 2, generator=torch.Generator().manual_seed(1)).cumsum(0) * 0.01
    assert trajectory_panels({"a long stochastic path": paths}, tmp_path / "paths.png").stat().st_size > 1000
