//! Summaries of measured durations: median, maximum and nearest-rank percentiles.
//!
//! Limits: keeps every sample in memory (fine for the few thousand a run takes).

use std::time::Duration;

/// A set of measured durations.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    /// Builds the summary from samples in any order.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Samples { sorted: samples }
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The nearest-rank `p`-th percentile (`p` in 0..=100): the smallest sample that at
    /// least `p`% of the samples are less than or equal to. `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let p = p.clamp(0.0, 100.0);
        // Nearest rank: ceil(p/100 * n), at least 1. The cast is exact for any n a
        // benchmark collects.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted.get(rank.clamp(1, n) - 1).copied()
    }

    /// The median (nearest-rank 50th percentile).
    pub fn median(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    /// The largest sample.
    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }
}

/// The share of one operation in a CPU time measured around `ops` operations: `None` if
/// either reading is missing or there were no operations.
pub fn per_op(before: Option<Duration>, after: Option<Duration>, ops: usize) -> Option<Duration> {
    let spent = after?.checked_sub(before?)?;
    let ops = u32::try_from(ops).ok().filter(|n| *n > 0)?;
    Some(spent / ops)
}

/// A duration in milliseconds with a precision that suits its size.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Samples {
        Samples::new(v.iter().map(|m| Duration::from_millis(*m)).collect())
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = ms(&[5, 1, 4, 2, 3]);
        assert_eq!(s.median(), Some(Duration::from_millis(3)));
        assert_eq!(s.max(), Some(Duration::from_millis(5)));
        assert_eq!(s.percentile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(s.percentile(100.0), Some(Duration::from_millis(5)));
        // 100 samples 1..=100: p99 is the 99th smallest.
        let hundred = ms(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(hundred.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(hundred.median(), Some(Duration::from_millis(50)));
        // An even count takes the lower middle.
        assert_eq!(ms(&[1, 2, 3, 4]).median(), Some(Duration::from_millis(2)));
    }

    #[test]
    fn empty_has_no_figures() {
        let s = Samples::default();
        assert!(s.is_empty());
        assert_eq!(s.median(), None);
        assert_eq!(s.max(), None);
    }

    #[test]
    fn per_op_shares() {
        let s = |ms| Some(Duration::from_millis(ms));
        assert_eq!(per_op(s(100), s(1100), 5), s(200));
        assert_eq!(per_op(None, s(1100), 5), None);
        assert_eq!(per_op(s(100), s(1100), 0), None);
        assert_eq!(per_op(s(200), s(100), 1), None, "a clock that went back");
    }

    #[test]
    fn millis_formatting() {
        assert_eq!(millis(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(millis(Duration::from_micros(45_670)), "45.7 ms");
        assert_eq!(millis(Duration::from_millis(1097)), "1097 ms");
    }
}
