//! Which part of a blob a transfer moves, and the one rule for what to
//! move next. Both directions use it: a fetching receiver picks the part
//! it asks `blob.get` for, and a receiver answering `blob.put` picks the
//! part it asks the sender for. Pure: it looks only at what the receiver
//! already holds.

use crate::store::partial::Ranges;
use crate::tree::{GROUP_SIZE, groups};

/// Part of a blob, in whole 16 KiB groups (a transfer verifies and keeps
/// whole groups only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Groups `[first, end)`.
    pub groups: (u64, u64),
    /// The same as bytes: `[first * 16 KiB, min(end * 16 KiB, size))`.
    pub bytes: (u64, u64),
}

impl Part {
    /// Groups `[a, b)` of a blob of `size` bytes.
    pub fn of_groups(size: u64, (a, b): (u64, u64)) -> Self {
        Self { groups: (a, b), bytes: ((a * GROUP_SIZE).min(size), (b * GROUP_SIZE).min(size)) }
    }

    /// The whole groups covering bytes `[start, end)` of a blob of `size`
    /// bytes (`end` is clamped to the size). `None` if the range is empty
    /// or starts past the end; an empty blob's only part is `0..0`.
    pub fn covering(size: u64, (start, end): (u64, u64)) -> Option<Self> {
        let end = end.min(size);
        if size == 0 {
            return (start == 0).then(|| Self::of_groups(0, (0, 1)));
        }
        if start >= end {
            return None;
        }
        Some(Self::of_groups(size, (start / GROUP_SIZE, end.div_ceil(GROUP_SIZE))))
    }

    /// The whole blob.
    pub fn all(size: u64) -> Self {
        Self::of_groups(size, (0, groups(size)))
    }

    /// Bytes carried.
    pub fn len(&self) -> u64 {
        self.bytes.1 - self.bytes.0
    }

    /// Whether it carries no byte (only an empty blob's part does).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a transfer should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Move this part.
    Move(Part),
    /// Everything wanted is held.
    Done,
}

/// What to move next of the `wanted` part of a blob of `size` bytes, when
/// the receiver holds the groups in `have`: the first gap.
///
/// `fresh` says that no part has moved yet in this transfer. A blob is
/// published only right after a transfer whose receipt verified, so every
/// stored blob has a sender on record: a receiver that holds every group
/// of a whole blob it never published (the last receipt failed, or it
/// crashed in between) asks for the last group again.
pub fn next_part(size: u64, have: &Ranges, wanted: Part, fresh: bool) -> Next {
    let (first, end) = wanted.groups;
    match have.gaps(first, end).first() {
        Some(&gap) => Next::Move(Part::of_groups(size, gap)),
        None if fresh && wanted == Part::all(size) => Next::Move(Part::of_groups(size, (end - 1, end))),
        None => Next::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const G: u64 = GROUP_SIZE;

    fn have(ranges: &[(u64, u64)]) -> Ranges {
        let mut r = Ranges::default();
        for &(a, b) in ranges {
            r.insert(a, b);
        }
        r
    }

    #[test]
    fn parts_cover_whole_groups() {
        let size = 3 * G + 5;
        assert_eq!(Part::all(size), Part { groups: (0, 4), bytes: (0, size) });
        assert_eq!(Part::covering(size, (G + 1, G + 2)), Some(Part { groups: (1, 2), bytes: (G, 2 * G) }));
        assert_eq!(Part::covering(size, (3 * G, u64::MAX)), Some(Part { groups: (3, 4), bytes: (3 * G, size) }));
        assert_eq!(Part::covering(size, (size, size + 1)), None);
        assert_eq!(Part::covering(0, (0, u64::MAX)), Some(Part::all(0)));
        assert!(Part::all(0).is_empty());
        assert_eq!(Part::covering(0, (1, 2)), None);
    }

    #[test]
    fn the_first_gap_moves_next() {
        let size = 10 * G;
        let all = Part::all(size);
        assert_eq!(next_part(size, &have(&[]), all, true), Next::Move(all));
        assert_eq!(next_part(size, &have(&[(0, 4), (6, 8)]), all, false), Next::Move(Part::of_groups(size, (4, 6))));
        assert_eq!(next_part(size, &have(&[(0, 4), (6, 8)]), all, true), Next::Move(Part::of_groups(size, (4, 6))));
        let tail = Part::of_groups(size, (7, 10));
        assert_eq!(next_part(size, &have(&[(0, 8)]), tail, false), Next::Move(Part::of_groups(size, (8, 10))));
    }

    #[test]
    fn a_whole_unpublished_blob_gets_its_last_group_again_once() {
        let size = 10 * G + 1;
        let held = have(&[(0, 11)]);
        let last = Part::of_groups(size, (10, 11));
        assert_eq!(next_part(size, &held, Part::all(size), true), Next::Move(last));
        assert_eq!(next_part(size, &held, Part::all(size), false), Next::Done);
        // A range that is held needs nothing, fresh or not.
        let range = Part::of_groups(size, (2, 3));
        assert_eq!(next_part(size, &held, range, true), Next::Done);
        // The empty blob: its one (empty) group.
        assert_eq!(next_part(0, &have(&[(0, 1)]), Part::all(0), true), Next::Move(Part::all(0)));
    }

    proptest! {
        /// What moves is inside what is wanted, holds no held group, and
        /// repeating the rule (holding each moved part) ends with every
        /// wanted group held, in at most one round per gap plus one.
        #[test]
        fn moving_what_the_rule_says_ends_with_everything(
            size in 0u64..(40 * G),
            held in proptest::collection::vec((0u64..48, 0u64..8), 0..6),
            wanted in (0u64..48, 1u64..48),
        ) {
            let n = groups(size);
            let mut h = Ranges::default();
            for (a, len) in held {
                h.insert(a.min(n), (a + len).min(n));
            }
            let (a, b) = (wanted.0.min(n - 1), (wanted.0 + wanted.1).min(n));
            let want = Part::of_groups(size, (a, b.max(a + 1)));
            let mut fresh = true;
            for _ in 0..=(n + 1) {
                match next_part(size, &h, want, fresh) {
                    Next::Done => break,
                    Next::Move(p) => {
                        prop_assert!(want.groups.0 <= p.groups.0 && p.groups.1 <= want.groups.1);
                        prop_assert!(p.groups.0 < p.groups.1);
                        let repeat = h.contains(p.groups.0, p.groups.1);
                        prop_assert!(!repeat || fresh, "only a fresh transfer moves a held group");
                        h.insert(p.groups.0, p.groups.1);
                        fresh = false;
                    }
                }
            }
            prop_assert_eq!(next_part(size, &h, want, false), Next::Done);
        }
    }
}
