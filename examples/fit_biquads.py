"""Fit a cascade of 4 biquads (flamo.SOS) to a target magnitude response with the Trainer."""
import numpy as np, scipy.signal, torch
import flamo
from flamo.optim import MagnitudeMSE, Trainer

torch.manual_seed(0)
grid = flamo.Grid(nfft=2**11, fs=48000)
target_sos = scipy.signal.butter(8, 2000, fs=48000, output="sos")      # target: 8th-order lowpass
_, h = scipy.signal.sosfreqz(target_sos, worN=grid.omega.double().numpy())
target = torch.tensor(np.abs(h), dtype=torch.float32)                   # (M,) magnitude
init = np.tile([1.0, 0, 0, 1, 0, 0], (4, 1)) + 0.1 * np.random.default_rng(0).normal(size=(4, 6))
init[:, 3] = 1
model = flamo.SOS(init)                                                  # 4 learnable biquads
loss = MagnitudeMSE(db=True)
forward = lambda m, _: m.response(grid)[:, 0, 0]                        # (M,) complex response
before = loss(forward(model, None), target).item()
Trainer(model, {"mag_db": (loss, 1.0)}, data=(None, target), forward=forward, lr=1e-2,
        steps_per_epoch=500, progress=False).fit(epochs=3)
print(f"loss before {before:.2f} dB^2, after {loss(forward(model, None), target).item():.2f} dB^2")
