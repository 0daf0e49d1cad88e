//! Reference dequantisers for the ggml types alp has no dot-product kernel
//! for: the k-quants (Q2_K to Q6_K), Q5_0, Q5_1 and BF16. They run once, at load: such matrices are requantised to 8-bit
//! blocks (see [`crate::quant::QMatrix::from_ggml`]), which costs memory
//! but keeps every product on the fast kernels. Checked value for value
//! against the `gguf` package's implementation (`tests/fixtures`).

use half::f16;

use crate::gguf::TensorType;

fn h(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Whether [`dequantize`] handles `ty`.
pub fn supported(ty: TensorType) -> bool {
    matches!(
        ty,
        TensorType::Q2K
            | TensorType::Q3K
            | TensorType::Q4K
            | TensorType::Q5K
            | TensorType::Q6K
            | TensorType::Q5_0
            | TensorType::Q5_1
            | TensorType::Bf16
    )
}

/// Dequantises whole blocks of `ty` from `data` into `out` (appended).
/// `data` must hold a whole number of blocks; the caller checked sizes.
pub fn dequantize(ty: TensorType, data: &[u8], out: &mut Vec<f32>) {
    let (_, size) = ty.block_layout();
    for b in data.chunks_exact(size as usize) {
        match ty {
            TensorType::Q2K => q2_k(b, out),
            TensorType::Q3K => q3_k(b, out),
            TensorType::Q4K => q4_k(b, out),
            TensorType::Q5K => q5_k(b, out),
            TensorType::Q6K => q6_k(b, out),
            TensorType::Q5_0 => q5(b, false, out),
            TensorType::Q5_1 => q5(b, true, out),
            TensorType::Bf16 => out.push(f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)),
            _ => {}
        }
    }
}

/// The 6-bit scale and minimum of sub-block `j` (ggml's `get_scale_min_k4`).
fn scale_min(j: usize, q: &[u8]) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    };
    (f32::from(sc), f32::from(m))
}

fn q2_k(b: &[u8], out: &mut Vec<f32>) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let (d, dmin) = (h(&b[80..82]), h(&b[82..84]));
    let mut is = 0;
    for n in 0..2 {
        let q = &qs[32 * n..32 * n + 32];
        for shift in [0, 2, 4, 6] {
            for half in [&q[..16], &q[16..]] {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * f32::from(sc & 0xF), dmin * f32::from(sc >> 4));
                out.extend(half.iter().map(|&v| dl * f32::from((v >> shift) & 3) - ml));
            }
        }
    }
}

fn q3_k(b: &[u8], out: &mut Vec<f32>) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let raw = &b[96..108];
    let d = h(&b[108..110]);
    // Unpack the sixteen 6-bit scales (ggml's kmask dance).
    let word = |i: usize| u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
    let (k1, k2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    let aux = [
        (a0 & k2) | ((tmp & k1) << 4),
        (a1 & k2) | (((tmp >> 2) & k1) << 4),
        ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4),
        ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4),
    ];
    let scales: Vec<i8> = aux.iter().flat_map(|w| w.to_le_bytes()).map(|v| v as i8).collect();
    let mut is = 0;
    let mut m = 1u8;
    for n in 0..2 {
        let q = &qs[32 * n..32 * n + 32];
        for shift in [0, 2, 4, 6] {
            for (part, hm) in [(&q[..16], &hmask[..16]), (&q[16..], &hmask[16..])] {
                let dl = d * f32::from(scales[is] - 32);
                is += 1;
                out.extend(part.iter().zip(hm).map(|(&v, &hb)| {
                    let low = i32::from((v >> shift) & 3);
                    dl * (low - if hb & m != 0 { 0 } else { 4 }) as f32
                }));
            }
            m <<= 1;
        }
    }
}

fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (h(&b[0..2]), h(&b[2..4]));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for j in 0..4 {
        let (sc1, m1) = scale_min(2 * j, scales);
        let (sc2, m2) = scale_min(2 * j + 1, scales);
        let q = &qs[32 * j..32 * j + 32];
        out.extend(q.iter().map(|&v| d * sc1 * f32::from(v & 0xF) - dmin * m1));
        out.extend(q.iter().map(|&v| d * sc2 * f32::from(v >> 4) - dmin * m2));
    }
}

