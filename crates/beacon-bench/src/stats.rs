//! Latency summaries: exact nearest-rank percentiles over every recorded sample
//! (nanoseconds in, milliseconds out). No histogram buckets, so no rounding error.

/// Nanoseconds per millisecond.
const NS_PER_MS: f64 = 1_000_000.0;

/// The nearest-rank percentile `p` (0 < p ≤ 100) of ascending `sorted` samples: the
/// smallest sample such that at least p % of the samples are less than or equal to it.
/// 0 for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    // ceil(p/100 × n); the epsilon keeps a float product such as 0.99 × 1000 =
    // 990.0000000000001 from rounding up to the next rank.
    let rank = ((p / 100.0) * n as f64 - 1e-9).ceil().max(1.0) as usize;
    sorted[rank.min(n) - 1]
}

/// Percentiles of one set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples` (nanoseconds); sorts them in place.
    pub fn of(samples: &mut [u64]) -> Summary {
        samples.sort_unstable();
        let ms = |ns: u64| ns as f64 / NS_PER_MS;
        let total: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Summary {
            count: samples.len() as u64,
            p50: ms(percentile(samples, 50.0)),
            p90: ms(percentile(samples, 90.0)),
            p99: ms(percentile(samples, 99.0)),
            max: ms(samples.last().copied().unwrap_or(0)),
            mean: if samples.is_empty() {
                0.0
            } else {
                total as f64 / samples.len() as f64 / NS_PER_MS
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let one_to_hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&one_to_hundred, 50.0), 50);
        assert_eq!(percentile(&one_to_hundred, 90.0), 90);
        assert_eq!(percentile(&one_to_hundred, 99.0), 99);
        assert_eq!(percentile(&one_to_hundred, 100.0), 100);
        assert_eq!(percentile(&one_to_hundred, 0.1), 1);
        // 1,000 samples: p99 is the 990th, so the ten slowest are above it.
        let thousand: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&thousand, 99.0), 990);
        // Few samples: p99 of four is the largest, p50 of four the second.
        assert_eq!(percentile(&[10, 20, 30, 40], 99.0), 40);
        assert_eq!(percentile(&[10, 20, 30, 40], 50.0), 20);
        assert_eq!(percentile(&[7], 50.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn summary_sorts_and_converts_to_milliseconds() {
        let mut samples = vec![3_000_000, 1_000_000, 2_000_000, 4_000_000];
        let s = Summary::of(&mut samples);
        assert_eq!(s.count, 4);
        assert_eq!((s.p50, s.p99, s.max), (2.0, 4.0, 4.0));
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert_eq!(Summary::of(&mut []), Summary::default());
    }
}
