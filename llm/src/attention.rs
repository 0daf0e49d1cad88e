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

/// Positions per key tile.
pub(crate) const LANES: usize = 16;
/// Key tiles scored together: independent sums, one per tile.
pub(crate) const TILES: usize = 4;
/// The cache grows by this many positions (whole groups of tiles).
const GROW: usize = LANES * TILES;

/// One layer's KV cache. Keys are kept in tiles of [`LANES`] positions,
/// each tile dimension-major (`[kvd][LANES]`), so a query's scores against
/// a tile are [`LANES`] lanes of one multiply-add per dimension, with no
/// sums across lanes. Values are position-major (`[pos][kvd]`): the
/// weighted sum adds whole rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cache {
    k: Vec<f32>,
    v: Vec<f32>,
    len: usize,
}

impl Cache {
    /// Appends `t` positions: `k` and `v` are `t × kvd`.
    pub(crate) fn push(&mut self, kvd: usize, k: &[f32], v: &[f32]) {
        let t = k.len() / kvd;
        let len = self.len + t;
        let room = len.div_ceil(GROW) * GROW * kvd;
        if self.k.len() < room {
            self.k.resize(room, 0.0);
        }
        for (i, key) in k.chunks_exact(kvd).enumerate() {
            let p = self.len + i;
            let tile = &mut self.k[(p / LANES) * kvd * LANES..][..kvd * LANES];
            for (c, &x) in key.iter().enumerate() {
                tile[c * LANES + p % LANES] = x;
            }
        }
        self.v.extend_from_slice(v);
        self.len = len;
    }
}

/// Attention of `t` query rows (`q`, `t × d`, rotated) at positions
/// `pos0..pos0 + t` over `cache` (this batch's keys and values already
/// pushed); writes `out` (`t × d`).
pub(crate) fn attend(s: Shape, q: &[f32], cache: &Cache, pos0: usize, out: &mut [f32]) {
    attend_with(crate::quant::attention_kernel(), s, q, cache, pos0, out);
}

/// [`attend`] with a given kernel (the tests run each one).
fn attend_with(kernel: HeadsKernel, s: Shape, q: &[f32], cache: &Cache, pos0: usize, out: &mut [f32]) {
    let (d, hd, group) = (s.d(), s.head_dim, s.group());
    let t = out.len() / d;
    debug_assert_eq!(cache.len, pos0 + t);
    // Below this much work (query heads × positions × head size) the pool's
    // overhead costs more than a second core gives.
    let parallel = t * s.n_head * (pos0 + t) * hd >= PARALLEL_WORK;
    if t == 1 {
        decode(s, q, cache, kernel, parallel, out);
        return;
    }
    // A block of query rows at a time: each key and value row read from
    // memory serves all their heads.
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
            let mut stats = vec![Stat::EMPTY; qs.len()];
            let to = pos0 + here + first;
            kernel(&Heads { shape: s, g, qs: &qs, ns: &ns, cache, from: 0, to }, scores, &mut os, &mut stats);
            for (o, st) in os.iter_mut().zip(&stats) {
                let inv = 1.0 / st.sum;
                o.iter_mut().for_each(|x| *x *= inv);
            }
        }
    };
    if parallel {
        out.par_chunks_mut(d * ROWS).enumerate().for_each_init(Vec::new, rows);
    } else {
        let mut scores = Vec::new();
        out.chunks_mut(d * ROWS).enumerate().for_each(|x| rows(&mut scores, x));
    }
}

