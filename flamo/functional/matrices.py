"""Feedback-matrix constructions and mappings onto matrix families."""

from __future__ import annotations

import math

import numpy as np
import torch

from .mappings import register_mapping

__all__ = ["skew_expm", "householder", "circulant", "Circulant", "block_rotation", "BlockRotation",
           "hadamard", "is_prime"]


@register_mapping
def skew_expm(w: torch.Tensor) -> torch.Tensor:
    """Orthogonal matrix expm(W - W^T) from an unconstrained square W, (..., n, n).

    The exponential of a skew-symmetric matrix is orthogonal with determinant +1, and every
    such matrix is reached, so gradient descent on W never leaves the orthogonal group
    (Dal Santo et al., DAFx 2023).
    """
    return torch.linalg.matrix_exp(w - w.transpose(-1, -2))


@register_mapping
def householder(u: torch.Tensor) -> torch.Tensor:
    """Householder reflection ``I - 2 u u^T / |u|^2`` from a vector u, (..., n) -> (..., n, n)."""
    n = u.shape[-1]
    eye = torch.eye(n, dtype=u.dtype, device=u.device)
    outer = u.unsqueeze(-1) * u.unsqueeze(-2)
    return eye - 2 * outer / (u * u).sum(-1)[..., None, None]


def circulant(phases: torch.Tensor, n: int) -> torch.Tensor:
    """Real orthogonal n x n circulant matrix from the phases phi_1 .. phi_p, p = (n - 1) // 2.

    C = F^-1 diag(lambda) F with a unit-modulus spectrum: lambda_0 = 1,
    lambda_k = exp(1j phi_k) for 0 < k < n / 2, lambda_{n-k} = conj(lambda_k) (odd-symmetric
    phase, so C is real) and lambda_{n/2} = 1 for even n. A circulant matrix is unitary
    exactly when its spectrum has unit modulus, so every phase vector gives an orthogonal
    C, with C 1 = 1. Multiplying by C is a circular convolution (O(n log n) by FFT).

    Parameters
    ----------
    phases : torch.Tensor
        (..., (n - 1) // 2) phases in radians.
    n : int
        Matrix size.

    Returns
    -------
    torch.Tensor
        (..., n, n) real orthogonal matrix, C[i, j] = c[(i - j) mod n].
    """
    if phases.shape[-1] != (n - 1) // 2:
        raise ValueError(f"circulant: need (n - 1) // 2 = {(n - 1) // 2} phases for n={n}, "
                         f"got {phases.shape[-1]}")
    one = phases.new_ones(*phases.shape[:-1], 1)
    spectrum = [torch.polar(one, torch.zeros_like(one)), torch.polar(torch.ones_like(phases), phases)]
    if n % 2 == 0:
        spectrum.append(torch.polar(one, torch.zeros_like(one)))
    column = torch.fft.irfft(torch.cat(spectrum, dim=-1), n=n, dim=-1)  # (..., n): C[:, 0]
    idx = torch.arange(n, device=phases.device)
    return column[..., (idx.unsqueeze(-1) - idx) % n]


@register_mapping
class Circulant:
    """Mapping phases (..., (n - 1) // 2) -> orthogonal circulant (..., n, n); see :func:`circulant`."""

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"Circulant: n must be a positive int, got {n!r}")
        self.n = n

    def __call__(self, phases):
        return circulant(phases, self.n)

    def config(self):
        return {"type": "Circulant", "n": self.n}

    def __repr__(self):
        return f"Circulant(n={self.n})"


