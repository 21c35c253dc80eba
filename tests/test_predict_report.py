"""What convlab predict says: bar charts to an eighth of a character, the confusion table, the
CSV and JSON rows, the run's texts."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from convlab.data.folder import Reading
from convlab.predict.images import ImageFile, Seen
from convlab.predict.report import Prediction, PredictionsFile, Tally, bar, confusion_lines, image_lines, record, summary_lines

CLASSES = ("cat", "dog", "frog")


def _prediction(index: int, label: str | None, top: list[tuple[str, float]], steps=(), warnings=()) -> Prediction:
    reading = Reading(np.zeros((32, 32, 3), np.uint8), "PNG", "RGBA", (64, 48), 0.5, 0.75, tuple(steps))
    seen = Seen(ImageFile(Path(f"{index}.png"), f"pets/{label or 'x'}/{index}.png", label, False), reading, tuple(warnings))
    known = CLASSES.index(label) if label in CLASSES else None
    return Prediction(index, seen, top, known, CLASSES.index(top[0][0]))


def test_a_bar_is_its_probability_to_an_eighth_of_a_character():
    assert bar(1.0, 8) == "█" * 8 and bar(0.0, 8) == " " * 8
    assert bar(0.5, 8) == "████    " and bar(1 / 64, 8) == "▏       " and bar(0.75 + 3 / 64, 8) == "██████▍ "
    assert all(len(bar(p / 100)) == 24 for p in range(101))


def test_an_image_s_block_says_what_was_done_and_shows_the_classes():
    pred = _prediction(3, "dog", [("cat", 0.625), ("dog", 0.25), ("frog", 0.125)], ["RGBA: transparent pixels put over white"],
                       ["the centre crop keeps 40% of the picture"])
    lines = image_lines(pred, CLASSES)
    assert lines[0] == "3. pets/dog/3.png -> cat (62.5%)   (its folder: dog, wrong)"
    assert lines[1] == "   as given: 64x48 (HxW) PNG, RGBA; as the model sees it: 3x32x32 (CxHxW)"
    assert lines[2:4] == ["   - RGBA: transparent pixels put over white", "   warning: the centre crop keeps 40% of the picture"]
    assert lines[4] == "   cat   " + "█" * 15 + " " * 9 + "  62.5%"
    assert len(lines) == 7


def test_the_tally_counts_what_its_folders_name_and_the_confusion_table():
    tally = Tally(CLASSES, records=[])
    for i, (label, said) in enumerate([("cat", "cat"), ("cat", "dog"), ("dog", "dog"), ("lion", "cat"), (None, "frog")]):
        tally.add(_prediction(i, label, [(said, 0.9)]))
    assert (tally.predicted, tally.counted, tally.correct) == (5, 3, 2) and tally.per_class == [2, 2, 1]
    assert tally.unknown_labels == {"lion": 1} and len(tally.records) == 5
    lines = summary_lines(tally, 2.0)
    assert lines[0] == "predicted 5 image(s) in 2.0 s (2 images/s)"
    assert "accuracy 66.7%: 2 of 3 image(s) in the class its folder names" in lines
    assert confusion_lines(tally)[1:] == ["           0   1", "  0 cat    1   1", "  1 dog    0   1"]


def test_rows_for_the_csv_and_json():
    pred = _prediction(0, "frog", [("frog", 0.8), ("cat", 0.2)], ["resized"])
    out = io.StringIO()
    table = PredictionsFile(out)
    table.add(pred)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["index", "image", "label", "predicted", "probability", "correct", "top"],
                    ["0", "pets/frog/0.png", "frog", "frog", "0.800000", "true", "frog:0.800000;cat:0.200000"]]
    assert record(pred) == {"index": 0, "image": "pets/frog/0.png", "label": "frog", "predicted": "frog", "probability": 0.8,
                            "correct": True, "top": [{"class": "frog", "probability": 0.8}, {"class": "cat", "probability": 0.2}],
                            "size": [64, 48], "format": "PNG", "mode": "RGBA", "seen": ["resized"], "warnings": []}
