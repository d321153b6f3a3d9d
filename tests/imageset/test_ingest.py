"""ingest: folders and catalogues -> image sets; every bad image is accounted for."""

import json

import numpy as np
import pandas as pd
import pytest

from galrate.cli import main
from galrate.imageset.core import ImageSet, ImageSetError, read_manifest
from galrate.imageset.ingest import ingest
from galrate.survey import SDSS


@pytest.fixture
def messy_folder(tmp_path, make):
    """Good pictures of several kinds and one of every kind of bad image."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "good_png.png").write_bytes(make.png(make.rgb(1)))
    (src / "sub" / "good_grey.png").write_bytes(make.png(make.rgb(2)[..., 0]))
    (src / "good_jpg.jpg").write_bytes(make.jpeg(make.rgb(3)))
    np.save(src / "good_npy.npy", make.rgb(4))

    png = make.png(make.rgb(5))
    jpg = make.jpeg(make.rgb(6))
    half = len(png) // 2
    (src / "corrupt.png").write_bytes(png[:half] + b"\x00" * 64 + png[half + 64:])
    (src / "garbage.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    (src / "trunc.png").write_bytes(png[: len(png) // 2])
    (src / "trunc_j.jpg").write_bytes(jpg[: len(jpg) // 2])
    (src / "small.png").write_bytes(make.png(make.rgb(7, size=48)))
    (src / "constant.png").write_bytes(make.png(np.full((64, 64, 3), 90, np.uint8)))
    (src / "black.jpg").write_bytes(make.jpeg(np.zeros((64, 64, 3), np.uint8)))
    (src / "error.jpg").write_bytes(b"<!DOCTYPE html>\n<html><head><title>500 Internal "
                                    b"Server Error</title></head></html>")
    return src


EXPECTED_REJECTS = {
    "corrupt": "corrupt PNG data",
    "garbage": "not a recognised image format",
    "small": "shape (48, 48, 3), expected (64, 64, 3)",
    "constant": "blank image: constant value 90",
    "black": "blank image: all pixels are zero",
    "error": "HTML page, not an image",
}


def test_ingest_folder_sets_aside_every_bad_image(tmp_path, messy_folder, make):
    src = messy_folder
    out = tmp_path / "set"
    seen = []
    imageset = ingest(src, out, size=64, progress=lambda d, t, w: seen.append((d, t, w)))

    assert sorted(imageset.manifest["image_id"]) == ["good_jpg", "good_npy", "good_png",
                                                     "sub/good_grey"]
    rejects = imageset.rejects().set_index("image_id")
    assert len(rejects) == 8
    for image_id, reason in EXPECTED_REJECTS.items():
        assert reason in rejects.loc[image_id, "reason"], image_id
    assert rejects.loc["trunc", "reason"].startswith("truncated PNG file")
    assert rejects.loc["trunc_j", "reason"].startswith("truncated JPEG file")
    assert rejects.loc["error", "file"] == "error.jpg"
    assert seen[0] == (0, 12, "ingest") and seen[-1] == (12, 12, "ingest")

    # pixels in the store are the decoded files; notes recorded
    m = imageset.manifest.set_index("image_id")
    rgb = imageset.rgb([imageset.manifest.index[imageset.manifest.image_id == "good_png"][0]])
    np.testing.assert_array_equal(rgb[0], make.rgb(1))
    assert m.loc["sub/good_grey", "notes"] == "greyscale replicated to 3 channels"
    assert (m["path"] == "pixels.h5").all()
    assert sorted(m["index"]) == [0, 1, 2, 3]

    meta = json.loads((out / "imageset.json").read_text())
    assert meta["kind"] == "rgb8" and meta["size"] == 64 and meta["has_flux"] is False
    assert meta["bands"] == ["g", "r", "i"] and meta["rgb_bands"] == ["i", "r", "g"]
    assert meta["survey"]["name"] == "sdss"
    assert meta["provenance"]["n_rejected"] == 8


def test_ingest_fits_folder_cubes_and_per_band_files(tmp_path, make):
    src = tmp_path / "fits"
    src.mkdir()
    make.fits(src / "cube.fits", make.flux(1), BAND1="g", BAND2="r", BAND3="i")
    make.fits(src / "gz.fits.gz", make.flux(2), FILTER="g,r,i")
    for k, band in enumerate("gri"):
        make.fits(src / f"split_{band}.fits", make.flux(3)[k], FILTER=band)
    nan = make.flux(4)
    nan[1, 10, 10:13] = np.nan
    make.fits(src / "holes.fits", nan, BAND1="g", BAND2="r", BAND3="i")
    make.fits(src / "lonely_r.fits", make.flux(5)[1], FILTER="r")  # g and i missing

    imageset = ingest(src, tmp_path / "set")
    assert imageset.metadata["has_flux"] is True
    ids = imageset.manifest["image_id"].tolist()
    assert ids == ["cube", "gz", "split"]
    np.testing.assert_array_equal(imageset.flux([0, 1, 2]),
                                  np.stack([make.flux(1), make.flux(2), make.flux(3)]))
    np.testing.assert_array_equal(imageset.rgb([2])[0], SDSS.to_rgb(make.flux(3)))
    rejects = imageset.rejects().set_index("image_id")
    assert rejects.loc["holes", "reason"] == "3 NaN/inf pixels (0.024% of 12288), " \
                                             "most in band 1"
    assert "bands ('r',) do not match the survey" in rejects.loc["lonely_r", "reason"]


def test_ingest_catalogue_carries_properties(tmp_path, make):
    files = tmp_path / "files"
    files.mkdir()
    rows = []
    for k in range(5):
        (files / f"img{k}.png").write_bytes(make.png(make.rgb(k)))
        rows.append({"objid": f"J{k:03d}", "path": f"files/img{k}.png",
                     "log_mstar": 9.0 + k / 10, "redshift": 0.05 * (k + 1)})
    rows.append({"objid": "J999", "path": "files/missing.png", "log_mstar": 11.0,
                 "redshift": 0.1})
    cat = tmp_path / "cat.csv"
    pd.DataFrame(rows).to_csv(cat, index=False)

    imageset = ingest(cat, tmp_path / "set", id_column="objid", source_name="observed")
    m = imageset.manifest
    assert m["image_id"].tolist() == ["J000", "J001", "J002", "J003", "J004"]
    np.testing.assert_allclose(m["log_mstar"], [9.0, 9.1, 9.2, 9.3, 9.4])
    np.testing.assert_allclose(m["redshift"], [0.05, 0.10, 0.15, 0.20, 0.25])
    assert m["input_file"].tolist()[0] == "files/img0.png"
    np.testing.assert_array_equal(imageset.rgb([3])[0], make.rgb(3))
    assert imageset.rejects()[["image_id", "reason"]].values.tolist() == \
        [["J999", "file not found"]]

    # the same through the CLI, with SOURCE the folder and --catalogue the table
    code = main(["ingest", str(tmp_path), "--catalogue", str(cat), "--out",
                 str(tmp_path / "cli"), "--id-column", "objid", "--no-progress"])
    assert code == 0
    cli_set = ImageSet.open(tmp_path / "cli")
    pd.testing.assert_frame_equal(cli_set.manifest, m)


def test_ingest_catalogue_one_file_per_band(tmp_path, make):
    rows = []
    for k in range(3):
        row = {"galaxy_id": f"G{k}", "log_mstar": 10.0 + k}
        for j, band in enumerate("gri"):
            name = f"obj{k}-{band}.fits"
            make.fits(tmp_path / name, make.flux(k)[j])  # no FILTER keyword: band given
            row[f"path_{band}"] = name
        rows.append(row)
    cat = tmp_path / "bands.csv"
    pd.DataFrame(rows).to_csv(cat, index=False)
    imageset = ingest(cat, tmp_path / "set")
    assert imageset.manifest["image_id"].tolist() == ["obj0", "obj1", "obj2"]
    assert imageset.manifest["galaxy_id"].tolist() == ["G0", "G1", "G2"]
    np.testing.assert_array_equal(imageset.flux(), np.stack([make.flux(k)
                                                             for k in range(3)]))


def test_catalogue_without_path_column_names_the_file(tmp_path):
    cat = tmp_path / "cat.csv"
    pd.DataFrame({"file": ["a.png"], "mass": [1.0]}).to_csv(cat, index=False)
    with pytest.raises(ImageSetError, match=r"cat\.csv: no column 'path'"):
        ingest(cat, tmp_path / "set")


def test_catalogue_with_duplicate_ids_names_the_file(tmp_path):
    cat = tmp_path / "dup.csv"
    pd.DataFrame({"path": ["a/x.png", "b/x.png"]}).to_csv(cat, index=False)
    with pytest.raises(ImageSetError, match=r"dup\.csv: duplicate image ids .*'x'"):
        ingest(cat, tmp_path / "set")


def test_cli_reports_a_bad_catalogue_in_one_line(tmp_path, capsys):
    cat = tmp_path / "dup.csv"
    pd.DataFrame({"path": ["a/x.png", "b/x.png"]}).to_csv(cat, index=False)
    assert main(["ingest", str(cat), "--out", str(tmp_path / "set"),
                 "--no-progress"]) == 2


@pytest.mark.parametrize("text, match", [
    ("image_id,path,index\na,x.png,-1\na,y.png,-1\n", r"bad\.csv: duplicate image_id"),
    ("image_id,index\na,-1\n", r"bad\.csv: missing column\(s\) \['path'\]"),
])
def test_bad_csv_manifest_raises_naming_the_file(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ImageSetError, match=match):
        read_manifest(tmp_path / "bad.csv")


def test_resize_crop_and_area(tmp_path, make):
    src = tmp_path / "big"
    src.mkdir()
    big = make.rgb(1, size=80)
    (src / "big.png").write_bytes(make.png(big))
    rejected = ingest(src, tmp_path / "strict")
    assert rejected.rejects()["reason"].tolist() == ["shape (80, 80, 3), expected "
                                                     "(64, 64, 3)"]
    cropped = ingest(src, tmp_path / "crop", resize=True)
    np.testing.assert_array_equal(cropped.rgb([0])[0], big[8:72, 8:72])
    assert cropped.manifest["notes"][0] == "centre-cropped from 80x80 to 64x64"

    # area resampling conserves flux: 128 -> 64 sums 2x2 blocks
    fsrc = tmp_path / "fine"
    fsrc.mkdir()
    fine = make.flux(2, size=128)
    make.fits(fsrc / "fine.fits", fine, BAND1="g", BAND2="r", BAND3="i")
    area = ingest(fsrc, tmp_path / "area", resize="area")
    binned = fine.reshape(3, 64, 2, 64, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(area.flux([0])[0], binned, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(area.rgb([0])[0], SDSS.to_rgb(area.flux([0])[0]))


def test_parallel_decoding_gives_the_same_image_set(tmp_path, messy_folder):
    src = messy_folder
    one = ingest(src, tmp_path / "one")
    two = ingest(src, tmp_path / "two", workers=2)
    pd.testing.assert_frame_equal(one.manifest, two.manifest)
    np.testing.assert_array_equal(one.rgb(), two.rgb())
    pd.testing.assert_frame_equal(one.rejects(), two.rejects())


def test_imageset_reads_file_backed_store_backed_and_mixed_rows(tmp_path, make):
    stored = ingest_two(tmp_path, make)
    root = tmp_path / "set"
    (root / "loose.png").write_bytes(make.png(make.rgb(7)))
    make.fits(root / "loose.fits", make.flux(8), BAND1="g", BAND2="r", BAND3="i")
    manifest = pd.concat([stored.manifest, pd.DataFrame([
        {"image_id": "loose_png", "path": "loose.png", "index": -1},
        {"image_id": "loose_fits", "path": "loose.fits", "index": -1}])])
    manifest.to_csv(root / "manifest.csv", index=False)
    (root / "manifest.parquet").unlink()  # the CSV manifest is found instead

    imageset = ImageSet.open(root)
    assert imageset.manifest["image_id"].tolist() == ["a", "b", "loose_png",
                                                      "loose_fits"]
    rgb = imageset.rgb([3, 0, 2, 1])
    expected = [make.rgb(8), make.flux(0), make.rgb(7), make.flux(1)]
    expected[1] = SDSS.to_rgb(expected[1])
    expected[3] = SDSS.to_rgb(expected[3])
    np.testing.assert_array_equal(rgb, np.stack(expected))
    np.testing.assert_array_equal(imageset.flux([1, 3]),
                                  np.stack([make.flux(1), make.flux(8)]))
    with pytest.raises(ImageSetError, match=r"loose\.png: a \.png picture has no flux"):
        imageset.flux([2])
    batches = list(imageset.iter_batches(3))
    assert [len(b[1]) for b in batches] == [3, 1]
    imageset.close()


def ingest_two(tmp_path, make):
    src = tmp_path / "two"
    src.mkdir()
    for k, name in enumerate("ab"):
        make.fits(src / f"{name}.fits", make.flux(k), BAND1="g", BAND2="r", BAND3="i")
    return ingest(src, tmp_path / "set")


def test_folder_with_two_files_for_one_id_is_an_error(tmp_path, make):
    (tmp_path / "x.png").write_bytes(make.png(make.rgb(0)))
    (tmp_path / "x.jpg").write_bytes(make.jpeg(make.rgb(0)))
    with pytest.raises(ImageSetError, match="several files give the same image id.*'x'"):
        ingest(tmp_path, tmp_path / "set")
