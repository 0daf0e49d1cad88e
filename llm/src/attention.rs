//! Causal self-attention over the KV cache, for a batch of query tokens.
//!
//! Grouped KV heads: the query heads that share a KV head are handled
//! together, so each key and value row is read once for all of them.
//! Work is split across rayon's pool: by query row when there are several
//! (prefill), by query head when there is one (decode). The inner loops
//! keep eight partial sums so that they vectorise; on CPUs with AVX2 and
//! FMA the same code is compiled for those (`quant`'s kernels module).

use rayon::prelude::*;

/// The attention's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) n_head: usize,
    pub(crate) n_head_kv: usize,
    pub(crate) head_dim: usize,
}

impl Shape {
    fn group(&self) -> usize {
        self.n_head / self.n_head_kv
    }

    fn d(&self) -> usize {
        self.n_head * self.head_dim
    }

    fn kvd(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// Attention of `t` query rows (`q`, `t × d`, rotated) at positions
/// `pos0..pos0 + t` over the cache (`kc`, `vc`: `(pos0 + t) × kvd`, this
/// batch's keys and values included); writes `out` (`t × d`).
pub(crate) fn attend(s: Shape, q: &[f32], kc: &[f32], vc: &[f32], pos0: usize, out: &mut [f32]) {
    let (d, hd, group) = (s.d(), s.head_dim, s.group());
    let t = out.len() / d;
    let kernel = crate::quant::attention_kernel();
    // Below this much work (query heads × positions × head size) the pool's
    // overhead costs more than a second core gives.
    let parallel = t * s.n_head * (pos0 + t) * hd >= PARALLEL_WORK;
    if t == 1 {
        // One query: its heads in parallel, each over the whole cache.
        let n = pos0 + 1;
        let one = |scores: &mut Vec<f32>, (head, o): (usize, &mut [f32])| {
            let qh = &q[head * hd..(head + 1) * hd];
            kernel(s, head / group, std::slice::from_ref(&qh), kc, vc, n, scores, &mut [o]);
        };
        if parallel {
            out.par_chunks_mut(hd).enumerate().for_each_init(Vec::new, one);
        } else {
            let mut scores = Vec::new();
            out.chunks_mut(hd).enumerate().for_each(|x| one(&mut scores, x));
        }
        return;
    }
    let row = |scores: &mut Vec<f32>, (i, row): (usize, &mut [f32])| {
        let n = pos0 + i + 1; // causal: up to and including itself
        let qrow = &q[i * d..(i + 1) * d];
        for (g, outs) in row.chunks_mut(group * hd).enumerate() {
            let qs: Vec<&[f32]> = (0..group).map(|j| &qrow[(g * group + j) * hd..(g * group + j + 1) * hd]).collect();
            let mut os: Vec<&mut [f32]> = outs.chunks_mut(hd).collect();
            kernel(s, g, &qs, kc, vc, n, scores, &mut os);
        }
    };
    if parallel {
        out.par_chunks_mut(d).enumerate().for_each_init(Vec::new, row);
    } else {
        let mut scores = Vec::new();
        out.chunks_mut(d).enumerate().for_each(|x| row(&mut scores, x));
    }
}

/// Work (multiply-adds per pass) from which attention is split across the
/// pool: measured on two cores, decoding at depth 0 to 2,048.
const PARALLEL_WORK: usize = 1 << 17;

/// The query heads `qs` sharing KV head `g`, over the first `n` positions:
/// `outs[j] = softmax(qs[j] · K / √hd) · V`. `scores` is scratch.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn heads(
    s: Shape,
    g: usize,
    qs: &[&[f32]],
    kc: &[f32],
    vc: &[f32],
    n: usize,
    scores: &mut Vec<f32>,
    outs: &mut [&mut [f32]],
) {
    let (hd, kvd) = (s.head_dim, s.kvd());
    let scale = 1.0 / (hd as f32).sqrt();
    let m = qs.len();
    scores.clear();
    scores.resize(m * n, 0.0);
    for p in 0..n {
        let k = &kc[p * kvd + g * hd..p * kvd + (g + 1) * hd];
        for (j, q) in qs.iter().enumerate() {
            scores[j * n + p] = dot(q, k) * scale;
        }
    }
    for j in 0..m {
        crate::model::softmax(&mut scores[j * n..(j + 1) * n]);
    }
    for o in outs.iter_mut() {
        o.fill(0.0);
    }
    for p in 0..n {
        let v = &vc[p * kvd + g * hd..p * kvd + (g + 1) * hd];
        for (j, o) in outs.iter_mut().enumerate() {
            axpy(o, scores[j * n + p], v);
        }
    }
}

/// `a · b`, with eight partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `o += s · v`.
#[inline(always)]
fn axpy(o: &mut [f32], s: f32, v: &[f32]) {
    for (a, b) in o.iter_mut().zip(v) {
        *a += s * b;
    }
}

/// The kernel's signature (see [`heads`]).
pub(crate) type HeadsKernel = fn(Shape, usize, &[&[f32]], &[f32], &[f32], usize, &mut Vec<f32>, &mut [&mut [f32]]);

/// [`heads`] compiled for the baseline CPU.
#[allow(clippy::too_many_arguments)]
pub(crate) fn heads_baseline(
    s: Shape,
    g: usize,
    qs: &[&[f32]],
    kc: &[f32],
    vc: &[f32],
    n: usize,
    scores: &mut Vec<f32>,
    outs: &mut [&mut [f32]],
) {
    heads(s, g, qs, kc, vc, n, scores, outs);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward attention the model used before, as reference.
    fn reference(s: Shape, q: &[f32], kc: &[f32], vc: &[f32], pos0: usize, t: usize) -> Vec<f32> {
        let (d, kvd, hd, group) = (s.d(), s.kvd(), s.head_dim, s.group());
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0.0; t * d];
        for i in 0..t {
            let n = pos0 + i + 1;
            for head in 0..s.n_head {
                let g = head / group;
                let qh = &q[i * d + head * hd..i * d + (head + 1) * hd];
                let mut sc: Vec<f32> = (0..n)
                    .map(|p| qh.iter().zip(&kc[p * kvd + g * hd..]).map(|(a, b)| a * b).sum::<f32>() * scale)
                    .collect();
                crate::model::softmax(&mut sc);
                for (p, w) in sc.iter().enumerate() {
                    for k in 0..hd {
                        out[i * d + head * hd + k] += w * vc[p * kvd + g * hd + k];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_straightforward_attention_for_prefill_and_decode() {
        let s = Shape { n_head: 9, n_head_kv: 3, head_dim: 64 };
        let (d, kvd) = (s.d(), s.kvd());
        let noise = |n: usize, seed: u32| -> Vec<f32> {
            (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
        };
        for (pos0, t) in [(0, 7), (5, 1), (40, 3), (0, 1)] {
            let total = pos0 + t;
            let (q, kc, vc) = (noise(t * d, 1), noise(total * kvd, 2), noise(total * kvd, 3));
            let want = reference(s, &q, &kc, &vc, pos0, t);
            let mut got = vec![0.0; t * d];
            attend(s, &q, &kc, &vc, pos0, &mut got);
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() < 1e-4, "pos0 {pos0}, t {t}: {a} vs {b}");
            }
        }
    }
}
