"""Image checks and the hash-based split."""

import numpy as np
import pytest

from galrate.imageset.validate import Rejects, assign_split, check_flux, check_rgb


def test_check_rgb_accepts_a_galaxy(make):
    assert check_rgb(make.rgb(0), 64) is None
    assert check_rgb(make.rgb(0)) is None


@pytest.mark.parametrize("array, reason", [
    (np.zeros((64, 64, 3), np.uint8), "blank image: all pixels are zero"),
    (np.full((64, 64, 3), 128, np.uint8), "blank image: constant value 128"),
    (np.ones((48, 48, 3), np.uint8), "shape (48, 48, 3), expected (64, 64, 3)"),
    (np.ones((64, 64), np.uint8), "shape (64, 64), expected (64, 64, 3)"),
    (np.ones((64, 64, 4), np.uint8), "shape (64, 64, 4), expected (64, 64, 3)"),
])
def test_check_rgb_reasons(array, reason):
    assert check_rgb(array, 64) == reason


def test_check_rgb_float_with_nan():
    array = np.linspace(0, 1, 64 * 64 * 3).reshape(64, 64, 3)
    array[0, 0, 0] = np.nan
    array[5, 5, 1] = np.inf
    assert check_rgb(array, 64) == "2 non-finite pixel values"


def test_check_flux_nan_fraction_and_blank_band(make):
    flux = make.flux(0)
    assert check_flux(flux, 3, 64) is None
    bad = flux.copy()
    bad[2, :2, :] = np.nan  # 128 pixels of band i
    assert check_flux(bad, 3, 64) == "128 NaN/inf pixels (1% of 12288), most in band 2"
    blank = flux.copy()
    blank[1] = 0.0
    assert check_flux(blank, 3, 64) == "band 1: blank image: all pixels are zero"
    assert check_flux(flux[:2], 3, 64) == "flux shape (2, 64, 64), expected (3, 64, 64)"


def test_rejects_table_logs_each_entry(caplog):
    rejects = Rejects()
    rejects.add("a", "a.png", "truncated PNG file (x)")
    rejects.add("b", "b.jpg", "HTML page, not an image")
    rejects.add("c", "c.jpg", "truncated JPEG file (y)")
    frame = rejects.to_frame()
    assert list(frame.columns) == ["image_id", "file", "reason"]
    assert frame["image_id"].tolist() == ["a", "b", "c"]
    assert rejects.counts() == {"truncated PNG file": 1, "HTML page, not an image": 1,
                                "truncated JPEG file": 1}
    assert "rejected b (b.jpg): HTML page, not an image" in caplog.text


def test_assign_split_is_stable_under_order_and_size():
    ids = [f"gal{k}" for k in range(5000)]
    split = dict(zip(ids, assign_split(ids, (0.8, 0.1, 0.1), seed=3)))
    # reversed and shrunk catalogue: every galaxy keeps its split
    sub = ids[::-7]
    again = assign_split(sub, (0.8, 0.1, 0.1), seed=3)
    assert [split[g] for g in sub] == again.tolist()
    # fractions within 4 binomial sigma of the target
    values = np.array(list(split.values()))
    for name, f in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        sigma = np.sqrt(f * (1 - f) / len(ids))
        assert abs(np.mean(values == name) - f) < 4 * sigma


def test_assign_split_groups_images_of_a_galaxy_and_depends_on_seed():
    ids = ["g1", "g2", "g1", "g3", "g1"] * 3
    split = assign_split(ids, (0.5, 0.25, 0.25), seed=0)
    assert len({s for g, s in zip(ids, split) if g == "g1"}) == 1
    many = [str(k) for k in range(200)]
    assert (assign_split(many, seed=0) != assign_split(many, seed=1)).any()
    # integer and string ids are the same galaxy
    np.testing.assert_array_equal(assign_split(range(200), seed=0),
                                  assign_split(many, seed=0))


def test_assign_split_known_answer_for_degenerate_fractions():
    assert set(assign_split(["a", "b", "c"], (1.0, 0.0, 0.0))) == {"train"}
    assert set(assign_split(["a", "b", "c"], (0.0, 0.0, 1.0))) == {"test"}


@pytest.mark.parametrize("fractions, match", [
    ((0.8, 0.1), "differ in length"),
    ((0.8, 0.3, 0.1), "sum to 1"),
    ((1.2, -0.1, -0.1), ">= 0"),
])
def test_assign_split_rejects_bad_fractions(fractions, match):
    with pytest.raises(ValueError, match=match):
        assign_split(["a"], fractions)
