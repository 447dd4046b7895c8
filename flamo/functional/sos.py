"""Second-order-section cascades sampled at the evaluation points.

Each quadratic p(z^-1) = c0 + c1 z^-1 + c2 z^-2 is evaluated in a shifted basis, around the
point of the unit circle (z = 1 or z = -1) where it is smaller: with u = 1 - z^-1,

    p = p(1) - (c1 + 2 c2) u + c2 u^2,

and with v = 1 + z^-1, p = p(-1) + (c1 - 2 c2) v + c2 v^2. The shifted coefficients are
formed in float64 from the given ones, and u, v are computed in float64 before the cast to
the evaluation's dtype, so no large terms cancel: in the direct form a low-frequency section's
1 - 2 cos(w0) z^-1 + z^-2 cancels to ~w^2 near DC, which complex64 resolves to ~1e-3 relative;
in the shifted form complex64 keeps ~1e-6 (the "delta operator" idea of Middleton & Goodwin,
"Improved finite word length characteristics in digital control using delta operators",
IEEE Trans. Automatic Control, 1986). So float32 evaluations need no float64 arithmetic.
"""

from __future__ import annotations

import torch

from ..grid import as_points

__all__ = ["sos_response", "sos_poles", "reflection_to_sections", "sections_to_reflection"]


def shifted_coefficients(poly: torch.Tensor) -> torch.Tensor:
    """(..., 3) real [c0, c1, c2] -> (..., 5) float64 coefficients of [1, u, u^2, v, v^2]."""
    c0, c1, c2 = poly.to(torch.float64).unbind(-1)
    at_dc, at_nyquist = c0 + c1 + c2, c0 - c1 + c2
    zero = torch.zeros_like(c0)
    u_form = torch.stack([at_dc, -(c1 + 2 * c2), c2, zero, zero], dim=-1)
    v_form = torch.stack([at_nyquist, zero, zero, c1 - 2 * c2, c2], dim=-1)
    use_u = (at_dc.abs() <= at_nyquist.abs()).unsqueeze(-1)
    return torch.where(use_u, u_form, v_form)


#: Complex values per (..., 2K, block) intermediate on a CPU. Working through the
#: frequencies in blocks keeps the section polynomials in cache: an FDN with a 10-band GEQ in
#: each of 16 lines at nfft = 2^17 has (16, 20, 65537) of them, and whole-array passes there
#: cost more in memory traffic and page faults than in arithmetic (the asv benchmark
#: FDNAttenuationOverPlain measures it). On a GPU one block: there kernel launches, not
#: memory, are the cost.
BLOCK_ELEMENTS = 2 ** 18