def block_rotation(angles: torch.Tensor, n: int) -> torch.Tensor:
    """Block-diagonal rotation matrix: n // 2 plane rotations by the given angles.

    R = diag(R(theta_1), ..., R(theta_p)[, 1]) with R(theta) = [[cos theta, -sin theta],
    [sin theta, cos theta]] on the channel pairs (0, 1), (2, 3), ...; for odd n the last
    channel passes unchanged. Every angle gives an orthogonal R with det R = +1, so a
    rotation stays orthogonal while its angles are learned (the rotation feedback matrices
    of FLAMO, Dal Santo et al., ICASSP 2025).

    Parameters
    ----------
    angles : torch.Tensor
        (..., n // 2) angles in radians.
    n : int
        Matrix size.

    Returns
    -------
    torch.Tensor
        (..., n, n) real orthogonal matrix in the dtype of ``angles``.
    """
    if angles.shape[-1] != n // 2:
        raise ValueError(f"block_rotation: need n // 2 = {n // 2} angles for n={n}, got "
                         f"{angles.shape[-1]}")
    cos, sin = torch.cos(angles), torch.sin(angles)
    blocks = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    out = angles.new_zeros(*angles.shape[:-1], n, n)
    for k in range(n // 2):  # block k is rows and columns 2k, 2k + 1
        out[..., 2 * k:2 * k + 2, 2 * k:2 * k + 2] = blocks[..., k, :, :]
    if n % 2:
        out[..., n - 1, n - 1] = 1.0
    return out


@register_mapping
class BlockRotation:
    """Mapping angles (..., n // 2) -> block rotation (..., n, n); see :func:`block_rotation`."""

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"BlockRotation: n must be a positive int, got {n!r}")
        self.n = n

    def __call__(self, angles):
        return block_rotation(angles, self.n)

    def config(self):
        return {"type": "BlockRotation", "n": self.n}

    def __repr__(self):
        return f"BlockRotation(n={self.n})"


def is_prime(q: int) -> bool:
    """True when q is a prime number."""
    return q >= 2 and all(q % d for d in range(2, int(math.isqrt(q)) + 1))


def _legendre(q: int) -> np.ndarray:
    """chi(i) for i = 0..q-1: 0, +1 (quadratic residue) or -1, q an odd prime."""
    chi = -np.ones(q, dtype=np.int64)
    chi[0] = 0
    chi[[(i * i) % q for i in range(1, q)]] = 1
    return chi


def _paley_core(q: int, sign: int) -> np.ndarray:
    """[[0, 1^T], [sign * 1, Q]] with Q the Jacobsthal matrix Q_ij = chi(j - i)."""
    chi = _legendre(q)
    idx = np.arange(q)
    core = np.zeros((q + 1, q + 1), dtype=np.int64)
    core[0, 1:] = 1
    core[1:, 0] = sign
    core[1:, 1:] = chi[(idx[None, :] - idx[:, None]) % q]
    return core


def _hadamard_int(n: int) -> np.ndarray | None:
    """Unnormalized +-1 Hadamard matrix of order n, or None if no construction applies.

    Constructions: Sylvester (orders 1, 2), Paley I (q + 1, q prime = 3 mod 4),
    Paley II (2 (q + 1), q prime = 1 mod 4) and Kronecker products of these.
    """
    if n == 1:
        return np.ones((1, 1), dtype=np.int64)
    if n == 2:
        return np.array([[1, 1], [1, -1]], dtype=np.int64)
    if n % 4:
        return None
    q = n - 1
    if is_prime(q) and q % 4 == 3:  # Paley I: I + S with S skew
        return np.eye(n, dtype=np.int64) + _paley_core(q, -1)
    q = n // 2 - 1
    if is_prime(q) and q % 4 == 1:  # Paley II: symmetric S, blocks replace entries
        s = _paley_core(q, 1)
        zero_block = np.array([[1, -1], [-1, -1]], dtype=np.int64)
        one_block = np.array([[1, 1], [1, -1]], dtype=np.int64)
        return np.kron(s == 0, zero_block) + np.kron(s, one_block)
    for a in range(2, math.isqrt(n) + 1):
        if n % a == 0:
            left, right = _hadamard_int(a), _hadamard_int(n // a)
            if left is not None and right is not None:
                return np.kron(left, right)
    return None


def hadamard(n: int, dtype=torch.float64) -> torch.Tensor:
    """Orthogonal Hadamard matrix H / sqrt(n) of order n, (n, n).

    Raises
    ------
    ValueError
        If n is not 1, 2 or a multiple of 4 (no Hadamard matrix exists), or if it is a
        multiple of 4 none of the constructions above reaches (the smallest such order is 52).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"hadamard: n must be a positive int, got {n!r}")
    h = _hadamard_int(n)
    if h is None:
        why = ("no Hadamard matrix exists unless n is 1, 2 or a multiple of 4" if n % 4
               else "no Sylvester/Paley/Kronecker construction is known to flamo for this order")
        raise ValueError(f"hadamard: cannot build a Hadamard matrix of order n={n}: {why}")
    return torch.as_tensor(h, dtype=dtype) / math.sqrt(n)