/// One query: each KV head's query heads together, and when it pays the
/// positions split in pieces across the pool, merged by their maxima and
/// sums (each piece's softmax is relative to its own maximum).
fn decode(s: Shape, q: &[f32], cache: &Cache, kernel: HeadsKernel, parallel: bool, out: &mut [f32]) {
    let (hd, group) = (s.head_dim, s.group());
    let n = cache.len;
    let pieces = if parallel { rayon::current_num_threads().clamp(1, n.div_ceil(GROW)) } else { 1 };
    let per = n.div_ceil(pieces).div_ceil(GROW) * GROW;
    let jobs: Vec<(usize, usize)> =
        (0..s.n_head_kv).flat_map(|g| (0..n).step_by(per).map(move |from| (g, from))).collect();
    let run = |scores: &mut Vec<f32>, &(g, from): &(usize, usize)| {
        let qs: Vec<&[f32]> = (0..group).map(|j| &q[(g * group + j) * hd..(g * group + j + 1) * hd]).collect();
        let ns = vec![n; group];
        let mut o = vec![0.0f32; group * hd];
        let mut os: Vec<&mut [f32]> = o.chunks_mut(hd).collect();
        let mut stats = vec![Stat::EMPTY; group];
        let to = (from + per).min(n);
        kernel(&Heads { shape: s, g, qs: &qs, ns: &ns, cache, from, to }, scores, &mut os, &mut stats);
        (o, stats)
    };
    let parts: Vec<(Vec<f32>, Vec<Stat>)> = if jobs.len() > 1 && parallel {
        jobs.par_iter().map_init(Vec::new, run).collect()
    } else {
        let mut scores = Vec::new();
        jobs.iter().map(|j| run(&mut scores, j)).collect()
    };
    for (g, pieces) in parts.chunks(jobs.len() / s.n_head_kv).enumerate() {
        for j in 0..group {
            let o = &mut out[(g * group + j) * hd..(g * group + j + 1) * hd];
            let max = pieces.iter().map(|(_, st)| st[j].max).fold(f32::NEG_INFINITY, f32::max);
            o.fill(0.0);
            let mut sum = 0.0;
            for (po, st) in pieces {
                if st[j].sum == 0.0 {
                    continue;
                }
                let w = (st[j].max - max).exp();
                sum += st[j].sum * w;
                axpy(o, w, &po[j * hd..(j + 1) * hd]);
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// Query rows attended together.
const ROWS: usize = 8;

/// Work (multiply-adds per pass) from which attention is split across the
/// pool: measured on two cores, decoding at depth 0 to 2,048.
const PARALLEL_WORK: usize = 1 << 17;

/// One call of the kernel: the query heads `qs` that share KV head `g`,
/// each over positions `from..to` of the cache that are below its `ns[j]`.
/// `from` is a multiple of the cache's growth step.
pub(crate) struct Heads<'a> {
    pub(crate) shape: Shape,
    pub(crate) g: usize,
    pub(crate) qs: &'a [&'a [f32]],
    pub(crate) ns: &'a [usize],
    pub(crate) cache: &'a Cache,
    pub(crate) from: usize,
    pub(crate) to: usize,
}

/// A query's softmax over one range of positions: the largest score and
/// the sum of `e^(score - max)`. Its output is `Σ e^(score - max) · v`,
/// not yet divided by `sum`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) max: f32,
    pub(crate) sum: f32,
}

impl Stat {
    const EMPTY: Stat = Stat { max: f32::NEG_INFINITY, sum: 0.0 };
}

/// The two inner loops of [`heads`], per instruction set. A value of an
/// implementing type is the proof that this CPU can run them.
pub(crate) trait Inner: Copy {
    /// `out[b][l] = q · k`, `k` the key at lane `l` of tile `b` (each tile
    /// `[hd][LANES]`, `hd = q.len()`).
    fn score(self, q: &[f32], tiles: &[&[f32]; TILES], out: &mut [[f32; LANES]; TILES]);
    /// `outs[j] = Σ_{p < span} ws[j][p] · vs[p * kvd..][..hd]` for each of
    /// the (at most [`QV`]) rows `ws`, `hd = outs[j].len()`.
    fn weigh(self, vs: &[f32], kvd: usize, span: usize, ws: &[&[f32]], outs: &mut [&mut [f32]]);
}

/// The inner loops in plain Rust, written to vectorise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Inner for Portable {
    #[inline(always)]
    fn score(self, q: &[f32], tiles: &[&[f32]; TILES], out: &mut [[f32; LANES]; TILES]) {
        *out = [[0.0; LANES]; TILES];
        for (c, &qc) in q.iter().enumerate() {
            for (a, tile) in out.iter_mut().zip(tiles) {
                let Ok(kt) = <&[f32; LANES]>::try_from(&tile[c * LANES..c * LANES + LANES]) else { continue };
                for l in 0..LANES {
                    a[l] += qc * kt[l];
                }
            }
        }
    }

    #[inline(always)]
    fn weigh(self, vs: &[f32], kvd: usize, span: usize, ws: &[&[f32]], outs: &mut [&mut [f32]]) {
        let hd = outs.first().map_or(0, |o| o.len());
        match hd {
            _ if hd.is_multiple_of(16) => weigh_portable::<16>(vs, kvd, span, ws, outs),
            _ => weigh_portable::<1>(vs, kvd, span, ws, outs),
        }
    }
}

#[inline(always)]
fn weigh_portable<const W: usize>(vs: &[f32], kvd: usize, span: usize, ws: &[&[f32]], outs: &mut [&mut [f32]]) {
    let hd = outs.first().map_or(0, |o| o.len());
    for c0 in (0..hd).step_by(W) {
        let mut acc = [[0.0f32; W]; QV];
        for p in 0..span {
            let Ok(v) = <&[f32; W]>::try_from(&vs[p * kvd + c0..p * kvd + c0 + W]) else { continue };
            for (a, w) in acc.iter_mut().zip(ws) {
                let w = w[p];
                for l in 0..W {
                    a[l] += w * v[l];
                }
            }
        }
        for (o, a) in outs.iter_mut().zip(&acc) {
            o[c0..c0 + W].copy_from_slice(a);
        }
    }
}

