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
            let h = Heads { shape: s, g: head / group, qs: std::slice::from_ref(&qh), ns: &[n], kc, vc };
            kernel(&h, scores, &mut [o]);
        };
        if parallel {
            out.par_chunks_mut(hd).enumerate().for_each_init(Vec::new, one);
        } else {
            let mut scores = Vec::new();
            out.chunks_mut(hd).enumerate().for_each(|x| one(&mut scores, x));
        }
        return;
    }
    // A block of query rows at a time: each key and value row read from
    // memory serves all their heads (at long contexts the cache no longer
    // fits near the core, and reading it once per row was the bottleneck).
    let rows = |scores: &mut Vec<f32>, (b, block): (usize, &mut [f32])| {
        let first = b * ROWS;
        let here = block.len() / d;
        for g in 0..s.n_head_kv {
            let mut qs: Vec<&[f32]> = Vec::with_capacity(here * group);
            let mut ns: Vec<usize> = Vec::with_capacity(here * group);
            for r in 0..here {
                let i = first + r;
                for j in 0..group {
                    let h = g * group + j;
                    qs.push(&q[i * d + h * hd..i * d + (h + 1) * hd]);
                    ns.push(pos0 + i + 1); // causal: up to and including itself
                }
            }
            let mut os: Vec<&mut [f32]> =
                block.chunks_mut(d).flat_map(|row| row[g * group * hd..(g + 1) * group * hd].chunks_mut(hd)).collect();
            kernel(&Heads { shape: s, g, qs: &qs, ns: &ns, kc, vc }, scores, &mut os);
        }
    };
    if parallel {
        out.par_chunks_mut(d * ROWS).enumerate().for_each_init(Vec::new, rows);
    } else {
        let mut scores = Vec::new();
        out.chunks_mut(d * ROWS).enumerate().for_each(|x| rows(&mut scores, x));
    }
}

/// Query rows attended together.
const ROWS: usize = 8;

/// Work (multiply-adds per pass) from which attention is split across the
/// pool: measured on two cores, decoding at depth 0 to 2,048.
const PARALLEL_WORK: usize = 1 << 17;

/// One call of the kernel: the query heads `qs` that share KV head `g`,
/// each over the first `ns[j]` positions of the cache (`kc`, `vc`).
pub(crate) struct Heads<'a> {
    pub(crate) shape: Shape,
    pub(crate) g: usize,
    pub(crate) qs: &'a [&'a [f32]],
    pub(crate) ns: &'a [usize],
    pub(crate) kc: &'a [f32],
    pub(crate) vc: &'a [f32],
}

/// `outs[j] = softmax(qs[j] · K / √hd) · V` for the heads of `h`, each key
/// and value row read once for all of them. `scores` is scratch.
#[inline(always)]
pub(crate) fn heads(h: &Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]]) {
    let Heads { shape: s, g, qs, ns, kc, vc } = *h;
    let (hd, kvd) = (s.head_dim, s.kvd());
    let scale = 1.0 / (hd as f32).sqrt();
    let m = qs.len();
    let n = ns.iter().copied().max().unwrap_or(0);
    scores.clear();
    scores.resize(m * n, 0.0);
    // Eight positions at a time where every head attends to all of them:
    // eight independent sums per head, not one long chain each.
    let all = ns.iter().copied().min().unwrap_or(0);
    let mut p = 0;
    if hd % 8 == 0 {
        while p + 8 <= all {
            let ks: [&[f32]; 8] = std::array::from_fn(|i| &kc[(p + i) * kvd + g * hd..(p + i) * kvd + (g + 1) * hd]);
            for (j, q) in qs.iter().enumerate() {
                let d8 = dots8(q, &ks);
                for (i, d) in d8.iter().enumerate() {
                    scores[j * n + p + i] = d * scale;
                }
            }
            p += 8;
        }
    }
    for p in p..n {
        let k = &kc[p * kvd + g * hd..p * kvd + (g + 1) * hd];
        for (j, q) in qs.iter().enumerate() {
            if p < ns[j] {
                scores[j * n + p] = dot(q, k) * scale;
            }
        }
    }
    for (j, &nj) in ns.iter().enumerate() {
        softmax(&mut scores[j * n..j * n + nj]);
    }
    for o in outs.iter_mut() {
        o.fill(0.0);
    }
    for p in 0..n {
        let v = &vc[p * kvd + g * hd..p * kvd + (g + 1) * hd];
        for (j, o) in outs.iter_mut().enumerate() {
            if p < ns[j] {
                axpy(o, scores[j * n + p], v);
            }
        }
    }
}

/// Softmax in place, in loops that vectorise (`exp` below, then a sum
/// with eight partial sums).
#[inline(always)]
fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let inv = 1.0 / (acc.iter().sum::<f32>() + tail);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `e^x` for `x ≤ 0` (a score less the largest), within 2 ulp: the range
/// reduction `x = n·ln 2 + r` and Cephes' polynomial for `e^r`, written
/// without calls so that it vectorises. Below -87 it is 2^-126 (the
/// weight of such a score is nothing anyway).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to the nearest integer in the low bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `q · ks[i]` for eight rows at once (lengths a multiple of 8).
#[inline(always)]
fn dots8(q: &[f32], ks: &[&[f32]; 8]) -> [f32; 8] {
    let mut acc = [[0.0f32; 8]; 8];
    for (c, qc) in q.chunks_exact(8).enumerate() {
        for (a, k) in acc.iter_mut().zip(ks) {
            let kc = &k[c * 8..c * 8 + 8];
            for l in 0..8 {
                a[l] += qc[l] * kc[l];
            }
        }
    }
    acc.map(|a| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])))
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
pub(crate) type HeadsKernel = fn(&Heads<'_>, &mut Vec<f32>, &mut [&mut [f32]]);

/// [`heads`] compiled for the baseline CPU.
pub(crate) fn heads_baseline(h: &Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]]) {
    heads(h, scores, outs);
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
        for (pos0, t) in [(0, 7), (5, 1), (40, 3), (0, 1), (3, 20)] {
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

    #[test]
    fn exp_is_within_two_ulp_of_the_library_s() {
        for i in 0..=87_000 {
            let x = -(i as f32) / 1000.0;
            let (got, want) = (exp(x), x.exp());
            let ulp = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulp <= 2 || (x < -86.0 && got < 1e-37), "exp({x}) = {got}, not {want} ({ulp} ulp)");
        }
    }
}
