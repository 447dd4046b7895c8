"""One optimization step of the colorless FDN (Dal Santo et al., DAFx 2023) through
flamo.optim.Trainer: N = 6, delays 887..2053, spectral + sparsity criteria, Adam."""

import torch

from .workloads import DEVICES, prepare


class ColorlessTrainerStep:
    params = (DEVICES, [2 ** 15])
    param_names = ["device", "nfft"]
    timeout = 600

    def setup(self, device, nfft):
        import flamo
        from flamo.optim import Trainer
        from flamo.reverb import COLORLESS_FDN_DELAYS, colorless_criteria, colorless_fdn, line_outputs

        self.device = prepare(device)
        system = colorless_fdn(COLORLESS_FDN_DELAYS["N6"], seed=0).to(self.device)
        grid = flamo.Grid(nfft, device=self.device)
        self.trainer = Trainer(system, colorless_criteria(system), data=(torch.zeros(()), torch.zeros(())),
                               forward=lambda model, _: line_outputs(model, grid), lr=1e-3,
                               steps_per_epoch=10**6, progress=False, device=self.device)
        self.trainer.fit(max_steps=1)  # warm-up

    def time_step(self, device, nfft):
        self.trainer.fit(max_steps=self.trainer.step + 1)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
