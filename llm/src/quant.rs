//! Quantised weight matrices and the matrix-vector products of inference.
//!
//! Weights arrive as ggml blocks of 32 values (Q4_0, Q4_1, Q8_0; F32 and F16
//! matrices are requantised to Q8_0). At load they are repacked into a
//! struct-of-arrays layout: one f32 scale and one f32 offset per block, and
//! the packed quants contiguous, so the kernels never decode f16 in the hot
//! loop. Activations are quantised per block of 32 to i8 with an f32 scale
//! (ggml's Q8_1 idea), which turns every dot product into integer
//! multiply-adds:
//!
//! `row · x = Σ_blocks  d_w·d_x·Σ(q_w·q_x)  +  c_w·(d_x·Σ q_x)`
//!
//! where `c_w` is Q4_1's minimum, `-8·d_w` for Q4_0, and 0 for Q8_0.
//!
//! That is [`Precision::Int8`], what llama.cpp does. [`Precision::F32`]
//! keeps activations in f32 and converts the weight quants on the fly:
//! `row · x = Σ_blocks d_w·Σ(q_w·x) + c_w·Σx`. It is slower but matches a
//! float reference to rounding, which matters for a model as small as the
//! default one, whose top two tokens are often within a few hundredths.
//!
//! The AVX2 kernels (`avx2`) are used when the CPU has AVX2 and FMA; the
//! scalar kernels are the reference they are tested against. Batches of
//! f32 activations against 4-bit weights (prefill) take a matrix-matrix
//! product on AVX-512F where the CPU has it (`avx512`): panels of 48 rows
//! widened to floats once and reused for every token, so each fused
//! multiply-add does sixteen rows' work with no sums across lanes.

use half::f16;
use rayon::prelude::*;

use crate::gguf::TensorType;

/// Elements per quantisation block.
pub const BLOCK: usize = 32;

/// How a matrix's quants are packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 4-bit unsigned quants, two per byte (ggml order: low nibbles are
    /// elements 0..16 of the block, high nibbles 16..32).
    Nibbles,
    /// 8-bit signed quants.
    Bytes,
}

/// A quantised matrix, `rows` rows of `cols` weights, repacked for the kernels.
#[derive(Debug)]
pub struct QMatrix {
    pub rows: usize,
    pub cols: usize,
    kind: Kind,
    /// Per block: the scale `d_w`.
    d: Vec<f32>,
    /// Per block: the constant term `c_w` (see the module docs).
    c: Vec<f32>,
    qs: Vec<u8>,
}

/// Why a tensor cannot be used as a matrix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnsupportedTensor(pub String);

impl QMatrix {
    /// Repacks ggml data of type `ty` holding `rows` × `cols` weights.
    pub fn from_ggml(ty: TensorType, rows: usize, cols: usize, data: &[u8]) -> Result<Self, UnsupportedTensor> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(UnsupportedTensor(format!("row length {cols} is not a multiple of {BLOCK}")));
        }
        let blocks = rows * cols / BLOCK;
        let (block_elems, block_bytes) = ty.block_layout();
        if !cols.is_multiple_of(block_elems as usize) {
            return Err(UnsupportedTensor(format!("row length {cols} is not a multiple of the {ty} block")));
        }
        let expect = rows * cols / block_elems as usize * block_bytes as usize;
        if data.len() != expect {
            return Err(UnsupportedTensor(format!("holds {} bytes, expected {expect}", data.len())));
        }
        let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut m =
            QMatrix { rows, cols, kind: Kind::Nibbles, d: Vec::with_capacity(blocks), c: Vec::new(), qs: Vec::new() };
        m.c.reserve(blocks);
        match ty {
            TensorType::Q4_0 | TensorType::Q4_1 => {
                m.qs.reserve(blocks * 16);
                let step = if ty == TensorType::Q4_0 { 18 } else { 20 };
                for b in data.chunks_exact(step) {
                    let d = h(&b[0..2]);
                    let (c, qs) = if ty == TensorType::Q4_0 { (-8.0 * d, &b[2..18]) } else { (h(&b[2..4]), &b[4..20]) };
                    m.d.push(d);
                    m.c.push(c);
                    m.qs.extend_from_slice(qs);
                }
            }
            TensorType::Q8_0 => {
                m.kind = Kind::Bytes;
                m.qs.reserve(blocks * 32);
                for b in data.chunks_exact(34) {
                    m.d.push(h(&b[0..2]));
                    m.c.push(0.0);
                    m.qs.extend_from_slice(&b[2..34]);
                }
            }
            TensorType::F32 | TensorType::F16 => {
                let floats: Vec<f32> = if ty == TensorType::F32 {
                    data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                } else {
                    data.chunks_exact(2).map(h).collect()
                };
                m.kind = Kind::Bytes;
                m.qs.reserve(blocks * 32);
                for block in floats.chunks_exact(BLOCK) {
                    let (d, q) = quantize_block(block);
                    m.d.push(d);
                    m.c.push(0.0);
                    m.qs.extend(q.iter().map(|&v| v as u8));
                }
            }
            other if crate::dequant::supported(other) => {
                // No kernel of its own: requantise row by row to 8-bit blocks.
                m.kind = Kind::Bytes;
                m.qs.reserve(blocks * 32);
                let row_bytes = data.len() / rows.max(1);
                let mut floats = Vec::with_capacity(cols);
                for row in data.chunks_exact(row_bytes.max(1)) {
                    floats.clear();
                    crate::dequant::dequantize(other, row, &mut floats);
                    for block in floats.chunks_exact(BLOCK) {
                        let (d, q) = quantize_block(block);
                        m.d.push(d);
                        m.c.push(0.0);
                        m.qs.extend(q.iter().map(|&v| v as u8));
                    }
                }
            }
            other => {
                return Err(UnsupportedTensor(format!(
                    "tensor type {other} is not supported (alp runs Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K, \
                     F16, BF16 and F32 models)"
                )));
            }
        }
        Ok(m)
    }

    fn row_bytes(&self) -> usize {
        match self.kind {
            Kind::Nibbles => self.cols / 2,
            Kind::Bytes => self.cols,
        }
    }

    /// Dequantises row `r` into `out` (used for embedding lookups).
    pub fn row_to_f32(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / BLOCK;
        let rb = self.row_bytes();
        let qs = &self.qs[r * rb..(r + 1) * rb];
        for b in 0..nb {
            let (d, c) = (self.d[r * nb + b], self.c[r * nb + b]);
            let o = &mut out[b * BLOCK..(b + 1) * BLOCK];
            match self.kind {
                Kind::Nibbles => {
                    let q = &qs[b * 16..(b + 1) * 16];
                    for j in 0..16 {
                        o[j] = f32::from(q[j] & 0x0F) * d + c;
                        o[j + 16] = f32::from(q[j] >> 4) * d + c;
                    }
                }
                Kind::Bytes => {
                    for (j, &q) in qs[b * 32..(b + 1) * 32].iter().enumerate() {
                        o[j] = f32::from(q as i8) * d;
                    }
                }
            }
        }
    }

    /// `out[t * rows + r] = row_r · xs[t]` for every token `t` in the batch.
    /// Splits the rows across rayon's pool when the work is large enough to
    /// pay for it.
    pub fn matmul(&self, xs: &QActs, out: &mut [f32]) {
        let t = xs.len;
        assert_eq!(xs.cols, self.cols, "activation width");
        assert_eq!(out.len(), t * self.rows, "output size");
        #[cfg(target_arch = "x86_64")]
        if t >= GEMM_MIN_TOKENS && xs.precision == Precision::F32 && self.kind == Kind::Nibbles {
            if has_avx512() {
                return self.gemm(xs, out, avx512::PANEL, avx512::panel);
            }
            if has_avx2() {
                return self.gemm(xs, out, avx2::PANEL, avx2::panel);
            }
        }
        let kernel = kernel(xs.precision);
        let work = self.rows * self.cols * t;
        // Rows per task: enough work per task to amortise the scheduling.
        let chunk = if work < 1 << 18 { self.rows } else { (self.rows / 32).max(16) };
        if t == 1 {
            let run = |(i, o): (usize, &mut [f32])| {
                for (k, v) in o.iter_mut().enumerate() {
                    *v = kernel(self, i * chunk + k, xs, 0);
                }
            };
            if chunk >= self.rows {
                run((0, out));
            } else {
                out.par_chunks_mut(chunk).enumerate().for_each(run);
            }
            return;
        }
        // Batched: compute row-major by weight row (each row read once for
        // all tokens), then transpose into token-major order.
        let mut tmp = vec![0.0f32; t * self.rows];
        tmp.par_chunks_mut(chunk * t).enumerate().for_each(|(i, o)| {
            for (k, row_out) in o.chunks_exact_mut(t).enumerate() {
                for (tok, v) in row_out.iter_mut().enumerate() {
                    *v = kernel(self, i * chunk + k, xs, tok);
                }
            }
        });
        for r in 0..self.rows {
            for tok in 0..t {
                out[tok * self.rows + r] = tmp[r * t + tok];
            }
        }
    }
}

