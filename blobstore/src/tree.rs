//! The BLAKE3 hash tree of a blob at chunk-group granularity.
//!
//! BLAKE3 hashes 1 KiB chunks into a left-balanced binary tree. alp keeps
//! that tree only above *groups* of 16 chunks (16 KiB), as bao and iroh do:
//! a blob of `n` groups has `n - 1` parent nodes, each stored as the pair of
//! its children's chaining values (64 bytes), so the stored tree costs
//! 0.4% of the data. Any group can then be proven against the blob's hash
//! with the parents on its path.
//!
//! Parents are numbered in pre-order (a parent before its left subtree,
//! then its right subtree); [`preorder_index`] maps a parent to its slot
//! in the outboard. All hashing is `blake3`'s (`hazmat`), none is home-made.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};

/// Bytes in a chunk group.
pub const GROUP_SIZE: u64 = 16 * 1024;
/// Bytes per stored parent node (two chaining values).
pub const PARENT_SIZE: u64 = 64;

/// Number of groups of a blob of `size` bytes (an empty blob has one).
pub fn groups(size: u64) -> u64 {
    size.div_ceil(GROUP_SIZE).max(1)
}

/// Groups in the left subtree of a node spanning `len > 1` groups: the
/// largest power of two below `len`.
pub fn left_len(len: u64) -> u64 {
    debug_assert!(len > 1);
    1 << (63 - (len - 1).leading_zeros())
}

/// Pre-order slot of the parent spanning groups `[start, start + len)` in
/// a tree of `n` groups. `None` if no parent spans exactly that range.
pub fn preorder_index(start: u64, len: u64, n: u64) -> Option<u64> {
    let (mut lo, mut span, mut index) = (0, n, 0);
    while span > 1 {
        if (lo, span) == (start, len) {
            return Some(index);
        }
        let left = left_len(span);
        if start < lo + left {
            index += 1;
            span = left;
        } else {
            index += left;
            lo += left;
            span -= left;
        }
    }
    None
}

/// Chaining value of group `index` holding `data` (trees of 2+ groups).
pub fn group_cv(index: u64, data: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(index * GROUP_SIZE);
    h.update(data);
    h.finalize_non_root()
}

/// A parent node produced while hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// Its pre-order slot.
    pub index: u64,
    /// Left child's chaining value.
    pub left: ChainingValue,
    /// Right child's chaining value.
    pub right: ChainingValue,
}

impl Parent {
    /// The 64 stored bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.left);
        out[32..].copy_from_slice(&self.right);
        out
    }
}

/// Hashes a blob of known size group by group in constant memory,
/// yielding every parent node as soon as it is known.
#[derive(Debug)]
pub struct TreeBuilder {
    n: u64,
    next: u64,
    stack: Vec<(ChainingValue, u64, u64)>,
    single: Option<blake3::Hash>,
}

