"""What convlab predict draws: the heat scale, a map over the image with its colour bar, the sheet."""

from __future__ import annotations

import numpy as np

from convlab.predict.pictures import INFERNO, Panel, attribution_panel, heat, overlay, panel_picture, sheet


def test_the_heat_scale_runs_dark_to_light_through_its_anchors():
    values = np.linspace(0, 1, 101, dtype=np.float32)[None, :]
    colours = heat(values)[0].astype(int)
    assert colours[0].tolist() == list(INFERNO[0]) and colours[-1].tolist() == list(INFERNO[-1])
    assert colours[50].tolist() == list(INFERNO[4])
    luma = colours @ np.array([299, 587, 114])
    assert (np.diff(luma) >= 0).all()  # lighter all the way: it reads in grey too
    assert heat(np.array([[np.nan, -1.0, 2.0]])).tolist()[0] == [list(INFERNO[0]), list(INFERNO[0]), list(INFERNO[-1])]


def test_a_map_over_the_image_is_its_size_and_its_colour_bar_is_labelled():
    pixels = np.full((32, 32, 3), 200, np.uint8)
    values = np.zeros((32, 32), np.float32)
    values[8:16, 8:16] = 1
    assert overlay(pixels, values).shape == (32, 32, 3)
    panel = attribution_panel(pixels, values, "Grad-CAM: cat", "at stage 3", "0.42")
    assert panel.pixels.shape == (128, 128, 3) and panel.bar == ("0.42", "0")
    inside, outside = panel.pixels[40, 40].astype(int), panel.pixels[100, 100].astype(int)
    assert inside.sum() > outside.sum() + 200  # the map's 1 is light, its 0 dark, over the same grey
    picture = panel_picture(panel)
    assert picture.shape[0] >= 128 + 30 and picture.shape[1] >= 128 + 12 and picture.dtype == np.uint8


def test_a_sheet_holds_its_panels_and_one_bar_per_class():
    panels = [Panel(np.zeros((128, 128, 3), np.uint8), "as given"), Panel(np.zeros((128, 96, 3), np.uint8), "seen", "32x24")]
    small = sheet("cat.jpg: cat (80.0%)", panels, [("cat", 0.8), ("dog", 0.2)], [], [])
    tall = sheet("cat.jpg: cat (80.0%)", panels, [("cat", 0.8), ("dog", 0.1), ("frog", 0.1)], ["resized"], ["dark"])
    assert small.shape[1] >= 128 + 96 + 10 and tall.shape[0] > small.shape[0] + 3 * 12