impl QMatrix {
    /// [`QMatrix::matmul`] for a batch of f32 activations: a panel of `pw`
    /// rows at a time is widened to floats once by `panel`, laid out so its
    /// kernel multiplies a register of rows by one broadcast activation per
    /// instruction (no sums across lanes), and reused for every token.
    /// Panels run in parallel; each writes its own columns of the result.
    #[cfg(target_arch = "x86_64")]
    fn gemm(&self, xs: &QActs, out: &mut [f32], pw: usize, panel: Panel) {
        let t = xs.len;
        let panels: Vec<Vec<f32>> = (0..self.rows.div_ceil(pw))
            .into_par_iter()
            .map_init(Vec::new, |wt, p| {
                let mut o = vec![0.0f32; t * pw];
                panel(self, p * pw, xs, wt, &mut o);
                o
            })
            .collect();
        out.par_chunks_mut(self.rows).enumerate().for_each(|(tok, row)| {
            for (p, o) in panels.iter().enumerate() {
                let r0 = p * pw;
                let n = pw.min(self.rows - r0);
                row[r0..r0 + n].copy_from_slice(&o[tok * pw..tok * pw + n]);
            }
        });
    }
}

/// Checks what a batched product's panel relies on (sizes by checked
/// products, so that a wrapped size cannot pass) and sizes `wt` for a panel
/// of `pw` rows. Both ISA modules' `panel` call it before any pointer loop.
#[cfg(target_arch = "x86_64")]
fn panel_sizes(m: &QMatrix, r0: usize, xs: &QActs, wt: &mut Vec<f32>, out: &[f32], pw: usize) {
    let (cols, t) = (m.cols, xs.len);
    assert!(m.kind == Kind::Nibbles && r0 < m.rows && cols.is_multiple_of(BLOCK), "a 4-bit panel inside the matrix");
    assert!(
        t.checked_mul(cols) == Some(xs.f.len()) && t.checked_mul(pw) == Some(out.len()),
        "activation and output sizes"
    );
    let weights = m.rows.checked_mul(cols);
    assert!(
        weights.is_some_and(|n| m.qs.len() == n / 2 && m.d.len() == n / BLOCK && m.c.len() == n / BLOCK),
        "matrix arrays"
    );
    // The gathers' offsets (sixteen rows of `cols / 2` bytes) are i32.
    assert!(cols / 2 * 16 <= i32::MAX as usize, "row length for the gathers");
    wt.clear();
    let size = cols.checked_mul(pw);
    assert!(size.is_some(), "panel size");
    wt.resize(size.unwrap_or(0), 0.0);
}

/// Checks what the attention's `weigh` kernels rely on; the head size if
/// it is a multiple of `lanes` (else the caller takes the portable loop).
#[cfg(target_arch = "x86_64")]
fn weigh_sizes(vs: &[f32], kvd: usize, span: usize, ws: &[&[f32]], outs: &[&mut [f32]], lanes: usize) -> Option<usize> {
    let hd = outs.first().map_or(0, |o| o.len());
    assert!(ws.len() <= crate::attention::QV, "at most QV rows of weights");
    if !hd.is_multiple_of(lanes) {
        return None;
    }
    let need = match span {
        0 => Some(0),
        s => (s - 1).checked_mul(kvd).and_then(|o| o.checked_add(hd)),
    };
    assert!(need.is_some_and(|n| vs.len() >= n), "value rows for the span");
    assert!(ws.iter().all(|w| w.len() >= span) && outs.iter().all(|o| o.len() == hd) && ws.len() == outs.len());
    Some(hd)
}

/// One panel of [`QMatrix::gemm`]: rows from `r0`, every token, into
/// `out` (`t × pw`), with scratch for the widened rows.
#[cfg(target_arch = "x86_64")]
type Panel = fn(&QMatrix, usize, &QActs, &mut Vec<f32>, &mut [f32]);