fn q5_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (h(&b[0..2]), h(&b[2..4]));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for j in 0..4 {
        let (sc1, m1) = scale_min(2 * j, scales);
        let (sc2, m2) = scale_min(2 * j + 1, scales);
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let q = &qs[32 * j..32 * j + 32];
        out.extend(
            q.iter()
                .zip(qh)
                .map(|(&v, &hb)| d * sc1 * f32::from((v & 0xF) + if hb & u1 != 0 { 16 } else { 0 }) - dmin * m1),
        );
        out.extend(
            q.iter()
                .zip(qh)
                .map(|(&v, &hb)| d * sc2 * f32::from((v >> 4) + if hb & u2 != 0 { 16 } else { 0 }) - dmin * m2),
        );
    }
}

fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let d = h(&b[208..210]);
    let start = out.len();
    out.resize(start + 256, 0.0);
    let y = &mut out[start..];
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let s = |i: usize| f32::from(sc[i] as i8);
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let o = 128 * n + l;
            y[o] = d * s(is) * q1 as f32;
            y[o + 32] = d * s(is + 2) * q2 as f32;
            y[o + 64] = d * s(is + 4) * q3 as f32;
            y[o + 96] = d * s(is + 6) * q4 as f32;
        }
    }
}

fn q5(b: &[u8], with_min: bool, out: &mut Vec<f32>) {
    let d = h(&b[0..2]);
    let (m, rest) = if with_min { (h(&b[2..4]), &b[4..]) } else { (0.0, &b[2..]) };
    let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let qs = &rest[4..20];
    let offset = if with_min { 0 } else { 16 };
    let mut hi = [0.0f32; 16];
    for j in 0..16 {
        let xh0 = ((qh >> j) << 4) & 0x10;
        let xh1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((u32::from(qs[j]) & 0xF) | xh0) as i32 - offset;
        let x1 = ((u32::from(qs[j]) >> 4) | xh1) as i32 - offset;
        out.push(x0 as f32 * d + m);
        hi[j] = x1 as f32 * d + m;
    }
    out.extend_from_slice(&hi);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        bytes: String,
        values: Vec<f32>,
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn matches_the_reference_dequantiser() {
        let cases: std::collections::HashMap<String, Case> =
            serde_json::from_str(include_str!("../tests/fixtures/kquants.json")).unwrap();
        for (name, ty) in [
            ("Q2_K", TensorType::Q2K),
            ("Q3_K", TensorType::Q3K),
            ("Q4_K", TensorType::Q4K),
            ("Q5_K", TensorType::Q5K),
            ("Q6_K", TensorType::Q6K),
            ("Q5_0", TensorType::Q5_0),
            ("Q5_1", TensorType::Q5_1),
            ("BF16", TensorType::Bf16),
        ] {
            let c = &cases[name];
            let mut out = Vec::new();
            dequantize(ty, &hex(&c.bytes), &mut out);
            assert_eq!(out.len(), c.values.len(), "{name}");
            for (i, (a, b)) in out.iter().zip(&c.values).enumerate() {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name}[{i}]: {a} vs {b}");
            }
        }
    }

    #[test]
    fn requantised_matrices_stay_close() {
        let c: std::collections::HashMap<String, Case> =
            serde_json::from_str(include_str!("../tests/fixtures/kquants.json")).unwrap();
        let q6 = &c["Q6_K"];
        // 512 values: 2 rows of 256.
        let m = crate::quant::QMatrix::from_ggml(TensorType::Q6K, 2, 256, &hex(&q6.bytes)).unwrap();
        let mut row = vec![0.0; 256];
        for r in 0..2 {
            m.row_to_f32(r, &mut row);
            for (a, b) in row.iter().zip(&q6.values[r * 256..]) {
                let amax = q6.values[r * 256..(r + 1) * 256].iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!((a - b).abs() <= amax / 127.0, "{a} vs {b}");
            }
        }
    }
}
