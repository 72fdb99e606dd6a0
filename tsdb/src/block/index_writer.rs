//! Writing a block's `index` file from what the writer collected: symbols
//! in sorted order (so ids compare like strings), series entries, postings,
//! the label index, and the table of contents with a CRC32C per section.
//! Layout in `docs/format/block.md`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::bytes::put_uvarint;
use super::index::{INDEX_MAGIC, SECTIONS, TOC_LEN};
use super::writer::Pending;
use super::{BlockError, FORMAT_VERSION, INDEX_FILE};

pub(super) fn write_index(
    tmp: &Path,
    dir: &Path,
    syms: &[Box<str>],
    series: &[Pending],
    postings: HashMap<(u32, u32), RoaringBitmap>,
) -> Result<(), BlockError> {
    let path = tmp.join(INDEX_FILE);
    let file = File::create(&path).map_err(BlockError::io("create", &path))?;
    let mut out = IndexOut {
        w: BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        crc: 0,
        path: path.clone(),
    };
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&INDEX_MAGIC);
    header[4] = FORMAT_VERSION;
    out.write(&header)?;

    // Final symbol ids are the sorted order, so comparing ids compares
    // strings and label values sort like their ids.
    let mut order: Vec<u32> = (0..syms.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| syms[a as usize].cmp(&syms[b as usize]));
    let mut remap = vec![0u32; order.len()];
    for (fin, &tmp) in order.iter().enumerate() {
        remap[tmp as usize] = fin as u32;
    }
    let mut toc = [(0u64, 0u64, 0u32); SECTIONS];

    // Symbols.
    let start = out.begin();
    let total: usize = syms.iter().map(|s| s.len()).sum();
    if u32::try_from(total).is_err() {
        return Err(BlockError::BadInput {
            dir: dir.to_path_buf(),
            reason: format!("{total} bytes of label strings exceed the 4 GiB symbol table limit"),
        });
    }
    out.write(&(order.len() as u32).to_le_bytes())?;
    let mut off = 0u32;
    out.write(&off.to_le_bytes())?;
    for &t in &order {
        off += syms[t as usize].len() as u32;
        out.write(&off.to_le_bytes())?;
    }
    for &t in &order {
        out.write(syms[t as usize].as_bytes())?;
    }
    toc[0] = out.end(start);

    // Series: a pass to size the entries for the offset table, then the
    // entries themselves, encoded twice rather than held twice.
    let start = out.begin();
    let mut scratch = Vec::new();
    let n = series.len();
    let mut at = 4 + 8 * n as u64;
    out.write(&(n as u32).to_le_bytes())?;
    for s in series {
        out.write(&at.to_le_bytes())?;
        encode_entry(s, &remap, &mut scratch);
        at += scratch.len() as u64;
    }
    for s in series {
        encode_entry(s, &remap, &mut scratch);
        out.write(&scratch)?;
    }
    toc[1] = out.end(start);

    // Postings, in (name, value) order; the label index points into them.
    let start = out.begin();
    let mut pairs: Vec<((u32, u32), RoaringBitmap)> = postings
        .into_iter()
        .map(|((n, v), ids)| ((remap[n as usize], remap[v as usize]), ids))
        .collect();
    pairs.sort_unstable_by_key(|(k, _)| *k);
    let mut entries: Vec<(u32, u32, u32, u64)> = Vec::with_capacity(pairs.len());
    for ((name, value), mut ids) in pairs {
        ids.optimize();
        scratch.clear();
        ids.serialize_into(&mut scratch)
            .expect("serializing into a Vec cannot fail");
        entries.push((name, value, scratch.len() as u32, out.pos - start));
        out.write(&scratch)?;
    }
    toc[2] = out.end(start);

    // Label index: names, then each name's value table.
    let start = out.begin();
    let mut names: Vec<(u32, u32)> = Vec::new(); // (name, value count)
    for e in &entries {
        match names.last_mut() {
            Some((n, c)) if *n == e.0 => *c += 1,
            _ => names.push((e.0, 1)),
        }
    }
    out.write(&(names.len() as u32).to_le_bytes())?;
    let mut values_at = 4 + 16 * names.len() as u64;
    for &(name, count) in &names {
        out.write(&name.to_le_bytes())?;
        out.write(&count.to_le_bytes())?;
        out.write(&values_at.to_le_bytes())?;
        values_at += 16 * u64::from(count);
    }
    for &(_, value, len, off) in &entries {
        out.write(&value.to_le_bytes())?;
        out.write(&len.to_le_bytes())?;
        out.write(&off.to_le_bytes())?;
    }
    toc[3] = out.end(start);

    let mut tail = Vec::with_capacity(TOC_LEN);
    for (off, len, crc) in toc {
        tail.extend_from_slice(&off.to_le_bytes());
        tail.extend_from_slice(&len.to_le_bytes());
        tail.extend_from_slice(&crc.to_le_bytes());
    }
    let toc_crc = crc32c::crc32c(&tail);
    tail.extend_from_slice(&toc_crc.to_le_bytes());
    tail.extend_from_slice(&INDEX_MAGIC);
    debug_assert_eq!(tail.len(), TOC_LEN);
    out.write(&tail)?;
    out.w.flush().map_err(BlockError::io("write", &path))?;
    out.w
        .get_ref()
        .sync_all()
        .map_err(BlockError::io("fsync", &path))
}

fn encode_entry(s: &Pending, remap: &[u32], out: &mut Vec<u8>) {
    out.clear();
    put_uvarint(out, s.labels.len() as u64);
    for &(n, v) in s.labels.iter() {
        put_uvarint(out, u64::from(remap[n as usize]));
        put_uvarint(out, u64::from(remap[v as usize]));
    }
    put_uvarint(out, u64::from(s.n_chunks));
    out.extend_from_slice(&s.chunk_refs);
}

/// The index file being written, with the running CRC of the current
/// section.
struct IndexOut {
    w: BufWriter<File>,
    pos: u64,
    crc: u32,
    path: PathBuf,
}

impl IndexOut {
    fn write(&mut self, b: &[u8]) -> Result<(), BlockError> {
        self.w
            .write_all(b)
            .map_err(BlockError::io("write", &self.path))?;
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.pos += b.len() as u64;
        Ok(())
    }

    fn begin(&mut self) -> u64 {
        self.crc = 0;
        self.pos
    }

    fn end(&self, start: u64) -> (u64, u64, u32) {
        (start, self.pos - start, self.crc)
    }
}