/// Batches from this many tokens take [`QMatrix::gemm`] where it exists.
const GEMM_MIN_TOKENS: usize = 4;

/// How activations enter the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 activations; weights converted in the kernel (the default).
    #[default]
    F32,
    /// Activations quantised to i8 per block, integer dot products.
    Int8,
}

/// A batch of activation vectors, prepared for the kernels of one
/// [`Precision`].
#[derive(Debug, Default)]
pub struct QActs {
    pub len: usize,
    pub cols: usize,
    pub precision: Precision,
    d: Vec<f32>,
    /// Per block: `Σ x` (F32) or `d · Σ q` (Int8).
    s: Vec<f32>,
    q: Vec<i8>,
    f: Vec<f32>,
}

impl QActs {
    /// Empty buffers for `precision`.
    pub fn new(precision: Precision) -> Self {
        QActs { precision, ..Default::default() }
    }

    /// Prepares `xs`, `len` vectors of `cols` floats laid end to end.
    pub fn quantize(&mut self, xs: &[f32], cols: usize) {
        debug_assert!(cols.is_multiple_of(BLOCK) && xs.len().is_multiple_of(cols));
        self.len = xs.len() / cols;
        self.cols = cols;
        self.d.clear();
        self.s.clear();
        self.q.clear();
        self.f.clear();
        if self.precision == Precision::F32 {
            self.f.extend_from_slice(xs);
            self.s.extend(xs.chunks_exact(BLOCK).map(|b| b.iter().sum::<f32>()));
            return;
        }
        for block in xs.chunks_exact(BLOCK) {
            let (d, q) = quantize_block(block);
            let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
            self.d.push(d);
            self.s.push(d * sum as f32);
            self.q.extend_from_slice(&q);
        }
    }
}

/// Symmetric 8-bit quantisation of one block: `x ≈ d · q`.
fn quantize_block(x: &[f32]) -> (f32, [i8; BLOCK]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; BLOCK];
    for (o, v) in q.iter_mut().zip(x) {
        *o = (v * id).round().clamp(-127.0, 127.0) as i8;
    }
    (d, q)
}

type Kernel = fn(&QMatrix, usize, &QActs, usize) -> f32;
/// Whether this CPU has AVX2 and FMA (checked once).
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static AVX2: OnceLock<bool> = OnceLock::new();
    #[cfg(target_arch = "x86_64")]
    return *AVX2.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"));
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Whether this CPU has AVX-512F (checked once).
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    use std::sync::OnceLock;
    static AVX512: OnceLock<bool> = OnceLock::new();
    *AVX512.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
}

/// Every attention kernel this CPU can run, by name (for the tests).
#[cfg(test)]
pub(crate) fn attention_kernels() -> Vec<(&'static str, crate::attention::HeadsKernel)> {
    #[allow(unused_mut)]
    let mut all: Vec<(&'static str, crate::attention::HeadsKernel)> =
        vec![("portable", crate::attention::heads_baseline)];
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            all.push(("avx2", avx2::heads));
        }
        if has_avx2() && has_avx512() {
            all.push(("avx512", avx512::heads));
        }
    }
    all
}

/// The attention kernel for this CPU (see `attention::heads`).
pub(crate) fn attention_kernel() -> crate::attention::HeadsKernel {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return if has_avx512() { avx512::heads } else { avx2::heads };
    }
    crate::attention::heads_baseline
}

fn kernel(p: Precision) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return match p {
            Precision::F32 => avx2::dot_f32,
            Precision::Int8 => avx2::dot,
        };
    }
    match p {
        Precision::F32 => dot_f32_scalar,
        Precision::Int8 => dot_scalar,
    }
}

/// The reference F32 kernel.
pub fn dot_f32_scalar(m: &QMatrix, r: usize, xs: &QActs, t: usize) -> f32 {
    let nb = m.cols / BLOCK;
    let rb = m.row_bytes();
    let qs = &m.qs[r * rb..(r + 1) * rb];
    let mut acc = 0.0f32;
    for b in 0..nb {
        let xb = t * nb + b;
        let x = &xs.f[xb * BLOCK..(xb + 1) * BLOCK];
        let mut sum = 0.0f32;
        match m.kind {
            Kind::Nibbles => {
                let q = &qs[b * 16..(b + 1) * 16];
                for j in 0..16 {
                    sum += f32::from(q[j] & 0x0F) * x[j] + f32::from(q[j] >> 4) * x[j + 16];
                }
            }
            Kind::Bytes => {
                for (w, v) in qs[b * 32..(b + 1) * 32].iter().zip(x) {
                    sum += f32::from(*w as i8) * v;
                }
            }
        }
        let wb = r * nb + b;
        acc += m.d[wb] * sum + m.c[wb] * xs.s[xb];
    }
    acc
}

/// The reference kernel: row `r` of `m` times activation vector `t` of `xs`.
pub fn dot_scalar(m: &QMatrix, r: usize, xs: &QActs, t: usize) -> f32 {
    let nb = m.cols / BLOCK;
    let rb = m.row_bytes();
    let qs = &m.qs[r * rb..(r + 1) * rb];
    let mut acc = 0.0f32;
    for b in 0..nb {
        let xb = t * nb + b;
        let xq = &xs.q[xb * BLOCK..(xb + 1) * BLOCK];
        let mut isum = 0i32;
        match m.kind {
            Kind::Nibbles => {
                let q = &qs[b * 16..(b + 1) * 16];
                for j in 0..16 {
                    isum += i32::from(q[j] & 0x0F) * i32::from(xq[j]);
                    isum += i32::from(q[j] >> 4) * i32::from(xq[j + 16]);
                }
            }
            Kind::Bytes => {
                for (w, x) in qs[b * 32..(b + 1) * 32].iter().zip(xq) {
                    isum += i32::from(*w as i8) * i32::from(*x);
                }
            }
        }
        let wb = r * nb + b;
        acc += m.d[wb] * xs.d[xb] * isum as f32 + m.c[wb] * xs.s[xb];
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, clippy::needless_range_loop)]
mod avx2 {
    //! AVX2 + FMA versions of [`super::dot_scalar`]. Only selected after
    //! runtime detection of both features.
    use super::{BLOCK, Kind, QActs, QMatrix};
    use crate::attention::{Heads, Inner, LANES, QV, Stat, TILES};
    use std::arch::x86_64::*;

