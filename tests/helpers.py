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


def ref_iso_cts(tm: Tensor, alpha: float, common_frac: float, common_rtol: float | None = None) -> Tensor:
    """Iso Alg. 2 verbatim, with the official rounding of k and s. ``common_rtol``: the common directions with
    σ ≤ common_rtol·σ₁ are left out (spectral's rank_cut="numerical"; σ̄ still sums the k values)."""
    T = tm.shape[0]
    U, S, V = svd(tm.sum(0))
    r = S.numel()
    k = int(r * common_frac)
    s_total = round((r - k) / T) * T
    k = r - s_total
    s = s_total // T
    k_eff = k if common_rtol is None else min(k, int((S > common_rtol * S[0]).sum()))
    Us, Ss, Vs = [U[:, :k_eff]], [S[:k]], [V[:, :k_eff]]
    for d in tm.double():
        resid = d - U[:, :k_eff] @ (U[:, :k_eff].T @ d)
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


# -- float64 transcriptions of the authors' code (issue 28) --------------------------------------------------------
# Written from the algorithms as the released code runs them (official Iso / TSV / TIES / MagMax code, FusionBench,
# mergekit), not from the library: the tests compare the library's "authors" settings with these.

def ref_iso_c_numerical(tm: Tensor, alpha: float, rtol: float) -> Tensor:
    """Iso-C with the directions below rtol·σ₁ left out (spectral's rank_cut="numerical"); σ̄ over all r."""
    U, S, V = svd(tm.sum(0))
    keep = int((S > rtol * S[0]).sum())
    return alpha * S.mean() * U[:, :keep] @ V[:, :keep].T


def ref_ties_authors(task_vectors: dict, alpha: float, density: float) -> dict:
    """TIES authors' code (and FusionBench): flatten every task vector (keys sorted), keep |x| ≥ the
    (d − int(d·density))-th smallest |x| per task, sign = sign(Σ_t trimmed) with zeros set to sign(Σ signs),
    disjoint mean over entries agreeing with the sign (a zero sign selects the negative ones)."""
    keys = sorted(task_vectors)
    T = task_vectors[keys[0]].shape[0]
    flat = torch.stack([torch.cat([task_vectors[k][t].double().reshape(-1) for k in keys]) for t in range(T)])
    d = flat.shape[1]
    kth = flat.abs().kthvalue(d - int(d * density), dim=1, keepdim=True).values
    trimmed = flat * (flat.abs() >= kth)
    sign = torch.sign(trimmed.sum(0))
    sign[sign == 0] = torch.sign(sign.sum())
    rows = torch.where(sign.unsqueeze(0) > 0, trimmed > 0, trimmed < 0)
    selected = trimmed * rows
    merged = alpha * selected.sum(0) / (selected != 0).sum(0).double().clamp(min=1)
    out, start = {}, 0
    for k in keys:
        n = task_vectors[k][0].numel()
        out[k] = merged[start:start + n].reshape(task_vectors[k].shape[1:])
        start += n
    return out


def ref_ties_mergekit(task_vectors: dict, alpha: float, density: float) -> dict:
    """mergekit's TIES (sparsify 'magnitude' + get_mask 'sum' + normalised disjoint sum), tensor by tensor:
    per task the max(1, int(density·numel)) largest |x| (argsort order; mergekit 0.1.5 keeps at least one), sign = +1 where Σ_t ≥ 0 else −1, mask =
    sign(x) == that sign, sum over the mask divided by its count (1 where empty), times λ = alpha."""
    out = {}
    for k, stacked in task_vectors.items():
        x = stacked.double().reshape(stacked.shape[0], -1)
        n = x.shape[1]
        keep = max(1, int(density * n)) if density > 0 else 0
        trimmed = torch.zeros_like(x)
        for t in range(x.shape[0]):
            top = torch.argsort(x[t].abs(), descending=True)[:keep]
            trimmed[t, top] = x[t, top]
        majority = (trimmed.sum(0) >= 0).double() * 2 - 1
        mask = trimmed.sign() == majority
        divisor = mask.double().sum(0)
        divisor[divisor == 0] = 1
        out[k] = (alpha * (trimmed * mask).sum(0) / divisor).reshape(stacked.shape[1:])
    return out


def ref_magmax_authors(task_vectors: dict, alpha: float) -> dict:
    """MagMax's merge_max_abs: fold the tasks in order, a later value replaces the running one where
    |later| ≥ |running|."""
    out = {}
    for k, stacked in task_vectors.items():
        running = stacked[0].double().clone()
        for t in range(1, stacked.shape[0]):
            cur = stacked[t].double()
            running = torch.where(cur.abs() >= running.abs(), cur, running)
        out[k] = alpha * running
    return out


def tasks_with_deficient_sum(T: int, m: int, n: int, rank: int, tiny: Tensor | None = None, seed: int = 0,
                             dtype: torch.dtype = torch.float64) -> Tensor:
    """T ≥ 2 full-rank tasks whose sum is a rank-``rank`` matrix L: Δ_t = R_t for t < T−1 and
    Δ_{T−1} = L − Σ_{t<T−1} R_t, the cancellation that leaves the sum of real checkpoints' deltas numerically rank
    deficient in float32. With ``tiny`` (small distinct values) the sum's trailing singular values are those values
    along fixed orthonormal directions instead of zero, so its float64 trailing singular vectors are well defined."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    R = [torch.randn(m, n, generator=g, dtype=f64) / n ** 0.5 for _ in range(T - 1)]
    L = torch.randn(m, rank, generator=g, dtype=f64) @ torch.randn(rank, n, generator=g, dtype=f64) / n ** 0.5
    if tiny is not None:
        Q1, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=f64))
        Q2, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=f64))
        P1 = Q1 - L @ torch.linalg.pinv(L) @ Q1  # outside L's column and row spaces
        P2 = Q2 - torch.linalg.pinv(L) @ L @ Q2
        U_t = torch.linalg.qr(P1[:, : tiny.numel()])[0]
        V_t = torch.linalg.qr(P2[:, : tiny.numel()])[0]
        L = L + (U_t * tiny.double()) @ V_t.T
    last = L - sum(R) if R else L
    return torch.stack([*R, last]).to(dtype)
