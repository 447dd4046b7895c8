"""Build an FDN from the public contract and compare its IR with and without anti-aliasing.

Run: python examples/fdn_impulse_response.py [--out fdn_ir.png]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import flamo  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="fdn_ir.png", help="PNG file to write")
args = parser.parse_args()

# --- the README example -------------------------------------------------------------------
delays = torch.tensor([887.0, 911, 941, 1699, 1951, 2053])  # samples (DAFx 2023, N = 6)
t60, fs = 9.0, 48000
fdn = flamo.Series(
    flamo.Gain(torch.ones(6, 1)),                                    # input gains b
    flamo.Recursion(flamo.Series(flamo.Delay(delays),                # loop: z^-m ...
                                 flamo.Gain(10 ** (-3 * delays / (fs * t60)))),  # ... and decay
                    flamo.Matrix(6, kind="orthogonal", seed=0)),     # feedback matrix A
    flamo.Gain(torch.ones(1, 6) / 6),                                # output gains c
)
for db in (0.0, 60.0):
    grid = flamo.Grid(nfft=2**15, fs=fs, alias_decay_db=db)
    ir = fdn.impulse_response(grid)[:, 0, 0].detach()
    plt.plot(torch.arange(grid.nfft) / fs, 20 * torch.log10(ir.abs() + 1e-12), lw=0.5,
             label=f"alias_decay_db = {db:g}")
# ------------------------------------------------------------------------------------------
plt.xlabel("time (s)")
plt.ylabel("|h[n]| (dB)")
plt.ylim(-120, 0)
plt.legend()
plt.title("FDN, T60 = 9 s, nfft = 2^15")
plt.savefig(args.out, dpi=120)
print(f"wrote {args.out}")