    pub(super) fn dot(m: &QMatrix, r: usize, xs: &QActs, t: usize) -> f32 {
        let nb = m.cols / BLOCK;
        let rb = m.row_bytes();
        // Bounds are checked here, once, so the kernel can read blocks by
        // pointer without further checks.
        let qs = &m.qs[r * rb..(r + 1) * rb];
        let (wd, wc) = (&m.d[r * nb..(r + 1) * nb], &m.c[r * nb..(r + 1) * nb]);
        let xq = &xs.q[t * nb * BLOCK..(t + 1) * nb * BLOCK];
        let (xd, xsum) = (&xs.d[t * nb..(t + 1) * nb], &xs.s[t * nb..(t + 1) * nb]);
        // SAFETY: `kernel()` selects this function only when AVX2 and FMA
        // were detected at run time; the slices above have exactly `nb`
        // blocks each, which is all the inner functions read.
        unsafe {
            match m.kind {
                Kind::Nibbles => nibbles(nb, qs, wd, wc, xq, xd, xsum),
                Kind::Bytes => bytes(nb, qs, wd, xq, xd),
            }
        }
    }

    /// `attention::heads`, compiled for AVX2 and FMA.
    pub(super) fn heads(h: &Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]], stats: &mut [Stat]) {
        assert!(super::has_avx2(), "the CPU runs these kernels");
        // SAFETY: AVX2 and FMA were detected (asserted above); the code
        // inside is safe Rust, only compiled for them.
        unsafe { heads_avx2(h, scores, outs, stats) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn heads_avx2(h: &Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]], stats: &mut [Stat]) {
        crate::attention::heads(Ymm(()), h, scores, outs, stats);
    }

    /// The attention's inner loops in AVX2 registers. Only `heads` above
    /// makes one, after the features were detected.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Ymm(());

    impl Inner for Ymm {
        #[inline(always)]
        fn score(self, q: &[f32], tiles: &[&[f32]; TILES], out: &mut [[f32; LANES]; TILES]) {
            let hd = q.len();
            assert!(tiles.iter().all(|t| t.len() >= hd * LANES), "key tiles of the head's size");
            // SAFETY: a `Ymm` exists only once AVX2 and FMA were detected;
            // each tile holds `hd` rows of sixteen, asserted above.
            unsafe { score(q, tiles, out) }
        }

        #[inline(always)]
        fn weigh(self, vs: &[f32], kvd: usize, span: usize, ws: &[&[f32]], outs: &mut [&mut [f32]]) {
            let Some(hd) = super::weigh_sizes(vs, kvd, span, ws, outs, 8) else {
                return crate::attention::Portable.weigh(vs, kvd, span, ws, outs);
            };
            // SAFETY: as in `score`; sizes asserted above.
            unsafe {
                for c0 in (0..hd).step_by(24) {
                    match (hd - c0).min(24) / 8 {
                        3 => weigh::<3>(vs, kvd, span, ws, outs, c0),
                        2 => weigh::<2>(vs, kvd, span, ws, outs, c0),
                        _ => weigh::<1>(vs, kvd, span, ws, outs, c0),
                    }
                }
            }
        }
    }

    /// Rows per panel of the batched product: three registers of eight.
    pub(super) const PANEL: usize = 24;
    /// Tokens per tile: with three registers per token, 12 accumulators.
    const TILE: usize = 4;

    /// `out[tok * PANEL + i] = row_{r0 + i} · x_tok` for the panel's rows
    /// that exist (the rest are zero). `wt` is scratch for the widened panel.
    pub(super) fn panel(m: &QMatrix, r0: usize, xs: &QActs, wt: &mut Vec<f32>, out: &mut [f32]) {
        let (cols, t) = (m.cols, xs.len);
        assert!(super::has_avx2(), "the CPU runs these kernels");
        super::panel_sizes(m, r0, xs, wt, out, PANEL);
        // SAFETY: `gemm` selects this path only when AVX2 and FMA were
        // detected at run time; `panel_sizes` asserted the sizes they rely on.
        unsafe {
            widen(m, r0, wt);
            product(wt, &xs.f, cols, t, out);
        }
    }

    /// Widens rows `r0..r0 + PANEL` (those that exist) into `wt`, column
    /// by column: `wt[k * PANEL + i] = w[r0 + i][k]`. Eight rows' bytes at a
    /// time are gathered, four bytes (eight weights) from each.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn widen(m: &QMatrix, r0: usize, wt: &mut [f32]) {
        let nb = m.cols / BLOCK;
        let rb = m.cols / 2;
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let by_row = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(rb as i32));
        let by_block = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(nb as i32));
        let nibble = _mm256_set1_epi32(0x0F);
        for g in 0..PANEL / 8 {
            let first = r0 + g * 8;
            if first >= m.rows {
                break;
            }
            let here = (m.rows - first).min(8) as i32;
            // A lane takes part when its sign bit is set.
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(here), lanes);
            // SAFETY: row `first` exists, so these point into the arrays;
            // every gathered lane is a row below `first + here <= rows`,
            // and the offsets within a row stay below `rb` (`nb` for the
            // scales): the last byte read is `(nb - 1) * 16 + 15 = rb - 1`.
            unsafe {
                let (qp, dp, cp) =
                    (m.qs.as_ptr().add(first * rb), m.d.as_ptr().add(first * nb), m.c.as_ptr().add(first * nb));
                let fmask = _mm256_castsi256_ps(mask);
                for b in 0..nb {
                    let d = _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), dp.add(b), by_block, fmask);
                    let c = _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), cp.add(b), by_block, fmask);
                    let col = wt.as_mut_ptr().add(b * BLOCK * PANEL + g * 8);
                    for w in 0..4 {
                        let four = _mm256_mask_i32gather_epi32::<1>(
                            _mm256_setzero_si256(),
                            qp.add(b * 16 + w * 4).cast(),
                            by_row,
                            mask,
                        );
                        let bytes = [
                            four,
                            _mm256_srli_epi32::<8>(four),
                            _mm256_srli_epi32::<16>(four),
                            _mm256_srli_epi32::<24>(four),
                        ];
                        for (i, v) in bytes.into_iter().enumerate() {
                            // Byte j of a block: element j (low nibble), j + 16 (high).
                            let j = w * 4 + i;
                            let lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, nibble));
                            let hi = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32::<4>(v), nibble));
                            _mm256_storeu_ps(col.add(j * PANEL), _mm256_fmadd_ps(lo, d, c));
                            _mm256_storeu_ps(col.add((j + 16) * PANEL), _mm256_fmadd_ps(hi, d, c));
                        }
                    }
                }
            }
        }
    }

    /// `out[tok * PANEL..][..PANEL] = wt^T · x_tok` for every token.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn product(wt: &[f32], x: &[f32], cols: usize, t: usize, out: &mut [f32]) {
        let mut tok = 0;
        // SAFETY (each call): sizes asserted in `panel`; tiles stay below `t`.
        while tok + TILE <= t {
            unsafe { tile::<TILE>(wt, x, cols, tok, out) };
            tok += TILE;
        }
        unsafe {
            match t - tok {
                1 => tile::<1>(wt, x, cols, tok, out),
                2 => tile::<2>(wt, x, cols, tok, out),
                3 => tile::<3>(wt, x, cols, tok, out),
                _ => {}
            }
        }
    }

    /// Tokens `tok..tok + N` against the whole panel, accumulators in
    /// registers.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const N: usize>(wt: &[f32], x: &[f32], cols: usize, tok: usize, out: &mut [f32]) {
        debug_assert!(wt.len() == cols * PANEL && x.len() >= (tok + N) * cols && out.len() >= (tok + N) * PANEL);
        let mut acc = [[_mm256_setzero_ps(); 3]; N];
        // SAFETY: the caller keeps `tok + N` within the batch, and `wt`
        // holds `cols` columns of `PANEL` floats.
        unsafe {
            let xp = x.as_ptr().add(tok * cols);
            for k in 0..cols {
                let wp = wt.as_ptr().add(k * PANEL);
                let w = [_mm256_loadu_ps(wp), _mm256_loadu_ps(wp.add(8)), _mm256_loadu_ps(wp.add(16))];
                for (i, a) in acc.iter_mut().enumerate() {
                    let xb = _mm256_set1_ps(*xp.add(i * cols + k));
                    for v in 0..3 {
                        a[v] = _mm256_fmadd_ps(xb, w[v], a[v]);
                    }
                }
            }
            let op = out.as_mut_ptr().add(tok * PANEL);
            for (i, a) in acc.iter().enumerate() {
                for v in 0..3 {
                    _mm256_storeu_ps(op.add(i * PANEL + v * 8), a[v]);
                }
            }
        }
    }

    /// Four tiles' scores, two registers of eight lanes each: eight
    /// multiply-adds in flight.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn score(q: &[f32], tiles: &[&[f32]; TILES], out: &mut [[f32; LANES]; TILES]) {
        let mut acc = [[_mm256_setzero_ps(); 2]; TILES];
        // SAFETY: the caller checked that every tile holds `hd * LANES` floats.
        unsafe {
            for (c, &qc) in q.iter().enumerate() {
                let qb = _mm256_set1_ps(qc);
                for b in 0..TILES {
                    let kp = tiles[b].as_ptr().add(c * LANES);
                    acc[b][0] = _mm256_fmadd_ps(qb, _mm256_loadu_ps(kp), acc[b][0]);
                    acc[b][1] = _mm256_fmadd_ps(qb, _mm256_loadu_ps(kp.add(8)), acc[b][1]);
                }
            }
            for b in 0..TILES {
                _mm256_storeu_ps(out[b].as_mut_ptr(), acc[b][0]);
                _mm256_storeu_ps(out[b].as_mut_ptr().add(8), acc[b][1]);
            }
        }
    }

    /// `NZ` registers of dimensions from `c0`, for up to four rows of
    /// weights at once, the sums in registers.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weigh<const NZ: usize>(
        vs: &[f32],
        kvd: usize,
        span: usize,
        ws: &[&[f32]],
        outs: &mut [&mut [f32]],
        c0: usize,
    ) {
        let n = ws.len();
        let mut acc = [[_mm256_setzero_ps(); NZ]; QV];
        // SAFETY: the caller checked the value rows and weight rows cover
        // `span`, and that `c0 + 8 * NZ <= hd`.
        unsafe {
            for p in 0..span {
                let vp = vs.as_ptr().add(p * kvd + c0);
                let v: [__m256; NZ] = std::array::from_fn(|z| _mm256_loadu_ps(vp.add(z * 8)));
                for j in 0..QV {
                    if j < n {
                        let w = _mm256_set1_ps(*ws[j].get_unchecked(p));
                        for z in 0..NZ {
                            acc[j][z] = _mm256_fmadd_ps(w, v[z], acc[j][z]);
                        }
                    }
                }
            }
            for (o, a) in outs.iter_mut().zip(&acc) {
                for z in 0..NZ {
                    _mm256_storeu_ps(o.as_mut_ptr().add(c0 + z * 8), a[z]);
                }
            }
        }
    }

    pub(super) fn dot_f32(m: &QMatrix, r: usize, xs: &QActs, t: usize) -> f32 {
        let nb = m.cols / BLOCK;
        let rb = m.row_bytes();
        let qs = &m.qs[r * rb..(r + 1) * rb];
        let (wd, wc) = (&m.d[r * nb..(r + 1) * nb], &m.c[r * nb..(r + 1) * nb]);
        let x = &xs.f[t * nb * BLOCK..(t + 1) * nb * BLOCK];
        let xsum = &xs.s[t * nb..(t + 1) * nb];
        // SAFETY: as in `dot`: features detected, slices hold `nb` blocks.
        unsafe {
            match m.kind {
                Kind::Nibbles => nibbles_f32(nb, qs, wd, wc, x, xsum),
                Kind::Bytes => bytes_f32(nb, qs, wd, x),
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles_f32(nb: usize, qs: &[u8], wd: &[f32], wc: &[f32], x: &[f32], xsum: &[f32]) -> f32 {
        let mask = _mm_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        let mut extra = 0.0f32;
        for b in 0..nb {
            // SAFETY: qs holds nb*16 bytes and x nb*32 floats, checked by `dot_f32`.
            let (packed, x0, x1, x2, x3) = unsafe {
                let xp = x.as_ptr().add(b * 32);
                (
                    _mm_loadu_si128(qs.as_ptr().add(b * 16).cast()),
                    _mm256_loadu_ps(xp),
                    _mm256_loadu_ps(xp.add(8)),
                    _mm256_loadu_ps(xp.add(16)),
                    _mm256_loadu_ps(xp.add(24)),
                )
            };
            let lo = _mm_and_si128(packed, mask);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), mask);
            let w = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
            let mut s = _mm256_mul_ps(w(lo), x0);
            s = _mm256_fmadd_ps(w(_mm_srli_si128::<8>(lo)), x1, s);
            s = _mm256_fmadd_ps(w(hi), x2, s);
            s = _mm256_fmadd_ps(w(_mm_srli_si128::<8>(hi)), x3, s);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wd[b]), s, acc);
            extra += wc[b] * xsum[b];
        }
        // SAFETY: AVX2 is enabled in this function.
        unsafe { hsum(acc) + extra }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn bytes_f32(nb: usize, qs: &[u8], wd: &[f32], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for b in 0..nb {
            let mut s = _mm256_setzero_ps();
            for k in 0..4 {
                // SAFETY: qs holds nb*32 bytes and x nb*32 floats, checked by `dot_f32`.
                let (w, xv) = unsafe {
                    (
                        _mm_loadl_epi64(qs.as_ptr().add(b * 32 + k * 8).cast()),
                        _mm256_loadu_ps(x.as_ptr().add(b * 32 + k * 8)),
                    )
                };
                s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(w)), xv, s);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wd[b]), s, acc);
        }
        // SAFETY: AVX2 is enabled in this function.
        unsafe { hsum(acc) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles(nb: usize, qs: &[u8], wd: &[f32], wc: &[f32], xq: &[i8], xd: &[f32], xs: &[f32]) -> f32 {
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut extra = 0.0f32;
        for b in 0..nb {
            // SAFETY: qs holds nb*16 bytes and xq nb*32, checked by `dot`.
            let (packed, x) = unsafe {
                (_mm_loadu_si128(qs.as_ptr().add(b * 16).cast()), _mm256_loadu_si256(xq.as_ptr().add(b * 32).cast()))
            };
            let lo = _mm_and_si128(packed, mask);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), mask);
            let w = _mm256_set_m128i(hi, lo);
            // u8 (0..15) × i8 → adjacent pairs summed to i16, no overflow.
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wd[b] * xd[b]), _mm256_cvtepi32_ps(p), acc);
            extra += wc[b] * xs[b];
        }
        // SAFETY: AVX2 is enabled in this function.
        unsafe { hsum(acc) + extra }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn bytes(nb: usize, qs: &[u8], wd: &[f32], xq: &[i8], xd: &[f32]) -> f32 {
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for b in 0..nb {
            // SAFETY: qs and xq hold nb*32 bytes each, checked by `dot`.
            let (w, x) = unsafe {
                (_mm256_loadu_si256(qs.as_ptr().add(b * 32).cast()), _mm256_loadu_si256(xq.as_ptr().add(b * 32).cast()))
            };
            // i8 × i8 via |w| × sign(x, w), as maddubs needs one unsigned side.
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
            let p = _mm256_madd_epi16(p, ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wd[b] * xd[b]), _mm256_cvtepi32_ps(p), acc);
        }
        // SAFETY: AVX2 is enabled in this function.
        unsafe { hsum(acc) }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, clippy::needless_range_loop)]
