"""The preprocessing contract: how a stored image becomes a network input.

A contract is a JSON-ready dict saved in the model file::

    {"survey": "sdss", "size": 64, "kind": "rgb8" | "flux", "channels": 3,
     "bands": ["g", "r", "i"], "rgb_bands": ["i", "r", "g"],
     "colour": {...the survey's colour recipe...},
     "scaling": {...}, "value_range": [-1.0, 1.0]}

``kind="rgb8"``: the 8-bit colour cutouts ``(N, H, W, 3)`` are mapped
linearly to ``x = u / 127.5 - 1`` in [-1, 1].

``kind="flux"``: calibrated band images ``(N, B, H, W)`` in nanomaggies per
pixel are scaled band by band with ``x_k = asinh(f_k / b_k) / asinh(r_k / b_k)``
and clipped to [-1, 1]. The softening ``b_k`` is the blank-sky noise of band
k (nanomaggies; :meth:`galrate.survey.Survey.noise_sigma`) and ``r_k`` the
99.5th percentile of the training flux in band k; both are recorded per band
(``softening_nmgy``, ``reference_nmgy``). A single map is the case B = 1.

An image set is compatible with a contract when its ``imageset.json`` names
the same survey, cutout size, band order and, for colour cutouts, the same
colour recipe (``rgb_bands``, scales, Q, stretch, JPEG quality), and, for
flux, stores flux.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

__all__ = ["KINDS", "contract_from_imageset", "check_contract", "to_input",
           "from_input", "fit_flux_scaling"]

KINDS = ("rgb8", "flux")
FLUX_PERCENTILE = 99.5


def _survey_dict(metadata: Mapping, where: str) -> dict:
    survey = metadata.get("survey")
    if isinstance(survey, str):
        from ..survey import load_survey

        survey = load_survey(survey).to_dict()
    if not isinstance(survey, Mapping):
        raise ValueError(f"{where}: imageset.json has no 'survey' description; it is "
                         f"needed to check the preprocessing contract")
    return dict(survey)


def _imageset_facts(metadata: Mapping, where: str) -> dict:
    """The recipe an image set was made with, read from its metadata."""
    survey = _survey_dict(metadata, where)
    colour = dict(survey.get("colour") or {})
    bands = metadata.get("bands") or [b["name"] for b in survey.get("bands", [])]
    size = metadata.get("size") or survey.get("cutout_size")
    return {"survey": survey.get("name"), "size": None if size is None else int(size),
            "bands": list(bands),
            "rgb_bands": list(metadata.get("rgb_bands") or colour.get("rgb_bands") or []),
            "colour": _jsonable(colour),
            "has_flux": bool(metadata.get("has_flux", False)),
            "kind": metadata.get("kind", "rgb8")}


def _jsonable(d):
    if isinstance(d, Mapping):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    return d


def contract_from_imageset(metadata: Mapping, kind: str = "rgb8",
                           where: str = "image set") -> dict:
    """The contract of a model trained on an image set with this metadata.

    Parameters
    ----------
    metadata : mapping
        The image set's ``imageset.json``.
    kind : {"rgb8", "flux"}
        Train on the 8-bit colour cutouts or on the calibrated flux.

    Returns
    -------
    dict
        The contract, without the flux scaling (see :func:`fit_flux_scaling`).
    """
    if kind not in KINDS:
        raise ValueError(f"input kind must be one of {KINDS}; got {kind!r}")
    facts = _imageset_facts(metadata, where)
    if facts["size"] is None:
        raise ValueError(f"{where}: imageset.json gives no image 'size'")
    if kind == "flux" and not facts["has_flux"]:
        raise ValueError(f"{where}: kind 'flux' needs stored flux but imageset.json "
                         f"says has_flux is false")
    channels = 3 if kind == "rgb8" else len(facts["bands"])
    scaling = ({"type": "linear_uint8", "offset": 127.5, "divisor": 127.5}
               if kind == "rgb8" else {"type": "asinh"})
    return {"survey": facts["survey"], "size": facts["size"], "kind": kind,
            "channels": channels, "bands": facts["bands"],
            "rgb_bands": facts["rgb_bands"], "colour": facts["colour"],
            "scaling": scaling, "value_range": [-1.0, 1.0]}


def check_contract(contract: Mapping, metadata: Mapping, where: str = "image set") -> None:
    """Refuse an image set made with another recipe than the contract's.

    Raises
    ------
    ValueError
        Naming the first mismatch (survey, size, kind, bands, colour recipe,
        channel count) with both values.
    """
    facts = _imageset_facts(metadata, where)

    def mismatch(what, model, data):
        raise ValueError(f"{where} does not match the model's preprocessing contract: "
                         f"{what} is {data!r} in the image set but {model!r} in the "
                         f"model; score only image sets made with the model's recipe")

    if facts["survey"] != contract["survey"]:
        mismatch("survey", contract["survey"], facts["survey"])
    if facts["size"] != contract["size"]:
        mismatch("image size (pixels)", contract["size"], facts["size"])
    if facts["kind"] != "rgb8":
        mismatch("image-set kind", "rgb8", facts["kind"])
    if contract["kind"] == "flux":
        if not facts["has_flux"]:
            mismatch("kind (stored flux)", "flux", "rgb8 only")
        if facts["bands"] != list(contract["bands"]):
            mismatch("band order", list(contract["bands"]), facts["bands"])
        if len(facts["bands"]) != contract["channels"]:
            mismatch("channel count", contract["channels"], len(facts["bands"]))
    else:
        if facts["rgb_bands"] != list(contract["rgb_bands"]):
            mismatch("colour recipe rgb_bands", list(contract["rgb_bands"]),
                     facts["rgb_bands"])
        for key in sorted(set(contract["colour"]) | set(facts["colour"])):
            a, b = contract["colour"].get(key), facts["colour"].get(key)
            if a != b:
                mismatch(f"colour recipe {key!r}", a, b)
        if contract["channels"] != 3:
            mismatch("channel count", contract["channels"], 3)


def fit_flux_scaling(contract: dict, flux: np.ndarray, softening_nmgy) -> dict:
    """Record the per-band asinh scaling of a flux contract.

    Parameters
    ----------
    flux : ndarray, shape (N, B, H, W)
        A sample of training flux, nanomaggies per pixel.
    softening_nmgy : sequence of float
        Softening b_k per band (nanomaggies), normally the sky noise.
    """
    soft = np.asarray(softening_nmgy, dtype=np.float64)
    if soft.shape != (flux.shape[1],) or not np.all(soft > 0):
        raise ValueError(f"softening_nmgy must be {flux.shape[1]} positive values; "
                         f"got {soft.tolist()}")
    ref = np.percentile(flux, FLUX_PERCENTILE, axis=(0, 2, 3))
    ref = np.maximum(ref, 3.0 * soft)
    out = dict(contract)
    out["scaling"] = {"type": "asinh", "softening_nmgy": soft.tolist(),
                      "reference_nmgy": ref.tolist(), "percentile": FLUX_PERCENTILE}
    return out


def to_input(contract: Mapping, pixels: np.ndarray) -> torch.Tensor:
    """Stored pixels -> network input ``(N, C, H, W)`` float32 in [-1, 1].

    Parameters
    ----------
    pixels : ndarray
        ``(N, H, W, 3)`` uint8 for ``kind="rgb8"``; ``(N, B, H, W)`` float
        nanomaggies for ``kind="flux"``.
    """
    if contract["kind"] == "rgb8":
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"rgb8 input must be uint8 (N, H, W, 3); got "
                             f"{pixels.dtype} {pixels.shape}")
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
        return x.float().div_(127.5).sub_(1.0).contiguous()
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 4 or pixels.shape[1] != contract["channels"]:
        raise ValueError(f"flux input must be (N, {contract['channels']}, H, W); got "
                         f"{pixels.shape}")
    sc = contract["scaling"]
    soft = torch.tensor(sc["softening_nmgy"], dtype=torch.float32)[None, :, None, None]
    ref = torch.tensor(sc["reference_nmgy"], dtype=torch.float32)[None, :, None, None]
    x = torch.asinh(torch.from_numpy(pixels) / soft) / torch.asinh(ref / soft)
    return x.clamp_(-1.0, 1.0)


def from_input(contract: Mapping, x: torch.Tensor) -> np.ndarray:
    """Network output ``(N, C, H, W)`` -> stored pixel convention (inverse of
    :func:`to_input`; uint8 ``(N, H, W, 3)`` or float32 nanomaggies)."""
    x = x.detach().float().cpu()
    if contract["kind"] == "rgb8":
        u = torch.round((x.clamp(-1, 1) + 1.0) * 127.5).to(torch.uint8)
        return u.permute(0, 2, 3, 1).contiguous().numpy()
    sc = contract["scaling"]
    soft = torch.tensor(sc["softening_nmgy"], dtype=torch.float32)[None, :, None, None]
    ref = torch.tensor(sc["reference_nmgy"], dtype=torch.float32)[None, :, None, None]
    return (torch.sinh(x * torch.asinh(ref / soft)) * soft).numpy()
