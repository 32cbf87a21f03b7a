"""EMA vector quantizer (VQ-VAE, paper Eqs. 1-4) with k-means init and dead-code re-seeding.

* Nearest code by L2 distance, computed in float32 even under autocast (bf16 flips choices).
* Straight-through estimator: ``q = z + (q - z).detach()``.
* Codebook learnt by an exponential moving average of the assigned inputs (Eq. 4) with
  Laplace smoothing, not by a loss term; under torch.distributed the counts and sums are
  all-reduced so that every process keeps the same codebook.
* Repeated K-means (Huh et al. 2023) initialises the codebook from encoder outputs once,
  after warm-up; codes whose EMA count falls below a threshold are re-seeded from inputs.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def squared_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, D) x (K, D) -> (N, K) squared L2 distances in float32."""
    x, codebook = x.float(), codebook.float()
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ codebook.t() + codebook.pow(2).sum(1)[None]).clamp_min_(0)


def nearest_centroids(x: torch.Tensor, c: torch.Tensor, x_sq: torch.Tensor | None = None,
                      block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``x`` (N, D): its squared distance to the nearest row of ``c`` (K, D) and
    that row's index. Computed in blocks of ``block`` rows, ``|c|^2 - 2 x c^T`` in one fused
    ``addmm`` and ``|x|^2`` added after the minimum (it does not change which centroid is
    nearest): the (N, K) distance matrix never exists whole, and each block stays in cache
    (:func:`kmeans` spends its time here; ``benchmarks/kmeans_init.py`` measures it)."""
    x_sq = x.pow(2).sum(1) if x_sq is None else x_sq
    c_sq = c.pow(2).sum(1)[None]
    mind = torch.empty(x.shape[0], dtype=x.dtype)
    assign = torch.empty(x.shape[0], dtype=torch.long)
    for s in range(0, x.shape[0], block):
        m, a = torch.addmm(c_sq, x[s:s + block], c.t(), alpha=-2).min(1)
        mind[s:s + block], assign[s:s + block] = m, a
    return mind.add_(x_sq).clamp_min_(0), assign


def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, repeats: int = 3, tol: float = 1e-3,
           generator: torch.Generator | None = None, version: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeated k-means: ``repeats`` Lloyd runs from k-means++ seeds (on a subsample); keep the lowest inertia.

    Returns (centroids (k, D), counts (k,)). Empty clusters are re-seeded from the points
    farthest from their centroid, so every centroid ends up owning points. A run stops before
    ``iters`` once at most ``tol`` of the points changed cluster in an iteration (and none is
    empty); with ``tol=0`` only when none did, where every further iteration would give the same
    centroids. Encoder outputs of a trained `small` tokenizer: 0.1% of the points move after about
    7 iterations, none after about 12, and the inertia then differs by under 0.1%
    (``benchmarks/kmeans_init.py`` measures the time and the inertia against the full 20).

    ``version=3`` (the default): with ``repeats > 1`` the repeats run on a subsample of
    :data:`SUBSAMPLE_PER_CODE` points per centroid (enough to tell a good seeding from a bad one)
    and only the winner is refined by Lloyd iterations on all ``x`` (same stopping rule): the
    repeats' full passes are saved (``benchmarks/kmeans_init.py`` times it). ``version=2``: every repeat on all ``x``
    (kept, as every version is, so that a tokenizer is rebuilt bit for bit from its seeds).
    ``version=1``: the k-means before these (:func:`_kmeans_v1`; ``TokenizerConfig.kmeans_version``).
    """
    if version == 1:
        return _kmeans_v1(x, k, iters=iters, repeats=repeats, generator=generator)
    x = x.float()
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least k={k} points, got {n}")
    if version >= 3 and repeats > 1 and n > SUBSAMPLE_PER_CODE * k:
        sub = x[torch.randperm(n, generator=generator)[:SUBSAMPLE_PER_CODE * k]]
        seeds, _ = kmeans(sub, k, iters=iters, repeats=repeats, tol=tol, generator=generator, version=2)
        x_sq = x.pow(2).sum(1)
        c = _lloyd(x, seeds, x_sq, iters=iters, tol=tol)
        return c, torch.bincount(nearest_centroids(x, c, x_sq)[1], minlength=k).float()
    x_sq = x.pow(2).sum(1)
    best, best_inertia, best_counts = None, float("inf"), None
    for _ in range(repeats):
        c = _lloyd(x, _kmeans_pp(x, k, generator), x_sq, iters=iters, tol=tol)
        mind, assign = nearest_centroids(x, c, x_sq)
        inertia = mind.sum().item()
        if inertia < best_inertia:
            best, best_inertia = c.clone(), inertia
            best_counts = torch.bincount(assign, minlength=k).float()
    return best, best_counts


# version 3: points per centroid on which the repeats run (8 x 1,024 codes = 8,192 of 32,768
# samples); enough to rank seedings, and the winner's refinement on all samples ends where a
# version-2 run would (capping it at 4 iterations cost 3% inertia on a Gaussian mixture)
SUBSAMPLE_PER_CODE = 8


def _lloyd(x: torch.Tensor, c: torch.Tensor, x_sq: torch.Tensor, *, iters: int, tol: float, counts: bool = False):
    """Up to ``iters`` Lloyd iterations from centroids ``c``; stops once at most ``tol`` of the
    points changed cluster (and no cluster is empty). An empty cluster takes the point farthest
    from its centroid. With ``counts`` returns ``(c, counts of the last assignment)``."""
    k, n = c.shape[0], x.shape[0]
    prev = None
    for _ in range(iters):
        mind, assign = nearest_centroids(x, c, x_sq)
        sizes = torch.bincount(assign, minlength=k).float()
        empty = torch.nonzero(sizes == 0).flatten()
        if prev is not None and not empty.numel() and int((assign != prev).sum()) <= tol * n:
            break  # (nearly) converged: c is (about) the mean of its points
        prev = assign
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        c = torch.where(sizes[:, None] > 0, sums / sizes.clamp_min(1)[:, None], c)
        if empty.numel():
            far = torch.topk(mind, empty.numel()).indices
            c[empty] = x[far]
            sizes[empty] = 1.0
    return (c, sizes) if counts else c


def _kmeans_pp(x: torch.Tensor, k: int, generator) -> torch.Tensor:
    """k-means++ seeding on a subsample of 4k points: spreads the seeds at a cost that
    does not grow with the number of samples. Each seed is drawn by inverse-CDF sampling
    (a cumulative sum and a binary search, not ``torch.multinomial``'s pass of exponentials)
    and distances use precomputed squared norms: the k sequential draws cost little."""
    m = min(x.shape[0], 4 * k)
    sub = x[torch.randperm(x.shape[0], generator=generator)[:m]]
    sub_sq = sub.pow(2).sum(1)
    first = int(torch.randint(m, (1,), generator=generator))
    centers = torch.empty(k, x.shape[1], dtype=x.dtype)
    centers[0] = sub[first]
    mind = (sub_sq - 2 * (sub @ sub[first]) + sub_sq[first]).clamp_min_(0)
    for j in range(1, k):
        cum = torch.cumsum(mind, 0)
        if cum[-1] > 0:
            i = int(torch.searchsorted(cum, torch.rand(1, generator=generator, dtype=cum.dtype) * cum[-1]).clamp_max(m - 1))
        else:
            i = int(torch.randint(m, (1,), generator=generator))
        centers[j] = sub[i]
        torch.minimum(mind, (sub_sq - 2 * (sub @ sub[i]) + sub_sq[i]).clamp_min_(0), out=mind)
    return centers


def _kmeans_v1(x: torch.Tensor, k: int, *, iters: int = 20, repeats: int = 3,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``kmeans_version`` 1, the k-means before issue 19, kept as it was so that every tokenizer
    trained with it (the committed benchmark tables, the shipped model) is rebuilt bit for bit
    from its seeds: all ``iters`` Lloyd iterations on the whole (N, K) distance matrix, k-means++
    seeds drawn by ``torch.multinomial``."""
    x = x.float()
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least k={k} points, got {n}")
    best, best_inertia, best_counts = None, float("inf"), None
    for _ in range(repeats):
        c = _kmeans_pp_v1(x, k, generator)
        for _ in range(iters):
            d = squared_distances(x, c)
            mind, assign = d.min(1)
            counts = torch.bincount(assign, minlength=k).float()
            sums = torch.zeros_like(c).index_add_(0, assign, x)
            c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
            empty = torch.nonzero(counts == 0).flatten()
            if empty.numel():
                far = torch.topk(mind, empty.numel()).indices
                c[empty] = x[far]
        d = squared_distances(x, c)
        mind, assign = d.min(1)
        inertia = mind.sum().item()
        if inertia < best_inertia:
            best, best_inertia = c.clone(), inertia
            best_counts = torch.bincount(assign, minlength=k).float()
    return best, best_counts


def _kmeans_pp_v1(x: torch.Tensor, k: int, generator) -> torch.Tensor:
    """k-means++ seeding on a subsample of 4k points: spreads the seeds at a cost that
    does not grow with the number of samples."""
    m = min(x.shape[0], 4 * k)
    sub = x[torch.randperm(x.shape[0], generator=generator)[:m]]
    first = torch.randint(m, (1,), generator=generator)
    centers = torch.empty(k, x.shape[1], dtype=x.dtype)
    centers[0] = sub[first]
    mind = squared_distances(sub, centers[:1]).squeeze(1)
    for j in range(1, k):
        total = mind.sum()
        p = mind / total if total > 0 else torch.full_like(mind, 1 / m)
        i = torch.multinomial(p, 1, generator=generator)
        centers[j] = sub[i]
        mind = torch.minimum(mind, (sub - sub[i]).pow(2).sum(1))
    return centers


class EMAVectorQuantizer(nn.Module):
    """One codebook of ``codebook_size`` vectors of ``dim``, learnt by EMA (Eq. 4)."""

    def __init__(self, *, codebook_size: int, dim: int, decay: float = 0.99, eps: float = 1e-5,
                 dead_code_threshold: float = 0.2):
        super().__init__()
        self.codebook_size, self.dim = codebook_size, dim
        self.decay, self.eps, self.dead_code_threshold = decay, eps, dead_code_threshold
        embed = torch.randn(codebook_size, dim) * 0.02
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("initted", torch.zeros((), dtype=torch.bool))

    @torch.autocast("cuda", enabled=False)
    def forward(self, x: torch.Tensor) -> dict:
        """x (..., D) -> dict(quantized (straight-through), indices, commit (MSE to sg(q)))."""
        shape = x.shape
        flat = x.reshape(-1, self.dim).float()
        indices = self.nearest(flat)
        q = F.embedding(indices, self.embed)
        if self.training:
            self._ema_update(flat.detach(), indices)
        commit = F.mse_loss(flat, q.detach())
        q_st = flat + (q - flat).detach()
        return dict(quantized=q_st.view(shape).to(x.dtype), indices=indices.view(shape[:-1]),
                    commit=commit, flat_inputs=flat.detach())

    @torch.autocast("cuda", enabled=False)
    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (float32 distances) for x (..., D), no EMA update."""
        flat = x.reshape(-1, self.dim).float()
        return squared_distances(flat, self.embed).argmin(1).view(x.shape[:-1])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.embed)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices, minlength=self.codebook_size).float()
        sums = torch.zeros_like(self.embed).index_add_(0, indices, flat)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def init_from_kmeans(self, samples: torch.Tensor, *, iters: int, repeats: int,
                         generator: torch.Generator | None = None, version: int = 3) -> None:
        """Set the codebook to the Repeated K-means centroids of ``samples`` (N, D).

        Under torch.distributed, rank 0's result is broadcast so all processes agree.
        """
        centroids, counts = kmeans(samples, self.codebook_size, iters=iters, repeats=repeats, generator=generator,
                                   version=version)
        self.set_codebook(centroids, counts)

    @torch.no_grad()
    def kmeans_stage(self, samples: torch.Tensor, stage: str, *, iters: int, repeats: int,
                     generator: torch.Generator | None = None) -> None:
        """One half of ``kmeans_version`` 4's Repeated K-means, which spreads it over two training
        steps and keeps no state but the codebook: ``"seed"`` runs the ``repeats`` k-means on
        :data:`SUBSAMPLE_PER_CODE` points per code (version 3's search) and installs the winner;
        ``"refine"`` runs up to ``iters`` Lloyd iterations on all ``samples`` from the codebook as
        it is now (the seeds, or an earlier refinement, after a step of EMA), with version 3's
        stopping rule; the cluster counts are those of its last assignment."""
        x = samples.float()
        k = self.codebook_size
        if x.shape[0] < k:
            raise ValueError(f"k-means needs at least k={k} points, got {x.shape[0]}")
        if stage == "seed":
            sub = x[torch.randperm(x.shape[0], generator=generator)[:SUBSAMPLE_PER_CODE * k]]
            centroids, counts = kmeans(sub, k, iters=iters, repeats=repeats, generator=generator, version=2)
        elif stage == "refine":
            centroids, counts = _lloyd(x, self.embed.float().to(x.device), x.pow(2).sum(1), iters=iters, tol=1e-3,
                                       counts=True)
        else:
            raise ValueError(f"k-means stage must be 'seed' or 'refine', not {stage!r}")
        self.set_codebook(centroids, counts)

    @torch.no_grad()
    def set_codebook(self, centroids: torch.Tensor, counts: torch.Tensor) -> None:
        """Install k-means ``centroids`` (K, D) with their cluster ``counts`` (K,) as the codebook."""
        centroids = centroids.to(self.embed.device)
        counts = counts.to(self.embed.device)
        if _distributed():
            dist.broadcast(centroids, 0)
            dist.broadcast(counts, 0)
        # EMA state as if the codes had been averaging their clusters at the batch scale
        scale = counts / counts.sum().clamp_min(1) * self.cluster_size.sum()
        self.embed.copy_(centroids)
        self.cluster_size.copy_(scale.clamp_min(1.0))
        self.embed_sum.copy_(centroids * self.cluster_size[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def reseed_dead_codes(self, samples: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Replace codes whose EMA count is below ``dead_code_threshold`` times the mean
        count by random input vectors, and give them the mean count.

        Returns the number of codes re-seeded. Rank 0 chooses; the others follow.
        """
        mean = self.cluster_size.mean()
        dead = self.cluster_size < self.dead_code_threshold * mean
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        pick = torch.randint(samples.shape[0], (n_dead,), generator=generator)
        new = samples[pick.to(samples.device)].float().to(self.embed.device)
        if _distributed():
            dist.broadcast(new, 0)
        self.embed[dead] = new
        self.cluster_size[dead] = mean
        self.embed_sum[dead] = new * mean
        return n_dead


class PackedNearest:
    """``EMAVectorQuantizer.nearest`` for inference, with the codebook prepared once.

    argmin_k |x - c_k|^2 = argmax_k (x . c_k - |c_k|^2 / 2): one GEMM with the half code
    norms (float32) as its bias, then argmax; |x|^2 is constant per row and never
    computed. With ``onednn`` the codebook is packed for oneDNN (CPU, float32); otherwise
    ``torch.addmm``. Equal to ``nearest`` up to float rounding of near-ties. Holds a copy
    of the codebook: rebuild it after the codebook changes.
    """

    def __init__(self, vq: EMAVectorQuantizer, *, onednn: bool = False):
        self.dim = vq.dim
        self.embed = vq.embed.detach().float()
        self.half_norms = self.embed.pow(2).sum(1).mul_(-0.5)  # float32
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.embed, None) if onednn else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.dim).float()
        if self.packed is not None:
            scores = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.half_norms, "none", [], "")
        else:
            scores = torch.addmm(self.half_norms, flat, self.embed.t())
        return scores.argmax(1).view(x.shape[:-1])
