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
//! scalar kernels are the reference they are tested against.

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
        let four = kernel4(self, xs.precision);
        tmp.par_chunks_mut(chunk * t).enumerate().for_each(|(i, o)| {
            for (k, row_out) in o.chunks_exact_mut(t).enumerate() {
                let r = i * chunk + k;
                let mut done = 0;
                if let Some(four) = four {
                    for (j, out4) in row_out.chunks_exact_mut(4).enumerate() {
                        out4.copy_from_slice(&four(self, r, xs, j * 4));
                        done += 4;
                    }
                }
                for (tok, v) in row_out.iter_mut().enumerate().skip(done) {
                    *v = kernel(self, r, xs, tok);
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
type Kernel4 = fn(&QMatrix, usize, &QActs, usize) -> [f32; 4];

/// A kernel for four tokens at once, where there is one for `m`'s weights
/// and `p`'s activations on this CPU.
fn kernel4(m: &QMatrix, p: Precision) -> Option<Kernel4> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && p == Precision::F32 && m.kind == Kind::Nibbles {
        return Some(avx2::dot4_f32);
    }
    let _ = (m, p);
    None
}

/// Whether this CPU has AVX2 and FMA (checked once).
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static AVX2: OnceLock<bool> = OnceLock::new();
    #[cfg(target_arch = "x86_64")]
    return *AVX2.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"));
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The attention kernel for this CPU (see `attention::heads`).
pub(crate) fn attention_kernel() -> crate::attention::HeadsKernel {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return avx2::heads;
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
    pub(super) fn heads(h: &crate::attention::Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]]) {
        // SAFETY: selected only when AVX2 and FMA were detected at run
        // time; the code inside is safe Rust, only compiled for them.
        unsafe { heads_avx2(h, scores, outs) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn heads_avx2(h: &crate::attention::Heads<'_>, scores: &mut Vec<f32>, outs: &mut [&mut [f32]]) {
        crate::attention::heads(h, scores, outs);
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

    /// [`dot_f32`] of row `r` with tokens `t..t + 4` at once, for 4-bit
    /// weights: each block of the row is widened to floats once for the
    /// four tokens. Each token's sum is formed in the same order as
    /// [`dot_f32`]'s, so the results are bit-identical.
    pub(super) fn dot4_f32(m: &QMatrix, r: usize, xs: &QActs, t: usize) -> [f32; 4] {
        debug_assert_eq!(m.kind, Kind::Nibbles);
        let nb = m.cols / BLOCK;
        let rb = m.row_bytes();
        let qs = &m.qs[r * rb..(r + 1) * rb];
        let (wd, wc) = (&m.d[r * nb..(r + 1) * nb], &m.c[r * nb..(r + 1) * nb]);
        let x = &xs.f[t * nb * BLOCK..(t + 4) * nb * BLOCK];
        let xsum = &xs.s[t * nb..(t + 4) * nb];
        // SAFETY: features detected (as in `dot`); `qs` holds nb*16 bytes,
        // `x` four tokens of nb*32 floats and `xsum` four of nb sums.
        unsafe { nibbles4_f32(nb, qs, wd, wc, x, xsum) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles4_f32(nb: usize, qs: &[u8], wd: &[f32], wc: &[f32], x: &[f32], xsum: &[f32]) -> [f32; 4] {
        let mask = _mm_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut extra = [0.0f32; 4];
        let stride = nb * 32;
        for b in 0..nb {
            // SAFETY: qs holds nb*16 bytes, checked by `dot4_f32`.
            let packed = unsafe { _mm_loadu_si128(qs.as_ptr().add(b * 16).cast()) };
            let lo = _mm_and_si128(packed, mask);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), mask);
            let w = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
            let (w0, w1, w2, w3) = (w(lo), w(_mm_srli_si128::<8>(lo)), w(hi), w(_mm_srli_si128::<8>(hi)));
            let d = _mm256_set1_ps(wd[b]);
            for k in 0..4 {
                // SAFETY: x holds four tokens of nb*32 floats, checked by `dot4_f32`.
                let (x0, x1, x2, x3) = unsafe {
                    let xp = x.as_ptr().add(k * stride + b * 32);
                    (
                        _mm256_loadu_ps(xp),
                        _mm256_loadu_ps(xp.add(8)),
                        _mm256_loadu_ps(xp.add(16)),
                        _mm256_loadu_ps(xp.add(24)),
                    )
                };
                let mut s = _mm256_mul_ps(w0, x0);
                s = _mm256_fmadd_ps(w1, x1, s);
                s = _mm256_fmadd_ps(w2, x2, s);
                s = _mm256_fmadd_ps(w3, x3, s);
                acc[k] = _mm256_fmadd_ps(d, s, acc[k]);
                extra[k] += wc[b] * xsum[k * nb + b];
            }
        }
        // SAFETY: AVX2 is enabled in this function.
        unsafe { [0, 1, 2, 3].map(|k| hsum(acc[k]) + extra[k]) }
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

    /// Four tokens at once give exactly what one token at a time gives.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_four_token_kernel_is_bit_identical() {
        if !super::has_avx2() {
            return;
        }
        let (rows, cols) = (5, 128);
        let (m, _) = matrix(TensorType::Q4_1, rows, cols, 7);
        let x: Vec<f32> = (0..9 * cols).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
        let mut xs = QActs::new(Precision::F32);
        xs.quantize(&x, cols);
        for r in 0..rows {
            for t in [0, 4] {
                let four = super::avx2::dot4_f32(&m, r, &xs, t);
                for (k, v) in four.iter().enumerate() {
                    assert_eq!(v.to_bits(), super::avx2::dot_f32(&m, r, &xs, t + k).to_bits());
                }
            }
        }
    }
}
