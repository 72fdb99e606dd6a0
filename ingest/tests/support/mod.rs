//! What the decoders' differential tests share: random damage to a valid
//! encoding, so both versions' readers meet the same kinds of broken input.

use proptest::prelude::*;

/// Up to three overwritten bytes, then maybe a cut.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    edits: Vec<(prop::sample::Index, u8)>,
    cut: Option<prop::sample::Index>,
}

pub(crate) fn damage() -> impl Strategy<Value = Damage> {
    (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(edits, cut)| Damage { edits, cut })
}

impl Damage {
    /// `bytes` with the damage applied (empty input stays empty).
    pub(crate) fn apply(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        if bytes.is_empty() {
            return bytes;
        }
        for (at, byte) in &self.edits {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        if let Some(cut) = &self.cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        bytes
    }
}