impl TreeBuilder {
    /// A builder for a blob of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self { n: groups(size), next: 0, stack: Vec::new(), single: None }
    }

    /// Adds the next group (all groups but the last are full). Returns the
    /// parents completed by it, in no particular order.
    pub fn push(&mut self, data: &[u8]) -> Vec<Parent> {
        if self.n == 1 {
            self.next += 1;
            self.single = Some(blake3::hash(data));
            return Vec::new();
        }
        self.push_cv(group_cv(self.next, data))
    }

    /// Adds the next group by its chaining value ([`group_cv`]; only for
    /// blobs of two groups or more), computed elsewhere, perhaps on another
    /// thread. Returns the parents completed by it.
    pub fn push_cv(&mut self, cv: ChainingValue) -> Vec<Parent> {
        debug_assert!(self.n > 1);
        let i = self.next;
        self.next += 1;
        self.stack.push((cv, i, 1));
        let mut parents = Vec::new();
        while self.stack.len() >= 2 && self.stack[self.stack.len() - 1].2 == self.stack[self.stack.len() - 2].2 {
            if let Some(p) = self.merge() {
                parents.push(p);
            }
        }
        parents
    }

    /// Merges the top two entries; returns the parent node.
    fn merge(&mut self) -> Option<Parent> {
        let (right, _, rlen) = self.stack.pop()?;
        let (left, start, llen) = self.stack.pop()?;
        let len = llen + rlen;
        let index = preorder_index(start, len, self.n)?;
        let cv = if len == self.n {
            *merge_subtrees_root(&left, &right, Mode::Hash).as_bytes()
        } else {
            merge_subtrees_non_root(&left, &right, Mode::Hash)
        };
        self.stack.push((cv, start, len));
        Some(Parent { index, left, right })
    }

    /// Finishes after the last group: the remaining parents and the hash.
    pub fn finish(mut self) -> (Vec<Parent>, blake3::Hash) {
        if let Some(hash) = self.single {
            return (Vec::new(), hash);
        }
        let mut parents = Vec::new();
        while self.stack.len() >= 2 {
            if let Some(p) = self.merge() {
                parents.push(p);
            }
        }
        let root = self.stack.pop().map_or([0; 32], |(cv, _, _)| cv);
        (parents, blake3::Hash::from_bytes(root))
    }
}

/// One step of a verified stream, in the order a sender sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The parent in this pre-order slot (64 bytes).
    Parent(u64),
    /// This group's bytes.
    Group(u64),
}

/// The steps of the stream of `wanted` (sorted half-open group ranges) of a
/// blob of `size` bytes: pre-order, skipping subtrees with nothing wanted.
/// Exactly the order [`Verifier`] expects.
pub fn stream_order(size: u64, wanted: Vec<(u64, u64)>) -> impl Iterator<Item = Step> {
    let n = groups(size);
    let mut stack = vec![(0u64, n)];
    std::iter::from_fn(move || {
        while let Some((start, len)) = stack.pop() {
            if !wanted.iter().any(|&(a, b)| a < start + len && start < b) {
                continue;
            }
            if len == 1 {
                return Some(Step::Group(start));
            }
            let l = left_len(len);
            stack.push((start + l, len - l));
            stack.push((start, l));
            return preorder_index(start, len, n).map(Step::Parent);
        }
        None
    })
}

/// Where a verified stream is in the tree: the parent or group expected
/// next and the hash it must match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The parent spanning `[start, start + len)`, whose value is `cv`.
    Parent { start: u64, len: u64, cv: ChainingValue, root: bool },
    /// Group `index`, whose value is `cv`.
    Group { index: u64, cv: ChainingValue, root: bool },
}

/// A stream item did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The parent pair does not hash to the expected value.
    #[error("parent node over groups {start}..{end} does not match the hash")]
    Parent {
        /// First group it spans.
        start: u64,
        /// One past the last.
        end: u64,
    },
    /// The group's bytes do not hash to the expected value.
    #[error("group {0} (bytes from {offset}) does not match the hash", offset = .0 * GROUP_SIZE)]
    Group(u64),
    /// More items than the requested ranges need.
    #[error("unexpected data after the end of the requested ranges")]
    Extra,
}

/// Verifies a pre-order stream (parents and groups of the requested
/// groups, in tree order) against a blob's hash and size, one item at a
/// time. Subtrees with no requested group are skipped by both sides.
#[derive(Debug)]
pub struct Verifier {
    n: u64,
    size: u64,
    wanted: Vec<(u64, u64)>,
    stack: Vec<Expect>,
}

impl Verifier {
    /// Verifies the groups in `wanted` (half-open group ranges, sorted) of
    /// the blob `hash` of `size` bytes.
    pub fn new(hash: blake3::Hash, size: u64, wanted: Vec<(u64, u64)>) -> Self {
        let n = groups(size);
        let root = *hash.as_bytes();
        let first = if n == 1 {
            Expect::Group { index: 0, cv: root, root: true }
        } else {
            Expect::Parent { start: 0, len: n, cv: root, root: true }
        };
        let mut v = Self { n, size, wanted, stack: vec![first] };
        v.skip_unwanted();
        v
    }