/// For each query head `j` of `h`: `outs[j] = Σ_p e^(s_p - max) · v_p` and
/// `stats[j]`, where `s_p = q_j · k_p / √hd`. Keys are scored a group of
/// tiles at a time, values summed in registers for up to [`QV`] queries at
/// once. `scores` is scratch.
#[inline(always)]
pub(crate) fn heads<I: Inner>(
    inner: I,
    h: &Heads<'_>,
    scores: &mut Vec<f32>,
    outs: &mut [&mut [f32]],
    stats: &mut [Stat],
) {
    let Heads { shape: s, g, qs, ns, cache, from, to } = *h;
    let (hd, kvd) = (s.head_dim, s.kvd());
    debug_assert!(from.is_multiple_of(GROW) && to <= cache.len);
    let scale = 1.0 / (hd as f32).sqrt();
    let ends: Vec<usize> = ns.iter().map(|&n| n.min(to).max(from)).collect();
    let span = ends.iter().copied().max().unwrap_or(from) - from;
    let width = span.div_ceil(GROW) * GROW;
    scores.clear();
    scores.resize(qs.len() * width, 0.0);
    let mut acc = [[0.0f32; LANES]; TILES];
    for t0 in (from..from + span).step_by(GROW) {
        let tiles: [&[f32]; TILES] = std::array::from_fn(|b| {
            let at = (t0 / LANES + b) * kvd * LANES + g * hd * LANES;
            &cache.k[at..at + hd * LANES]
        });
        for (j, q) in qs.iter().enumerate() {
            if ends[j] <= t0 {
                continue;
            }
            inner.score(q, &tiles, &mut acc);
            let row = &mut scores[j * width + (t0 - from)..][..GROW];
            for (o, a) in row.chunks_exact_mut(LANES).zip(&acc) {
                for l in 0..LANES {
                    o[l] = a[l] * scale;
                }
            }
        }
    }
    for (j, st) in stats.iter_mut().enumerate() {
        let row = &mut scores[j * width..(j + 1) * width];
        let (valid, rest) = row.split_at_mut(ends[j] - from);
        *st = softmax_part(valid);
        rest.fill(0.0);
    }
    if span == 0 {
        outs.iter_mut().for_each(|o| o.fill(0.0));
        return;
    }
    let vs = &cache.v[from * kvd + g * hd..];
    let rows: Vec<&[f32]> = scores.chunks_exact(width).collect();
    for (ws, os) in rows.chunks(QV).zip(outs.chunks_mut(QV)) {
        inner.weigh(vs, kvd, span, ws, os);
    }
}

/// Queries whose value sums are kept in registers together.
pub(crate) const QV: usize = 4;

/// Softmax numerators in place, relative to the largest score: returns the
/// largest and the sum (an empty range gives [`Stat::EMPTY`]).
#[inline(always)]
fn softmax_part(x: &mut [f32]) -> Stat {
    if x.is_empty() {
        return Stat::EMPTY;
    }
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
    Stat { max, sum: acc.iter().sum::<f32>() + tail }
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

/// `o += s · v`.
#[inline(always)]
fn axpy(o: &mut [f32], s: f32, v: &[f32]) {
    for (a, b) in o.iter_mut().zip(v) {
        *a += s * b;
    }
}

/// The kernel's signature (see [`heads`]).
pub(crate) type HeadsKernel = fn(&Heads<'_>, &mut Vec<f32>, &mut [&mut [f32]], &mut [Stat]);

/// [`heads`] compiled for the baseline CPU.
pub(crate) fn heads_baseline(h: &Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]], stats: &mut [Stat]) {
    heads(Portable, h, scores, outs, stats);
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
        let noise = |n: usize, seed: u32| -> Vec<f32> {
            (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
        };
        // SmolLM2's shape; a head size of 48 (three vectors of sixteen) and
        // of 24 (no whole vector: the plain loops) with groups of five.
        let shapes = [
            Shape { n_head: 9, n_head_kv: 3, head_dim: 64 },
            Shape { n_head: 4, n_head_kv: 2, head_dim: 48 },
            Shape { n_head: 10, n_head_kv: 2, head_dim: 24 },
        ];
        let cases = [(0, 7), (5, 1), (40, 3), (0, 1), (3, 20), (70, 1), (130, 5), (0, 100), (3000, 1), (2900, 9)];
        for (s, (pos0, t)) in shapes.iter().flat_map(|&s| cases.map(|c| (s, c))) {
            let (d, kvd) = (s.d(), s.kvd());
            let total = pos0 + t;
            let (q, kc, vc) = (noise(t * d, 1), noise(total * kvd, 2), noise(total * kvd, 3));
            let want = reference(s, &q, &kc, &vc, pos0, t);
            let mut cache = Cache::default();
            cache.push(kvd, &kc[..pos0 * kvd], &vc[..pos0 * kvd]);
            cache.push(kvd, &kc[pos0 * kvd..], &vc[pos0 * kvd..]);
            for (name, kernel) in crate::quant::attention_kernels() {
                let mut got = vec![0.0; t * d];
                attend_with(kernel, s, &q, &cache, pos0, &mut got);
                for (a, b) in want.iter().zip(&got) {
                    assert!((a - b).abs() < 1e-4, "{name}: pos0 {pos0}, t {t}: {a} vs {b}");
                }
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