mod avx512 {
    //! The batched product of 4-bit weights and f32 activations on
    //! AVX-512F. Only selected after runtime detection.
    use super::{BLOCK, QActs, QMatrix};
    use crate::attention::{Heads, Inner, LANES, QV, Stat, TILES};
    use std::arch::x86_64::*;

    /// `attention::heads`, compiled for AVX-512F (sixteen-lane tiles in
    /// one register).
    pub(super) fn heads(h: &Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]], stats: &mut [Stat]) {
        assert!(super::has_avx2() && super::has_avx512(), "the CPU runs these kernels");
        // SAFETY: AVX-512F, AVX2 and FMA were detected (asserted above);
        // the code inside is safe Rust, only compiled for them.
        unsafe { heads_avx512(h, scores, outs, stats) }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn heads_avx512(h: &Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]], stats: &mut [Stat]) {
        crate::attention::heads(Zmm(()), h, scores, outs, stats);
    }

    /// The attention's inner loops in AVX-512 registers. Only `heads`
    /// above makes one, after the features were detected.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Zmm(());

    impl Inner for Zmm {
        #[inline(always)]
        fn score(self, q: &[f32], tiles: &[&[f32]; TILES], out: &mut [[f32; LANES]; TILES]) {
            let hd = q.len();
            assert!(tiles.iter().all(|t| t.len() >= hd * LANES), "key tiles of the head's size");
            // SAFETY: a `Zmm` exists only once AVX-512F was detected; each
            // tile holds `hd` rows of sixteen, asserted above.
            unsafe { score(q, tiles, out) }
        }

        #[inline(always)]
        fn weigh(self, vs: &[f32], kvd: usize, span: usize, ws: &[&[f32]], outs: &mut [&mut [f32]]) {
            let Some(hd) = super::weigh_sizes(vs, kvd, span, ws, outs, 16) else {
                return crate::attention::Portable.weigh(vs, kvd, span, ws, outs);
            };
            // SAFETY: as in `score`; sizes asserted above.
            unsafe {
                for c0 in (0..hd).step_by(64) {
                    match (hd - c0).min(64) / 16 {
                        4 => weigh::<4>(vs, kvd, span, ws, outs, c0),
                        3 => weigh::<3>(vs, kvd, span, ws, outs, c0),
                        2 => weigh::<2>(vs, kvd, span, ws, outs, c0),
                        _ => weigh::<1>(vs, kvd, span, ws, outs, c0),
                    }
                }
            }
        }
    }

    /// Four tiles' scores, with two sums per tile (even and odd
    /// dimensions) so eight multiply-adds are in flight.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn score(q: &[f32], tiles: &[&[f32]; TILES], out: &mut [[f32; LANES]; TILES]) {
        let hd = q.len();
        let mut even = [_mm512_setzero_ps(); TILES];
        let mut odd = [_mm512_setzero_ps(); TILES];
        let mut c = 0;
        // SAFETY: the caller checked that every tile holds `hd * LANES` floats.
        unsafe {
            while c + 2 <= hd {
                let (q0, q1) = (_mm512_set1_ps(q[c]), _mm512_set1_ps(q[c + 1]));
                for b in 0..TILES {
                    let kp = tiles[b].as_ptr().add(c * LANES);
                    even[b] = _mm512_fmadd_ps(q0, _mm512_loadu_ps(kp), even[b]);
                    odd[b] = _mm512_fmadd_ps(q1, _mm512_loadu_ps(kp.add(LANES)), odd[b]);
                }
                c += 2;
            }
            if c < hd {
                let q0 = _mm512_set1_ps(q[c]);
                for b in 0..TILES {
                    even[b] = _mm512_fmadd_ps(q0, _mm512_loadu_ps(tiles[b].as_ptr().add(c * LANES)), even[b]);
                }
            }
            for b in 0..TILES {
                _mm512_storeu_ps(out[b].as_mut_ptr(), _mm512_add_ps(even[b], odd[b]));
            }
        }
    }

    /// `NZ` vectors of dimensions from `c0`, for up to four rows of
    /// weights at once, the sums in registers.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn weigh<const NZ: usize>(
        vs: &[f32],
        kvd: usize,
        span: usize,
        ws: &[&[f32]],
        outs: &mut [&mut [f32]],
        c0: usize,
    ) {
        let n = ws.len();
        let mut acc = [[_mm512_setzero_ps(); NZ]; QV];
        // SAFETY: the caller checked the value rows and weight rows cover
        // `span`, and that `c0 + 16 * NZ <= hd`.
        unsafe {
            for p in 0..span {
                let vp = vs.as_ptr().add(p * kvd + c0);
                let v: [__m512; NZ] = std::array::from_fn(|z| _mm512_loadu_ps(vp.add(z * 16)));
                for j in 0..QV {
                    if j < n {
                        let w = _mm512_set1_ps(*ws[j].get_unchecked(p));
                        for z in 0..NZ {
                            acc[j][z] = _mm512_fmadd_ps(w, v[z], acc[j][z]);
                        }
                    }
                }
            }
            for (o, a) in outs.iter_mut().zip(&acc) {
                for z in 0..NZ {
                    _mm512_storeu_ps(o.as_mut_ptr().add(c0 + z * 16), a[z]);
                }
            }
        }
    }

    /// Rows per panel: three vectors of sixteen.
    pub(super) const PANEL: usize = 48;
    /// Tokens per tile: with three vectors per token, 24 accumulators.
    const TILE: usize = 8;

    /// `out[tok * PANEL + i] = row_{r0 + i} · x_tok` for the panel's rows
    /// that exist (the rest are zero). `wt` is scratch for the widened panel.
    pub(super) fn panel(m: &QMatrix, r0: usize, xs: &QActs, wt: &mut Vec<f32>, out: &mut [f32]) {
        let (cols, t) = (m.cols, xs.len);
        assert!(super::has_avx512(), "the CPU runs these kernels");
        super::panel_sizes(m, r0, xs, wt, out, PANEL);
        // SAFETY: `gemm` selects this path only when AVX-512F was detected
        // at run time; `panel_sizes` asserted the sizes they rely on.
        unsafe {
            widen(m, r0, wt);
            product(wt, &xs.f, cols, t, out);
        }
    }

    /// Widens rows `r0..r0 + PANEL` (those that exist) into `wt`, column
    /// by column: `wt[k * PANEL + i] = w[r0 + i][k]`. Sixteen rows' bytes
    /// at a time are gathered, four bytes (eight weights) from each.
    #[target_feature(enable = "avx512f")]
    unsafe fn widen(m: &QMatrix, r0: usize, wt: &mut [f32]) {
        let nb = m.cols / BLOCK;
        let rb = m.cols / 2;
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let by_row = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(rb as i32));
        let by_block = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(nb as i32));
        let nibble = _mm512_set1_epi32(0x0F);
        let zero = _mm512_setzero_si512();
        for g in 0..PANEL / 16 {
            let first = r0 + g * 16;
            if first >= m.rows {
                break;
            }
            let here = (m.rows - first).min(16);
            let mask: __mmask16 = if here == 16 { 0xFFFF } else { (1u16 << here) - 1 };
            // SAFETY: row `first` exists, so these point into the arrays;
            // every gathered lane is a row below `first + here <= rows`,
            // and the offsets within a row stay below `rb` (`nb` for the
            // scales): the last byte read is `(nb - 1) * 16 + 15 = rb - 1`.
            unsafe {
                let (qp, dp, cp) =
                    (m.qs.as_ptr().add(first * rb), m.d.as_ptr().add(first * nb), m.c.as_ptr().add(first * nb));
                for b in 0..nb {
                    let d = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, by_block, dp.add(b).cast());
                    let c = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, by_block, cp.add(b).cast());
                    let col = wt.as_mut_ptr().add(b * BLOCK * PANEL + g * 16);
                    for w in 0..4 {
                        let four = _mm512_mask_i32gather_epi32::<1>(zero, mask, by_row, qp.add(b * 16 + w * 4).cast());
                        let bytes = [
                            four,
                            _mm512_srli_epi32::<8>(four),
                            _mm512_srli_epi32::<16>(four),
                            _mm512_srli_epi32::<24>(four),
                        ];
                        for (i, v) in bytes.into_iter().enumerate() {
                            // Byte j of a block: element j (low nibble), j + 16 (high).
                            let j = w * 4 + i;
                            let lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, nibble));
                            let hi = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32::<4>(v), nibble));
                            _mm512_storeu_ps(col.add(j * PANEL), _mm512_fmadd_ps(lo, d, c));
                            _mm512_storeu_ps(col.add((j + 16) * PANEL), _mm512_fmadd_ps(hi, d, c));
                        }
                    }
                }
            }
        }
    }

    /// `out[tok * PANEL..][..PANEL] = wt^T · x_tok` for every token.
    #[target_feature(enable = "avx512f")]
    unsafe fn product(wt: &[f32], x: &[f32], cols: usize, t: usize, out: &mut [f32]) {
        let mut tok = 0;
        // SAFETY (each call): sizes asserted in `panel`; tiles stay below `t`.
        while tok + TILE <= t {
            unsafe { tile::<TILE>(wt, x, cols, tok, out) };
            tok += TILE;
        }
        unsafe {
            match t - tok {
                1 => tile::<1>(wt, x, cols, tok, out),
                2 => tile::<2>(wt, x, cols, tok, out),
                3 => tile::<3>(wt, x, cols, tok, out),
                4 => tile::<4>(wt, x, cols, tok, out),
                5 => tile::<5>(wt, x, cols, tok, out),
                6 => tile::<6>(wt, x, cols, tok, out),
                7 => tile::<7>(wt, x, cols, tok, out),
                _ => {}
            }
        }
    }

    /// Tokens `tok..tok + N` against the whole panel, accumulators in
    /// registers: per column, three loads of weights, `N` broadcasts and
    /// `3N` fused multiply-adds.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const N: usize>(wt: &[f32], x: &[f32], cols: usize, tok: usize, out: &mut [f32]) {
        debug_assert!(wt.len() == cols * PANEL && x.len() >= (tok + N) * cols && out.len() >= (tok + N) * PANEL);
        let mut acc = [[_mm512_setzero_ps(); 3]; N];
        // SAFETY: the caller keeps `tok + N` within the batch, and `wt`
        // holds `cols` columns of `PANEL` floats.
        unsafe {
            let xp = x.as_ptr().add(tok * cols);
            for k in 0..cols {
                let wp = wt.as_ptr().add(k * PANEL);
                let w = [_mm512_loadu_ps(wp), _mm512_loadu_ps(wp.add(16)), _mm512_loadu_ps(wp.add(32))];
                for (i, a) in acc.iter_mut().enumerate() {
                    let xb = _mm512_set1_ps(*xp.add(i * cols + k));
                    for v in 0..3 {
                        a[v] = _mm512_fmadd_ps(xb, w[v], a[v]);
                    }
                }
            }
            let op = out.as_mut_ptr().add(tok * PANEL);
            for (i, a) in acc.iter().enumerate() {
                for v in 0..3 {
                    _mm512_storeu_ps(op.add(i * PANEL + v * 16), a[v]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f16b(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    fn matrix(ty: TensorType, rows: usize, cols: usize, seed: u64) -> (QMatrix, Vec<f32>) {
        let mut rng = seed;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as u32
        };
        let mut data = Vec::new();
        for _ in 0..rows * cols / BLOCK {
            let d = (next() % 1000) as f32 / 20000.0;
            match ty {
                TensorType::Q4_1 => {
                    data.extend(f16b(d));
                    data.extend(f16b(-((next() % 100) as f32) / 1000.0));
                    data.extend((0..16).map(|_| next() as u8));
                }
                TensorType::Q4_0 => {
                    data.extend(f16b(d));
                    data.extend((0..16).map(|_| next() as u8));
                }
                TensorType::Q8_0 => {
                    data.extend(f16b(d));
                    data.extend((0..32).map(|_| (next() as u8).max(1)));
                }
                _ => unreachable!(),
            }
        }
        let m = QMatrix::from_ggml(ty, rows, cols, &data).unwrap();
        let mut dense = vec![0.0; rows * cols];
        for r in 0..rows {
            m.row_to_f32(r, &mut dense[r * cols..(r + 1) * cols]);
        }
        (m, dense)
    }

    #[test]
    fn q4_1_layout_follows_ggml() {
        // d = 1, m = 0.5, byte j holds element j (low) and j + 16 (high).
        let mut data = Vec::new();
        data.extend(f16b(1.0));
        data.extend(f16b(0.5));
        data.extend((0..16u8).map(|j| (15 - j) << 4 | j));
        let m = QMatrix::from_ggml(TensorType::Q4_1, 1, 32, &data).unwrap();
        let mut row = [0.0; 32];
        m.row_to_f32(0, &mut row);
        for j in 0..16 {
            assert_eq!(row[j], j as f32 + 0.5);
            assert_eq!(row[j + 16], (15 - j) as f32 + 0.5);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The kernel in use (AVX2 here) equals the scalar reference, and
        /// both approximate the dense product.
        #[test]
        fn kernels_agree(
            seed in any::<u64>(),
            ty in prop::sample::select(vec![TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0]),
            precision in prop::sample::select(vec![Precision::F32, Precision::Int8]),
            t in 1usize..11,
        ) {
            let (rows, cols) = (8, 96);
            let (m, dense) = matrix(ty, rows, cols, seed);
            let x: Vec<f32> = (0..t * cols).map(|i| (((i as u64 * 2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0).collect();
            let mut xs = QActs::new(precision);
            xs.quantize(&x, cols);
            let reference_kernel = match precision { Precision::F32 => dot_f32_scalar, Precision::Int8 => dot_scalar };
            let tolerance = match precision { Precision::F32 => 1e-4, Precision::Int8 => 0.02 };
            let mut out = vec![0.0; t * rows];
            m.matmul(&xs, &mut out);
            for tok in 0..t {
                for r in 0..rows {
                    let reference = reference_kernel(&m, r, &xs, tok);
                    let got = out[tok * rows + r];
                    prop_assert!((got - reference).abs() <= 1e-3 * (1.0 + reference.abs()), "{got} vs {reference}");
                    let exact: f32 = (0..cols).map(|c| dense[r * cols + c] * x[tok * cols + c]).sum();
                    let scale: f32 = (0..cols).map(|c| (dense[r * cols + c] * x[tok * cols + c]).abs()).sum();
                    prop_assert!((reference - exact).abs() <= tolerance * scale + 1e-4, "{reference} vs exact {exact}");
                }
            }
        }
    }

    /// `m · xs` by `matmul` and by each batched product this CPU can run.
    fn products(m: &QMatrix, xs: &QActs) -> Vec<(&'static str, Vec<f32>)> {
        let mut out = vec![f32::NAN; xs.len * m.rows];
        m.matmul(xs, &mut out);
        #[allow(unused_mut)]
        let mut all = vec![("matmul", out)];
        #[cfg(target_arch = "x86_64")]
        for (name, pw, panel, here) in [
            ("avx2", avx2::PANEL, avx2::panel as Panel, has_avx2()),
            ("avx512", avx512::PANEL, avx512::panel as Panel, has_avx512()),
        ] {
            if here {
                let mut out = vec![f32::NAN; xs.len * m.rows];
                m.gemm(xs, &mut out, pw, panel);
                all.push((name, out));
            }
        }
        all
    }

    /// Batches of every size, over a row count that fills one panel and
    /// part of the next (a partial group of sixteen), agree with the
    /// reference kernel, whichever kernel the CPU selects.
    #[test]
    fn batched_products_agree_at_every_size() {
        let (rows, cols) = (53, 160);
        for ty in [TensorType::Q4_0, TensorType::Q4_1] {
            let (m, _) = matrix(ty, rows, cols, 11);
            for t in 1..20 {
                let x: Vec<f32> = (0..t * cols).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
                let mut xs = QActs::new(Precision::F32);
                xs.quantize(&x, cols);
                for (name, out) in products(&m, &xs) {
                    for tok in 0..t {
                        for r in 0..rows {
                            let reference = dot_f32_scalar(&m, r, &xs, tok);
                            let got = out[tok * rows + r];
                            assert!(
                                (got - reference).abs() <= 1e-4 * (1.0 + reference.abs()),
                                "{name}, {ty} t={t} [{tok}][{r}]: {got} vs {reference}"
                            );
                        }
                    }
                }
            }
        }
    }
}
