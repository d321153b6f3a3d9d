"""The GANomaly training module (Lightning) and the collapse monitor.

Losses (Akcay et al. 2018, Eqs. 1-4), with ``x`` a batch and ``G(x) =
(latent_i, x_hat, latent_o)``:

* adversarial ``L_adv = || f(x) - f(x_hat) ||_2^2`` (mean), ``f`` the
  discriminator's penultimate features (feature matching, not the output
  probabilities);
* contextual ``L_con = || x - x_hat ||_1`` (mean);
* encoder ``L_enc = || latent_i - latent_o ||_2^2`` (mean);
* generator ``L_G = w_adv L_adv + w_con L_con + w_enc L_enc``;
* discriminator ``L_D = (BCE(D(x), 1) + BCE(D(x_hat), 0)) / 2``.

The validation criterion ``val_loss = w_con L_con + w_enc L_enc`` on held-out
observed images uses no anomalies and no discriminator (whose scale drifts as
the two networks compete); the epoch with the lowest value is kept.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
import torch.nn.functional as F

from .networks import Discriminator, Generator, init_weights

log = logging.getLogger(__name__)

__all__ = ["CollapseMonitor", "GanomalyModule"]


class CollapseMonitor:
    """Detect a collapsed discriminator: loss below ``threshold`` for
    ``patience`` consecutive steps.

    :meth:`update` returns True when a collapse is declared; the run of low
    losses then starts again from zero. ``events`` counts declarations.
    """

    def __init__(self, threshold: float = 1e-5, patience: int = 1):
        if threshold <= 0 or patience < 1:
            raise ValueError(f"collapse threshold must be > 0 and patience >= 1; got "
                             f"{threshold}, {patience}")
        self.threshold, self.patience = threshold, patience
        self.run = 0
        self.events = 0

    def update(self, loss_d: float) -> bool:
        self.run = self.run + 1 if loss_d < self.threshold else 0
        if self.run >= self.patience:
            self.run = 0
            self.events += 1
            return True
        return False

    def state_dict(self) -> dict:
        return {"run": self.run, "events": self.events}

    def load_state_dict(self, state: dict) -> None:
        self.run, self.events = int(state["run"]), int(state["events"])


class GanomalyModule(L.LightningModule):
    """Generator and discriminator trained with two Adam optimisers.

    Parameters
    ----------
    architecture : dict
        ``image_size``, ``channels``, ``nz``, ``ngf``, ``ndf``.
    hparams : dict
        ``lr``, ``beta1``, ``beta2``, ``w_adv``, ``w_con``, ``w_enc``, ``seed``,
        ``collapse_threshold``, ``collapse_patience``, ``channels_last``,
        ``compile``.
    """

    def __init__(self, architecture: dict, hparams: dict):
        super().__init__()
        self.save_hyperparameters({"architecture": architecture, "train": hparams})
        a, self.h = architecture, hparams
        self.automatic_optimization = False
        self.generator = Generator(a["image_size"], a["channels"], a["nz"], a["ngf"])
        self.discriminator = Discriminator(a["image_size"], a["channels"], a["ndf"])
        rng = torch.Generator().manual_seed(int(hparams["seed"]))
        init_weights(self.generator, rng)
        init_weights(self.discriminator, rng)
        self.monitor = CollapseMonitor(hparams["collapse_threshold"],
                                       hparams["collapse_patience"])
        self.train_sampler = None
        self._compiled: dict = {}
        if hparams.get("channels_last"):
            self.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------
    def _nets(self):
        if self.h.get("compile"):
            if not self._compiled:
                self._compiled = {"g": torch.compile(self.generator),
                                  "d": torch.compile(self.discriminator)}
            return self._compiled["g"], self._compiled["d"]
        return self.generator, self.discriminator

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.h.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def configure_optimizers(self):
        betas = (self.h["beta1"], self.h["beta2"])
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.h["lr"], betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.h["lr"],
                                 betas=betas)
        return [opt_g, opt_d]

    def generator_losses(self, x: torch.Tensor, netg, netd):
        """``(L_adv, L_con, L_enc, x_hat)`` for a batch ``x`` (N, C, H, W)."""
        latent_i, x_hat, latent_o = netg(x)
        _, feat_real = netd(x)
        _, feat_fake = netd(x_hat)
        adv = F.mse_loss(feat_fake.float(), feat_real.detach().float())
        con = F.l1_loss(x_hat.float(), x.float())
        enc = F.mse_loss(latent_o.float(), latent_i.float())
        return adv, con, enc, x_hat

    def training_step(self, batch, batch_idx):
        x = self._prepare(batch["x"])
        netg, netd = self._nets()
        opt_g, opt_d = self.optimizers()
        n = x.shape[0]

        adv, con, enc, x_hat = self.generator_losses(x, netg, netd)
        loss_g = self.h["w_adv"] * adv + self.h["w_con"] * con + self.h["w_enc"] * enc
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()

        logit_real, _ = netd(x)
        logit_fake, _ = netd(x_hat.detach())
        loss_d = 0.5 * (
            F.binary_cross_entropy_with_logits(logit_real.float(),
                                               torch.ones_like(logit_real.float()))
            + F.binary_cross_entropy_with_logits(logit_fake.float(),
                                                 torch.zeros_like(logit_fake.float())))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        loss_d_all = loss_d.detach()
        if self.trainer.world_size > 1:
            loss_d_all = self.trainer.strategy.reduce(loss_d_all, reduce_op="mean")
        if self.monitor.update(float(loss_d_all)):
            self._reinitialise_discriminator(opt_d)
        if self.train_sampler is not None:
            self.train_sampler.consumed = int(batch["local"]) + 1

        logs = {"loss_g": loss_g, "loss_adv": adv, "loss_con": con, "loss_enc": enc,
                "loss_d": loss_d}
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()},
                      on_step=True, on_epoch=True, batch_size=n, sync_dist=True)
        self.log("collapse_events", float(self.monitor.events), on_step=True,
                 on_epoch=False, batch_size=n)
        self.log("g", loss_g.detach(), prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=n, logger=False)
        self.log("d", loss_d.detach(), prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=n, logger=False)

    def _reinitialise_discriminator(self, opt_d) -> None:
        """Fresh DCGAN weights for D and fresh Adam moments (seeded by step)."""
        step = int(self.global_step)
        rng = torch.Generator().manual_seed(int(self.h["seed"]) * 1_000_003 + step)
        init_weights(self.discriminator, rng)
        optimizer = getattr(opt_d, "optimizer", opt_d)
        optimizer.state.clear()
        log.warning("discriminator collapsed (loss < %g for %d step(s)) at step %d; "
                    "weights re-initialised (event %d)", self.monitor.threshold,
                    self.monitor.patience, step, self.monitor.events)

    def validation_step(self, batch, batch_idx):
        x = self._prepare(batch["x"])
        netg, netd = self._nets()
        adv, con, enc, _ = self.generator_losses(x, netg, netd)
        val = self.h["w_con"] * con + self.h["w_enc"] * enc
        n = x.shape[0]
        self.log_dict({"val_loss": val, "val/loss_con": con, "val/loss_enc": enc,
                       "val/loss_adv": adv}, on_step=False, on_epoch=True,
                      batch_size=n, sync_dist=True, prog_bar=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["collapse_monitor"] = self.monitor.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "collapse_monitor" in checkpoint:
            self.monitor.load_state_dict(checkpoint["collapse_monitor"])