    /// The whole blob.
    pub fn all(hash: blake3::Hash, size: u64) -> Self {
        Self::new(hash, size, vec![(0, groups(size))])
    }

    fn wants(&self, start: u64, len: u64) -> bool {
        self.wanted.iter().any(|&(a, b)| a < start + len && start < b)
    }

    fn skip_unwanted(&mut self) {
        while let Some(top) = self.stack.last() {
            let (start, len) = match top {
                Expect::Parent { start, len, .. } => (*start, *len),
                Expect::Group { index, .. } => (*index, 1),
            };
            if self.wants(start, len) {
                return;
            }
            self.stack.pop();
        }
    }

    /// What the next item must be: `Some(true)` a 64-byte parent,
    /// `Some(false)` the bytes of the group it names, `None` the end.
    pub fn next_is_parent(&self) -> Option<bool> {
        self.stack.last().map(|e| matches!(e, Expect::Parent { .. }))
    }

    /// Byte length of the next group, if a group is next.
    pub fn next_group_len(&self) -> Option<(u64, usize)> {
        match self.stack.last() {
            Some(Expect::Group { index, .. }) => {
                let start = index * GROUP_SIZE;
                let len = (self.size - start.min(self.size)).min(GROUP_SIZE);
                Some((*index, usize::try_from(len).unwrap_or(0)))
            }
            _ => None,
        }
    }

    /// Checks the next parent pair.
    pub fn parent(&mut self, pair: &[u8; 64]) -> Result<Parent, VerifyError> {
        let Some(Expect::Parent { start, len, cv, root }) = self.stack.pop() else {
            return Err(VerifyError::Extra);
        };
        let (mut left, mut right) = ([0u8; 32], [0u8; 32]);
        left.copy_from_slice(&pair[..32]);
        right.copy_from_slice(&pair[32..]);
        let got = if root {
            *merge_subtrees_root(&left, &right, Mode::Hash).as_bytes()
        } else {
            merge_subtrees_non_root(&left, &right, Mode::Hash)
        };
        if !constant_time_eq(&got, &cv) {
            return Err(VerifyError::Parent { start, end: start + len });
        }
        let l = left_len(len);
        self.stack.push(child(start + l, len - l, right));
        self.stack.push(child(start, l, left));
        self.skip_unwanted();
        let index = preorder_index(start, len, self.n).unwrap_or(0);
        Ok(Parent { index, left, right })
    }

    /// Checks the next group's bytes; returns its index.
    pub fn group(&mut self, data: &[u8]) -> Result<u64, VerifyError> {
        let Some(Expect::Group { index, cv, root }) = self.stack.pop() else {
            return Err(VerifyError::Extra);
        };
        let expected_len = self.next_len_of(index);
        let got = if root { *blake3::hash(data).as_bytes() } else { group_cv(index, data) };
        if data.len() as u64 != expected_len || !constant_time_eq(&got, &cv) {
            return Err(VerifyError::Group(index));
        }
        self.skip_unwanted();
        Ok(index)
    }

    fn next_len_of(&self, index: u64) -> u64 {
        let start = index * GROUP_SIZE;
        (self.size - start.min(self.size)).min(GROUP_SIZE)
    }

    /// Whether every requested group has been verified.
    pub fn is_done(&self) -> bool {
        self.stack.is_empty()
    }
}

fn child(start: u64, len: u64, cv: ChainingValue) -> Expect {
    if len == 1 {
        Expect::Group { index: start, cv, root: false }
    } else {
        Expect::Parent { start, len, cv, root: false }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    blake3::Hash::from_bytes(*a) == blake3::Hash::from_bytes(*b)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
