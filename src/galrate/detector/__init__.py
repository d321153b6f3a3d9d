"""The anomaly detector: GANomaly networks, training, the model file and scoring.

See :func:`train`, :func:`load_model`, :func:`score` and :func:`reconstruct`;
the science follows Akcay et al. 2018 (arXiv:1805.06725) and Jin et al. 2024
(MNRAS 529, 3536).
"""

from .contract import check_contract, contract_from_imageset
from .modelfile import SCORE_NAMES, Detector, load_model, save_model
from .scoring import percentile, reconstruct, score
from .training import TrainConfig, train

__all__ = ["TrainConfig", "train", "Detector", "load_model", "save_model", "score",
           "reconstruct", "percentile", "SCORE_NAMES", "check_contract",
           "contract_from_imageset"]