def _blocks(rows: int, m: int, device: torch.device):
    size = max(64, BLOCK_ELEMENTS // max(rows, 1)) if device.type == "cpu" else m
    return [slice(start, min(start + size, m)) for start in range(0, m, size)]


class _CascadeResponse(torch.autograd.Function):
    """h = prod_k N_k / prod_k D_k, with the 2K section polynomials [N_1..N_K, D_1..D_K] =
    coefficients @ basis evaluated in frequency blocks.

    The backward uses dh/dN_k = h / N_k and dh/dD_k = -h / D_k with the polynomials
    recomputed block by block (never kept): PyTorch's convention for a real input c is
    grad_c = Re sum_m grad_h conj(dh/dc), and with dh/dc_kj = (dh/dP_k) B_j that is
    +-Re[(grad_h conj(h) / conj(P_k)) @ conj(B)^T]. 1 / conj(P_k) = P_k / |P_k|^2 is formed on
    real planes: complex division was the largest cost of the generic autograd version.
    """

    @staticmethod
    def forward(ctx, coef, basis):
        k = coef.shape[-2] // 2
        h = basis.new_empty(coef.shape[:-2] + basis.shape[-1:])
        for block in _blocks(coef[..., 0].numel(), basis.shape[-1], basis.device):
            # Real products with interleaved (Re, Im) columns are complex numbers without a copy.
            pairs = torch.view_as_real(basis[:, block]).flatten(-2)  # (5, 2c)
            poly = _as_complex(coef @ pairs)  # (..., 2K, c)
            num, den = poly[..., :k, :], poly[..., k:, :]
            h[..., block] = torch.prod(num, dim=-2) / torch.prod(den, dim=-2)
        ctx.save_for_backward(coef, basis, h)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        coef, basis, h = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a formula autograd can differentiate
            return _direct_grad(grad_h, coef, basis), None
        k = coef.shape[-2] // 2
        weight = grad_h * h.conj()
        grad = torch.zeros_like(coef)
        fold_into_basis = fold_weight_into_basis(basis.device)
        for block in _blocks(coef[..., 0].numel(), basis.shape[-1], basis.device):
            part = basis[:, block]
            planes = _planes(part)  # (5, 2c)
            x = _reciprocal_conj_(coef @ planes)  # (..., 2K, 2c): X = 1 / conj(P) = a + ib
            if fold_into_basis:  # Re(X V) with V = weight conj(B) is a Re V - b Im V
                v = weight[..., None, block] * part.conj()  # (..., 5, c)
                g = x @ _planes(v, sign=-1.0).transpose(-1, -2)  # (..., 2K, 5)
            else:  # Re(Y conj(B)) with Y = X weight is Re Y Re B + Im Y Im B
                g = _times_(x, weight[..., None, block]) @ planes.transpose(0, 1)
            if not torch.isfinite(g).all():
                # A numerator vanishes exactly at a point (e.g. a lowpass at Nyquist, gamma = 1).
                g = _direct_grad(grad_h[..., block], coef, part)
            else:
                g[..., k:, :].neg_()  # dh/dD_k = -h / D_k
            grad += g
        return grad, None


def fold_weight_into_basis(device: torch.device) -> bool:
    """Where the backward multiplies by grad_h conj(h): into the (..., 5, c) basis on a CPU,
    so that the reduction over frequency is a batch of small products that stay in cache;
    into X on a GPU, so that the reduction is one product shared by all rows (a batched
    product with a long inner dimension is slow there). Both orders give the same gradient
    (tests/test_sos_response.py); their speeds are measured by the asv suite."""
    return device.type == "cpu"


def _times_(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Planes [Re X | Im X] -> planes of X w (w complex, broadcast over X's rows), in place."""
    c = x.shape[-1] // 2
    re, im = x[..., :c], x[..., c:]
    re_times_w_im = re * w.imag
    re.mul_(w.real).addcmul_(im, w.imag, value=-1.0)
    im.mul_(w.real).add_(re_times_w_im)
    return x


def _planes(x: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """(..., c) complex -> (..., 2c) real [Re x | sign Im x]."""
    return torch.cat([x.real, sign * x.imag], dim=-1)


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    """(..., 2c) real with interleaved (Re, Im) pairs -> (..., c) complex view."""
    return torch.view_as_complex(x.unflatten(-1, (-1, 2)))


def _reciprocal_conj_(x: torch.Tensor) -> torch.Tensor:
    """Planes [Re P | Im P] -> planes of 1 / conj(P) = P / |P|^2, in place (inf where P = 0)."""
    c = x.shape[-1] // 2
    re, im = x[..., :c], x[..., c:]
    power = re * re
    power.addcmul_(im, im)
    x.view(x.shape[:-1] + (2, c)).mul_(power.reciprocal_().unsqueeze(-2))
    return x


def _direct_grad(grad_h, coef, basis):
    """The gradient from dh/dN_k = prod_{i != k} N_i / prod D and dh/dD_k = -h / D_k.

    Zero-safe and built from differentiable operations (second derivatives), but it keeps
    (..., 2K, M) tensors: used for create_graph=True and for blocks where a numerator vanishes.
    """
    k = coef.shape[-2] // 2
    poly = coef.to(basis.dtype) @ basis
    num, den = poly[..., :k, :], poly[..., k:, :]
    den_prod = torch.prod(den, dim=-2, keepdim=True)
    d_num = _product_of_others(num) / den_prod
    d_den = -torch.prod(num, dim=-2, keepdim=True) / (den_prod * den)
    d_poly = torch.cat([d_num, d_den], dim=-2)
    return ((grad_h.unsqueeze(-2) * d_poly.conj()) @ basis.conj().transpose(0, 1)).real


def _product_of_others(poly: torch.Tensor) -> torch.Tensor:
    """(..., K, M) -> prod_{i != k} poly_i for every k, without division (zero-safe)."""
    ones = torch.ones_like(poly[..., :1, :])
    before = torch.cumprod(torch.cat([ones, poly[..., :-1, :]], dim=-2), dim=-2)
    after = torch.cumprod(torch.cat([ones, poly.flip(-2)[..., :-1, :]], dim=-2), dim=-2)
    return before * after.flip(-2)


def sos_response(sos: torch.Tensor, points) -> torch.Tensor:
    """Sample a cascade of biquads at the evaluation points.

    H(z) = prod_k (b0 + b1 z^-1 + b2 z^-2) / (a0 + a1 z^-1 + a2 z^-2), the convention of
    scipy.signal.sosfreqz, evaluated in the well-conditioned shifted basis described in the
    module docstring. In complex64 every section's polynomial carries float32 rounding, so
    the relative error of a K-section cascade is a few sqrt(2K) eps for well-damped sections
    at any frequency (the 10-band GEQAttenuation: 2e-7 rms, 1e-6 max; an evaluation in
    float64 followed by one cast would give eps = 6e-8), and it grows like eps / (1 - r)
    near a pole of radius r (8 random sections, nfft = 2^16: 6e-6, 2e-5, 1.5e-4, 1.2e-3 at
    r = 0.9, 0.99, 0.999, 0.9999). Use float64 points for reference work.

    Parameters
    ----------
    sos : torch.Tensor
        (..., N, K, 6) real sections in scipy's layout [b0, b1, b2, a0, a1, a2]: N
        cascades of K sections (leading dims are batch dims), or (K, 6) for one cascade. Any
        real dtype (the shifted coefficients are formed in float64, then cast to the
        evaluation's dtype).
    points : flamo.Grid, flamo.Points or torch.Tensor
        Where to evaluate: a grid, a point set, or a 1-D tensor of points z.

    Returns
    -------
    torch.Tensor
        (..., M, N) complex tensor in the points' complex dtype, (M,) for a (K, 6) cascade:
        the frequency axis is second to last, before the channel axis (see
        :mod:`flamo.functional`).

    Examples
    --------
    At scipy's frequencies, as explicit points z = exp(j omega) in float64:

    >>> import numpy as np, scipy.signal, torch
    >>> from flamo.functional import sos_response
    >>> sos = scipy.signal.butter(4, 0.2, output="sos")
    >>> omega, expected = scipy.signal.sosfreqz(sos, worN=16)
    >>> h = sos_response(torch.tensor(sos), torch.exp(1j * torch.tensor(omega)))
    >>> h.shape, bool(np.allclose(h.numpy(), expected, rtol=1e-12, atol=1e-14))
    (torch.Size([16]), True)
    """
    points = as_points(points)
    basis = points.cached(_shifted_basis, sos.device)  # (5, M)
    # numerators then denominators, (..., 2K, 5): one product with the basis serves both
    coef = shifted_coefficients(torch.cat([sos[..., 0:3], sos[..., 3:6]], dim=-2))
    h = _CascadeResponse.apply(coef.to(points.dtype), basis)  # (..., [N,] M)
    return h if sos.ndim == 2 else h.transpose(-1, -2)


def _shifted_basis(points) -> torch.Tensor:
    """[1, u, u^2, v, v^2] with u = 1 - z^-1, v = 1 + z^-1, (5, M), from z^-1 in float64."""
    z_inv = points.inverse_powers(torch.ones(1, dtype=torch.float64))[..., 0]
    u, v = 1 - z_inv, 1 + z_inv
    return torch.stack([torch.ones_like(u), u, u * u, v, v * v]).to(points.complex_dtype)


def sos_poles(sos: torch.Tensor) -> torch.Tensor:
    """Poles of each section, (..., K, 2) complex, from a0 z^2 + a1 z + a2 = 0."""
    a0, a1, a2 = (sos[..., i].to(torch.complex128) for i in (3, 4, 5))
    root = torch.sqrt(a1 * a1 - 4 * a0 * a2)
    return torch.stack([(-a1 + root) / (2 * a0), (-a1 - root) / (2 * a0)], dim=-1)


def reflection_to_sections(raw: torch.Tensor, max_radius: float) -> torch.Tensor:
    """Sections whose poles lie strictly inside radius ``max_radius``, for any raw value.

    Parameters
    ----------
    raw : torch.Tensor
        (..., K, 5) [b0, b1, b2, rho1, rho2]: the numerator as it is and the denominator
        as two unconstrained values.
    max_radius : float
        Bound on the pole radii, in (0, 1].

    Returns
    -------
    torch.Tensor
        (..., K, 6) sections [b0 b1 b2 1 a1 a2] with a1 = r k1 (1 + k2), a2 = r^2 k2 and
        reflection coefficients k_i = tanh(rho_i) in (-1, 1), r = ``max_radius``.

    Notes
    -----
    1 + c1 z^-1 + c2 z^-2 has both roots inside the unit circle exactly when its reflection
    (Schur-Cohn, lattice) coefficients k2 = c2 and k1 = c1 / (1 + c2) lie in (-1, 1) (Markel
    & Gray, "Linear Prediction of Speech", 1976, ch. 5); scaling c1 by r and c2 by r^2 scales
    the roots by r. The map is a bijection from R^2 onto all denominators with poles of
    radius below r, smooth, with nonzero gradient everywhere. Where tanh rounds to +-1 (|rho|
    above ~9 in float32, ~19 in float64) a pole reaches radius r itself: hence r < 1 for
    strict stability.
    """
    k1, k2 = torch.tanh(raw[..., 3]), torch.tanh(raw[..., 4])
    r = float(max_radius)
    a1, a2 = r * k1 * (1 + k2), r * r * k2
    one = torch.ones_like(a1)
    return torch.stack([raw[..., 0], raw[..., 1], raw[..., 2], one, a1, a2], dim=-1)


def sections_to_reflection(sos: torch.Tensor, max_radius: float) -> torch.Tensor:
    """Inverse of :func:`reflection_to_sections`: (..., K, 6) sections (a0 != 0) -> (..., K, 5).

    Raises
    ------
    ValueError
        If a section has a pole beyond ``max_radius`` (up to rounding).
    """
    normalized = sos / sos[..., 3:4]
    r = float(max_radius)
    k2 = normalized[..., 5] / (r * r)
    k1 = normalized[..., 4] / (r * (1 + k2))
    eps = torch.finfo(normalized.dtype).eps
    if not ((k1.abs() <= 1 + 8 * eps) & (k2.abs() <= 1 + 8 * eps)).all():
        radius = sos_poles(sos).abs().max().item()
        raise ValueError(f"a section has a pole of radius {radius:.6g}, beyond max_pole_radius = {r:g}")
    # a pole at radius r itself (a saturated coefficient of a saved, trained module) is
    # stepped inside by rounding's margin, where atanh is finite
    k1, k2 = k1.clamp(-1 + eps, 1 - eps), k2.clamp(-1 + eps, 1 - eps)
    return torch.stack([normalized[..., 0], normalized[..., 1], normalized[..., 2],
                        torch.atanh(k1), torch.atanh(k2)], dim=-1)
