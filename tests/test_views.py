import pytest
import torch

from convlab.views import reshape_view, tiles_per_image


def test_multiple_of_three_is_exactly_the_tutorials_reshape():
    out = torch.randn(64, 6, 30, 30)
    view = reshape_view(out)
    assert view.shape == (128, 3, 30, 30)
    assert torch.equal(view, torch.reshape(out, (-1, 3, 30, 30)))


@pytest.mark.parametrize("channels, tiles", [(1, 1), (2, 2), (3, 1), (4, 2), (5, 3), (7, 3), (8, 4), (9, 3)])
def test_any_channel_count(channels, tiles):
    out = torch.randn(5, channels, 7, 4)
    view = reshape_view(out)
    assert tiles_per_image(channels) == tiles
    assert view.shape == (5 * tiles, 3, 7, 4)


def test_remainder_channels_become_grey_tiles_in_order():
    out = torch.randn(2, 5, 3, 3)
    view = reshape_view(out).reshape(2, 3, 3, 3, 3)  # image, tile, rgb, h, w
    for i in range(2):
        assert torch.equal(view[i, 0], out[i, 0:3])  # channels 0,1,2 as RGB
        for tile, ch in ((1, 3), (2, 4)):
            for rgb in range(3):
                assert torch.equal(view[i, tile, rgb], out[i, ch])  # grey: same value in R, G, B


def test_partial_batch():
    assert reshape_view(torch.randn(16, 6, 30, 30)).shape == (32, 3, 30, 30)
