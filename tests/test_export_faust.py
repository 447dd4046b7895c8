"""FAUST export: the exported program, compiled by the FAUST compiler and a C++ compiler,
computes what flamo.render computes (1e-9 of the peak in double, 1e-5 in float32).

Skips (with the reason) where ``faust`` or a C++ compiler is missing; CI installs both and
sets ``FLAMO_REQUIRE_FAUST_TEST=1``, which turns the skip into a failure.
"""

import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

import flamo
import flamo.export
from flamo.reverb import build_fdn

FS = 48000
F64 = torch.float64
FAUST = shutil.which("faust")
CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")

# An architecture file: the FAUST compiler puts the generated class at <<includeclass>>.
# stdin: T then T rows of input samples; stdout: T rows of output samples.
DRIVER = r"""
#include <cstdio>
#include <vector>
#include <faust/gui/meta.h>
#include <faust/gui/UI.h>
#include <faust/dsp/dsp.h>
<<includeIntrinsic>>
<<includeclass>>
int main() {
    long T;
    if (scanf("%ld", &T) != 1) return 2;
    mydsp d;
    d.init(48000);
    int ni = d.getNumInputs(), no = d.getNumOutputs();
    std::vector<std::vector<FAUSTFLOAT>> in(ni, std::vector<FAUSTFLOAT>(T)),
        out(no, std::vector<FAUSTFLOAT>(T));
    for (long t = 0; t < T; t++)
        for (int c = 0; c < ni; c++) {
            double v;
            if (scanf("%lf", &v) != 1) return 3;
            in[c][t] = v;
        }
    std::vector<FAUSTFLOAT*> ip(ni), op(no);
    for (int c = 0; c < ni; c++) ip[c] = in[c].data();
    for (int c = 0; c < no; c++) op[c] = out[c].data();
    d.compute(T, ip.data(), op.data());
    for (long t = 0; t < T; t++) {
        for (int c = 0; c < no; c++) printf("%.17g ", (double)out[c][t]);
        printf("\n");
    }
    return 0;
}
"""

MISSING = (None if FAUST and CXX else
           f"needs the FAUST compiler and a C++ compiler (faust: {FAUST}, c++: {CXX}); "
           f"apt-get install faust g++")


@pytest.fixture
def compilers():
    if MISSING:
        if os.environ.get("FLAMO_REQUIRE_FAUST_TEST"):
            pytest.fail(f"FLAMO_REQUIRE_FAUST_TEST is set but the test {MISSING}")
        pytest.skip(MISSING)


def run_faust(tmp_path, system, x, double):
    """Export, compile, run on x (T, in); the program's output (T, out)."""
    dsp = tmp_path / "system.dsp"
    flamo.export.to_faust(system, fs=FS, path=dsp)
    (tmp_path / "driver.cpp").write_text(DRIVER)
    cpp, exe = tmp_path / "system.cpp", tmp_path / "system"
    subprocess.run([FAUST, *(["-double"] if double else []), "-a", str(tmp_path / "driver.cpp"),
                    str(dsp), "-o", str(cpp)], check=True, capture_output=True)
    subprocess.run([CXX, "-O0", *(["-DFAUSTFLOAT=double"] if double else []), str(cpp), "-o",
                    str(exe)], check=True, capture_output=True)
    text = f"{x.shape[0]}\n" + "\n".join(" ".join(repr(v) for v in row) for row in x.tolist())
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout
    return np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()])


def fdn_with_geq():
    return build_fdn(delays=[31, 43, 59, 71], input_gains=1.0, output_gains=0.5, seed=1,
                     attenuation=lambda cfg: flamo.GEQAttenuation(cfg.delays, t60=np.linspace(0.3, 0.1, 10)),
                     dtype=F64)


def biquad_cascade():
    return flamo.Series(flamo.Biquad("lowpass", [3000.0], q=[0.8]),
                        flamo.Biquad("peak", [800.0], q=[1.2], gain_db=[6.0]),
                        flamo.Biquad("highshelf", [6000.0], q=[0.7], gain_db=[-4.0]))


def nested():
    inner = flamo.Recursion(flamo.Delay([3.0, 2.0]), flamo.Gain([-0.3, 0.4]))
    return flamo.Series(
        flamo.Parallel(flamo.Biquad("peak", [500.0, 2000.0], q=[0.7, 1.0], gain_db=[3.0, -4.0]),
                       flamo.Delay([5.0, 7.0])),
        # the loop's delay is in its forward path, around a nested loop
        flamo.Recursion(flamo.Series(flamo.Delay([4.0, 6.0]), inner),
                        flamo.Matrix(2, kind="orthogonal", seed=1)),
        # and in the feedback path of the next one
        flamo.Recursion(flamo.FIR([[0.5, 0.2], [0.3, -0.1]]),
                        flamo.Series(flamo.Matrix(2, kind="householder", seed=2),
                                     flamo.Delay([3.0, 5.0]), flamo.Gain([0.5, 0.6]))),
        flamo.Gain([[0.5, 0.2], [0.1, 0.9]]))


@pytest.mark.parametrize("make", [fdn_with_geq, biquad_cascade, nested])
@pytest.mark.parametrize("double", [True, False], ids=["double", "float32"])
def test_compiled_program_matches_render(compilers, tmp_path, make, double):
    system = make()
    n_in = system.shape[1]
    x = torch.zeros(600, n_in, dtype=F64)
    x[0] = 1.0  # an impulse on every input
    with torch.no_grad():
        truth = flamo.render(system, x, fs=FS).numpy()
        own32 = np.abs(flamo.render(system, x.float(), fs=FS).double().numpy() - truth).max()
    y = run_faust(tmp_path, system, x, double)
    assert y.shape == truth.shape
    peak = np.abs(truth).max()
    error = np.abs(y - truth).max() / peak
    if double:
        assert error < 1e-9, error
    else:
        # 1e-5 of the peak, unless float32 itself cannot: a GEQ band at 31 Hz (poles within
        # 0.004 of z = 1 at 48 kHz) rounds render's own float32 output by 1e-4 of the peak.
        # FAUST's float32 program rounds in another order, so its error is noise of the same
        # order, not the same noise: 1.3x and 2.3x render's for two GEQ designs measured
        # (exactness is the double case's 1e-9)
        assert error < max(1e-5, 4 * own32 / peak), (error, own32 / peak)


def test_program_text():
    echo = flamo.Recursion(flamo.Delay([3.0]), flamo.Gain([[0.5]]))
    text = flamo.export.to_faust(echo)
    # the delay of FAUST's ~ is taken out of the forward delay and put back after the loop
    assert "n1 = @(2);" in text and "n0 = (((+ : n1) ~ n2) : @(1));" in text
    assert text.rstrip().endswith("process = n0;")


def test_errors():
    with pytest.raises(ValueError, match="name must be an identifier"):
        flamo.export.to_faust(flamo.Gain([1.0]), name="two words")
    with pytest.raises(ValueError, match="needs a sample rate"):
        flamo.export.to_faust(biquad_cascade())
    with pytest.raises(ValueError, match="finite"):
        flamo.export.to_faust(flamo.Gain([float("nan")]))
