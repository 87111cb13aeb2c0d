"""Test helpers: reference implementations written straight from the papers' algorithms, and toy models.

The references use dense SVDs of every matrix exactly as the algorithms are printed, with none of the library's
shortcuts (cached factors, factored residuals, block polar factors), so agreement tests check those shortcuts.
"""
from __future__ import annotations

import torch
from torch import Tensor


def svd(x: Tensor):
    U, S, Vh = torch.linalg.svd(x.double(), full_matrices=False)
    return U, S, Vh.mT


def polar(x: Tensor) -> Tensor:
    P, _, Qh = torch.linalg.svd(x.double(), full_matrices=False)
    return P @ Qh


def ref_tsv_m(tm: Tensor, alpha: float, k: int) -> Tensor:
    """TSV Alg. 1 verbatim."""
    Us, Ss, Vs = [], [], []
    for d in tm:
        U, S, V = svd(d)
        Us.append(U[:, :k]); Ss.append(S[:k]); Vs.append(V[:, :k])
    U, S, V = torch.cat(Us, 1), torch.cat(Ss), torch.cat(Vs, 1)
    return (alpha * polar(U) @ torch.diag(S) @ polar(V).T)


def ref_iso_c(tm: Tensor, alpha: float) -> Tensor:
    U, S, V = svd(tm.sum(0))
    return (alpha * S.mean() * U @ V.T)


def ref_iso_cts(tm: Tensor, alpha: float, common_frac: float) -> Tensor:
    """Iso Alg. 2 verbatim, with the official rounding of k and s."""
    T = tm.shape[0]
    U, S, V = svd(tm.sum(0))
    r = S.numel()
    k = int(r * common_frac)
    s_total = round((r - k) / T) * T
    k = r - s_total
    s = s_total // T
    Us, Ss, Vs = [U[:, :k]], [S[:k]], [V[:, :k]]
    for d in tm.double():
        resid = d - U[:, :k] @ (U[:, :k].T @ d)
        Ut, St, Vt = svd(resid)
        Us.append(Ut[:, :s]); Ss.append(St[:s]); Vs.append(Vt[:, :s])
    U_star, V_star = polar(torch.cat(Us, 1)), polar(torch.cat(Vs, 1))
    sigma_bar = torch.cat(Ss).sum() / r
    return (alpha * sigma_bar * U_star @ V_star.T)


def ref_cart(tm: Tensor, alpha: float, k: int) -> Tensor:
    mean = tm.double().mean(0)
    out = mean.clone()
    for d in tm.double():
        U, S, V = svd(d - mean)
        out += alpha * (U[:, :k] * S[:k]) @ V[:, :k].T
    return out


def orthogonal_tasks(T: int, m: int, n: int, k: int, seed: int = 0) -> Tensor:
    """T task matrices of rank k whose left and right singular vectors are disjoint column sets of one
    orthonormal basis each (requires T·k ≤ min(m, n)): mutually orthogonal tasks."""
    g = torch.Generator().manual_seed(seed)
    Qm = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))[0]
    Qn = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    out = []
    for t in range(T):
        S = torch.sort(torch.rand(k, generator=g, dtype=torch.float64) + 0.5, descending=True).values
        out.append((Qm[:, t * k:(t + 1) * k] * S) @ Qn[:, t * k:(t + 1) * k].T)
    return torch.stack(out)


def make_vit_state_dicts(num_tasks: int = 3, seed: int = 0, width: int = 8, blocks: int = 2, tokens: int = 5,
                         out_dim: int = 6, scale: float = 0.05):
    """A tiny image tower with ViT-B/32's parameter names, and fine-tuned copies (base + small noise)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g)

    base = {
        "visual.class_embedding": rnd(width),
        "visual.positional_embedding": rnd(tokens, width),
        "visual.conv1.weight": rnd(width, 3, 2, 2),
        "visual.ln_pre.weight": torch.ones(width),
        "visual.ln_pre.bias": torch.zeros(width),
        "visual.proj": rnd(width, out_dim),
        "visual.ln_post.weight": torch.ones(width),
        "visual.ln_post.bias": torch.zeros(width),
        "visual.step_counter": torch.tensor(7, dtype=torch.int64),
    }
    for b in range(blocks):
        p = f"visual.transformer.resblocks.{b}."
        base.update({
            p + "ln_1.weight": torch.ones(width), p + "ln_1.bias": torch.zeros(width),
            p + "attn.in_proj_weight": rnd(3 * width, width), p + "attn.in_proj_bias": rnd(3 * width),
            p + "attn.out_proj.weight": rnd(width, width), p + "attn.out_proj.bias": rnd(width),
            p + "ln_2.weight": torch.ones(width), p + "ln_2.bias": torch.zeros(width),
            p + "mlp.c_fc.weight": rnd(4 * width, width), p + "mlp.c_fc.bias": rnd(4 * width),
            p + "mlp.c_proj.weight": rnd(width, 4 * width), p + "mlp.c_proj.bias": rnd(width),
        })
    finetuned = {}
    for t in range(num_tasks):
        finetuned[f"task{t}"] = {
            k: (v + scale * rnd(*v.shape)) if v.is_floating_point() else v.clone() for k, v in base.items()
        }
    return base, finetuned
