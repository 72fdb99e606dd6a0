//! Snappy block-format decompression with the decoded length checked
//! before anything is allocated, shared by remote write and remote read.
//!
//! The block format starts with the decoded length, so a 10-byte body can
//! declare gigabytes (a decompression bomb). [`decompress_bounded`] refuses
//! such a body from its header alone.

/// Upper bound of decoded bytes per compressed byte in snappy's block
/// format: its densest element, a 3-byte copy of 64 bytes, expands 64/3 < 22
/// times.
pub(crate) const MAX_SNAPPY_EXPANSION: usize = 22;

/// Why a snappy block was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnappyError {
    /// The header declares more than the caller's limit.
    #[error("snappy header declares {declared} decoded bytes, over the limit of {limit} bytes")]
    TooLarge { declared: u64, limit: usize },
    /// The header declares more than the compressed bytes could hold.
    #[error(
        "invalid snappy block: header declares {declared} decoded bytes, \
         more than {compressed} compressed bytes can hold"
    )]
    Impossible { declared: usize, compressed: usize },
    #[error("invalid snappy block: {0}")]
    Invalid(#[source] snap::Error),
}

/// Decompresses a snappy block of at most `max_decoded` bytes.
pub fn decompress_bounded(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, SnappyError> {
    let declared = match snap::raw::decompress_len(body) {
        Ok(n) => n,
        // snap refuses headers above u32::MAX itself; that is a bomb too, not
        // a malformed block, so it gets the same answer as our own limit.
        Err(snap::Error::TooBig { given, .. }) => {
            return Err(SnappyError::TooLarge {
                declared: given,
                limit: max_decoded,
            });
        }
        Err(e) => return Err(SnappyError::Invalid(e)),
    };
    if declared > max_decoded {
        return Err(SnappyError::TooLarge {
            declared: declared as u64,
            limit: max_decoded,
        });
    }
    // A header declaring more than the body can expand to is corrupt;
    // refusing it here keeps a 10-byte body from making us zero-fill a
    // max_decoded buffer.
    if declared > body.len().saturating_mul(MAX_SNAPPY_EXPANSION) {
        return Err(SnappyError::Impossible {
            declared,
            compressed: body.len(),
        });
    }
    let mut raw = vec![0u8; declared];
    let n = snap::raw::Decoder::new()
        .decompress(body, &mut raw)
        .map_err(SnappyError::Invalid)?;
    raw.truncate(n);
    Ok(raw)
}
