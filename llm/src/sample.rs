//! Token sampling: greedy at temperature 0, otherwise temperature and
//! nucleus (top-p) sampling from a seeded generator, so a given seed always
//! gives the same text.

use crate::model::softmax;

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerOptions {
    /// 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability
    /// reaches this mass. 1.0 keeps all.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions { temperature: 0.0, top_p: 0.95, seed: 0 }
    }
}

/// A sampler with its own deterministic random stream (SplitMix64: small,
/// fast, and stable across versions, which a library RNG does not promise).
#[derive(Debug)]
pub struct Sampler {
    opts: SamplerOptions,
    state: u64,
}

impl Sampler {
    pub fn new(opts: SamplerOptions) -> Self {
        let state = opts.seed;
        Sampler { opts, state }
    }

    fn next_f32(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Picks a token from `logits` (which it may overwrite).
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        if self.opts.temperature <= 0.0 || !self.opts.temperature.is_finite() {
            return argmax(logits);
        }
        for l in logits.iter_mut() {
            *l /= self.opts.temperature;
        }
        softmax(logits);
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        let mut mass = 0.0;
        let mut keep = order.len();
        for (i, &id) in order.iter().enumerate() {
            mass += logits[id as usize];
            if mass >= self.opts.top_p {
                keep = i + 1;
                break;
            }
        }
        let kept = &order[..keep];
        let total: f32 = kept.iter().map(|&id| logits[id as usize]).sum();
        let mut r = self.next_f32() * total;
        for &id in kept {
            r -= logits[id as usize];
            if r <= 0.0 {
                return id;
            }
        }
        kept.last().copied().unwrap_or(0)
    }
}

/// The index of the largest value; the lowest index wins ties.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        let mut s = Sampler::new(SamplerOptions::default());
        assert_eq!(s.sample(&mut [1.0, 2.0, 0.5]), 1);
    }

    #[test]
    fn a_seed_gives_the_same_choices() {
        let opts = SamplerOptions { temperature: 1.0, top_p: 1.0, seed: 42 };
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = || {
            let mut s = Sampler::new(opts.clone());
            (0..20).map(|_| s.sample(&mut logits.clone())).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert!(run().iter().collect::<std::collections::HashSet<_>>().len() > 1);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let opts = SamplerOptions { temperature: 1.0, top_p: 0.5, seed: 7 };
        let mut s = Sampler::new(opts);
        for _ in 0..100 {
            assert_eq!(s.sample(&mut [0.0, 10.0, 0.0, 0.0]), 1);
        }
    }
}
