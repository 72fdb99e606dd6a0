//! Sealed head chunks kept out of the process heap, as Prometheus'
//! `chunks_head/`: a per-shard append-only store of memory-mapped files.
//!
//! Each file (`<shard>/head_chunks/NNNNNNNN`) is created at a fixed size
//! (sparse) and mapped once, shared and read-only. A sealed chunk is written
//! with `pwrite` at the file's next offset and read back through the map, so
//! its bytes live in the page cache: they count toward the process' RSS only
//! while a read has touched them, and the kernel may drop them (they are
//! written back to disk first) under memory pressure. When a file is full the
//! next one is started. Every file remembers the newest `max_t` of its
//! chunks; [`ChunkFiles::truncate_before`] deletes (and unmaps) the files
//! whose chunks all end before the head's new lower bound.
//!
//! The files are not for durability: the WAL is. Opening the store deletes
//! whatever a previous process left and replay rebuilds the head (writing
//! its chunks here again). A write that fails (disk full, directory gone)
//! loses nothing: that chunk stays on the heap, a warning is logged once,
//! and writing is retried after [`RETRY_AFTER`]. The format is described in
//! `docs/format/head_chunks.md`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::Mmap;
use tracing::{info, warn};

use crate::chunk::{Chunk, ChunkRef};

/// Size of each head chunk file: Prometheus' 128 MiB halved, so a shard
/// with little data does not pin much address space or disk.
pub(crate) const FILE_SIZE: u64 = 64 << 20;

/// After a failed write, chunks stay on the heap this long before the next
/// attempt, so a full disk costs one failing syscall per interval, not one
/// per sealed chunk.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// A sealed chunk of a head series: in a chunk file, or on the heap (no
/// store, or its write failed). `min_t` and `max_t` are kept inline so time
/// filtering never touches a mapped page.
pub(crate) struct HeadChunk {
    min_t: i64,
    max_t: i64,
    loc: Loc,
}

enum Loc {
    File { file: u32, off: u32, len: u32 },
    // Boxed: keeps `Loc` at 16 bytes (a fat `Box<[u8]>` would make it 24),
    // and heap chunks are the exception once a store is enabled.
    Heap(Box<Chunk>),
}

impl HeadChunk {
    pub(crate) fn on_heap(c: Chunk) -> HeadChunk {
        HeadChunk {
            min_t: c.min_t(),
            max_t: c.max_t(),
            loc: Loc::Heap(Box::new(c)),
        }
    }

    pub(crate) fn min_t(&self) -> i64 {
        self.min_t
    }

    pub(crate) fn max_t(&self) -> i64 {
        self.max_t
    }

    /// Heap bytes held beyond the `HeadChunk` itself.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.loc {
            Loc::Heap(c) => std::mem::size_of::<Chunk>() + c.as_bytes().len(),
            Loc::File { .. } => 0,
        }
    }

    /// Bytes of the chunk in a chunk file (0 for a heap chunk).
    pub(crate) fn mapped_bytes(&self) -> usize {
        match self.loc {
            Loc::File { len, .. } => len as usize,
            Loc::Heap(_) => 0,
        }
    }

    /// The chunk for reading. `None` only when a file chunk is asked for
    /// without the store that holds it or its bytes are not a chunk: both
    /// bugs (a file is deleted only once no chunk refers to it).
    pub(crate) fn chunk_ref<'a>(&'a self, files: Option<&'a ChunkFiles>) -> Option<ChunkRef<'a>> {
        match &self.loc {
            Loc::Heap(c) => Some(Chunk::as_ref(c)),
            Loc::File { file, off, len } => {
                let b = files?.bytes(*file, *off, *len)?;
                ChunkRef::new(b).ok()
            }
        }
    }
}

/// One head chunk file.
struct MappedFile {
    seq: u32,
    file: File,
    /// The whole file, mapped read-only; bytes below `used` are chunks.
    map: Mmap,
    used: u64,
    /// Newest `max_t` of the chunks written (`i64::MIN` with none).
    max_t: i64,
}

/// The head chunk files of one shard.
pub(crate) struct ChunkFiles {
    dir: PathBuf,
    file_size: u64,
    /// Live files in `seq` order; the last one takes new chunks.
    files: Vec<MappedFile>,
    next_seq: u32,
    /// Set after a failed write: chunks stay on the heap until then (the
    /// failure was logged once; a later success is logged too).
    retry_at: Option<Instant>,
    /// Chunks kept on the heap because a write failed.
    heap_fallbacks: u64,
}

impl ChunkFiles {
    /// Creates the store in `dir`, deleting anything a previous process
    /// left there (the WAL replay that follows rebuilds the head).
    pub(crate) fn open(dir: &Path) -> io::Result<ChunkFiles> {
        ChunkFiles::with_file_size(dir, FILE_SIZE)
    }

    /// [`ChunkFiles::open`] with files of `file_size` bytes (at most 4 GiB:
    /// offsets are 32-bit).
    pub(crate) fn with_file_size(dir: &Path, file_size: u64) -> io::Result<ChunkFiles> {
        if file_size == 0 || file_size > u64::from(u32::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("head chunk file size {file_size} is not in 1..=4294967295"),
            ));
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(dir)?;
        Ok(ChunkFiles {
            dir: dir.to_path_buf(),
            file_size,
            files: Vec::new(),
            next_seq: 0,
            retry_at: None,
            heap_fallbacks: 0,
        })
    }

    /// Stores a sealed chunk: in the current file, or on the heap when
    /// writing fails (or failed less than [`RETRY_AFTER`] ago).
    pub(crate) fn seal(&mut self, c: Chunk) -> HeadChunk {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            self.heap_fallbacks += 1;
            return HeadChunk::on_heap(c);
        }
        let (min_t, max_t) = (c.min_t(), c.max_t());
        match self.write(c.as_bytes(), max_t) {
            Ok((file, off)) => {
                if self.retry_at.take().is_some() {
                    info!(
                        dir = %self.dir.display(),
                        heap_fallbacks = self.heap_fallbacks,
                        "head chunk files are written again"
                    );
                }
                HeadChunk {
                    min_t,
                    max_t,
                    loc: Loc::File {
                        file,
                        off,
                        len: c.as_bytes().len() as u32,
                    },
                }
            }
            Err(e) => {
                if self.retry_at.is_none() {
                    warn!(
                        dir = %self.dir.display(),
                        error = %e,
                        "cannot write a head chunk file; sealed chunks stay on the heap \
                         (nothing is lost, memory use grows) until a write succeeds"
                    );
                }
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                self.heap_fallbacks += 1;
                HeadChunk::on_heap(c)
            }
        }
    }

    /// Writes chunk bytes at the end of the current file (a new one when
    /// they do not fit); returns (file seq, offset).
    fn write(&mut self, b: &[u8], max_t: i64) -> io::Result<(u32, u32)> {
        let len = b.len() as u64;
        if len > self.file_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {len}-byte chunk does not fit a {}-byte head chunk file",
                    self.file_size
                ),
            ));
        }
        if self
            .files
            .last()
            .is_none_or(|f| f.used + len > self.file_size)
        {
            self.new_file()?;
        }
        let f = self
            .files
            .last_mut()
            .expect("new_file pushed a file or failed");
        // A failed or short write leaves `used` as it was: the next chunk
        // overwrites whatever part of this one landed.
        f.file.write_all_at(b, f.used)?;
        let off = f.used as u32;
        f.used += len;
        f.max_t = f.max_t.max(max_t);
        Ok((f.seq, off))
    }

    fn new_file(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        let path = self.dir.join(format!("{seq:08}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        self.next_seq = seq
            .checked_add(1)
            .ok_or_else(|| io::Error::other("head chunk file numbers exhausted"))?;
        let mapped = file.set_len(self.file_size).and_then(|()| {
            // SAFETY: the file is this store's own, created above in a
            // directory the process recreated at start; nothing else
            // writes or truncates it, and it keeps its length until it is
            // unmapped and deleted in `truncate_before`. Chunk bytes are
            // only read below `used`, after `pwrite` put them there.
            unsafe { Mmap::map(&file) }
        });
        match mapped {
            Ok(map) => {
                self.files.push(MappedFile {
                    seq,
                    file,
                    map,
                    used: 0,
                    max_t: i64::MIN,
                });
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn bytes(&self, seq: u32, off: u32, len: u32) -> Option<&[u8]> {
        let i = self.files.binary_search_by_key(&seq, |f| f.seq).ok()?;
        let f = &self.files[i];
        let (off, end) = (off as usize, off as usize + len as usize);
        if end as u64 > f.used {
            return None;
        }
        f.map.get(off..end)
    }

    /// Deletes the files whose chunks all end before `t`. The caller has
    /// dropped every chunk with `max_t < t` first, so no chunk refers to
    /// them. Returns how many files were deleted.
    pub(crate) fn truncate_before(&mut self, t: i64) -> usize {
        let before = self.files.len();
        let dir = &self.dir;
        self.files.retain(|f| {
            if f.max_t >= t {
                return true;
            }
            let path = dir.join(format!("{:08}", f.seq));
            if let Err(e) = std::fs::remove_file(&path) {
                // Unmapped all the same; the next start clears the dir.
                warn!(path = %path.display(), error = %e, "cannot delete a head chunk file");
            }
            false
        });
        before - self.files.len()
    }

    /// Files currently held.
    #[cfg(test)]
    pub(crate) fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Chunks kept on the heap because a write failed.
    #[cfg(test)]
    pub(crate) fn heap_fallbacks(&self) -> u64 {
        self.heap_fallbacks
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.dir.as_os_str().len()
            + self.files.capacity() * std::mem::size_of::<MappedFile>()
    }
}

/// Seals `c` into `files` when the head has a store, else keeps it on the heap.
pub(crate) fn seal(files: Option<&mut ChunkFiles>, c: Chunk) -> HeadChunk {
    match files {
        Some(f) => f.seal(c),
        None => HeadChunk::on_heap(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkBuilder;

    /// A chunk of `n` samples starting at `t0`, values varied by `k`.
    fn chunk(t0: i64, n: i64, k: i64) -> Chunk {
        let mut b = ChunkBuilder::new();
        for i in 0..n {
            let v = if k % 3 == 0 {
                ((i * 7 + k) % 13) as f64 * 0.25
            } else {
                (k as f64).sin() * 1e3 + i as f64 * 1.5
            };
            b.append(t0 + i * 15_000, v);
        }
        b.seal()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn samples(c: ChunkRef<'_>) -> Vec<(i64, u64)> {
        let mut it = c.iter();
        let mut out = Vec::new();
        let mut cur = it.seek(i64::MIN);
        while let Some((t, v)) = cur {
            out.push((t, v.to_bits()));
            cur = it.next();
        }
        out
    }

    #[test]
    fn chunks_across_files_read_back_bit_exact() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("head_chunks");
        // Leftovers of a previous process are cleared at open.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000007"), b"stale").unwrap();
        let mut cf = ChunkFiles::with_file_size(&dir, 4096).unwrap();
        assert!(files_in(&dir).is_empty());
        let want: Vec<Chunk> = (0..300).map(|k| chunk(k * 1_000, 120, k)).collect();
        let got: Vec<HeadChunk> = want.iter().map(|c| cf.seal(c.clone())).collect();
        assert!(cf.file_count() > 5, "{} files", cf.file_count());
        assert_eq!(cf.heap_fallbacks(), 0);
        assert_eq!(files_in(&dir).len(), cf.file_count());
        for (w, g) in want.iter().zip(&got) {
            assert!(g.mapped_bytes() > 0 && g.heap_bytes() == 0);
            assert_eq!((g.min_t(), g.max_t()), (w.min_t(), w.max_t()));
            let r = g.chunk_ref(Some(&cf)).unwrap();
            assert_eq!(r.as_bytes(), w.as_bytes());
            assert_eq!(samples(r), samples(w.as_ref()));
        }
        // Every file is exactly the configured size on disk (sparse).
        for name in files_in(&dir) {
            assert_eq!(std::fs::metadata(dir.join(name)).unwrap().len(), 4096);
        }
    }

    #[test]
    fn truncate_deletes_only_whole_old_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hc");
        let mut cf = ChunkFiles::with_file_size(&dir, 4096).unwrap();
        // Chunk k spans [k*10_000, k*10_000 + 119*15_000].
        let want: Vec<Chunk> = (0..200).map(|k| chunk(k * 10_000, 120, k)).collect();
        let mut got: Vec<HeadChunk> = want.iter().map(|c| cf.seal(c.clone())).collect();
        let n_files = cf.file_count();
        assert!(n_files > 4);
        let t = want[100].max_t();
        // The head drops chunks ending before t, then the store its files.
        let keep = got.iter().position(|c| c.max_t() >= t).unwrap();
        got.drain(..keep);
        let deleted = cf.truncate_before(t);
        assert!(deleted > 0 && deleted < n_files, "{deleted} of {n_files}");
        assert_eq!(files_in(&dir).len(), n_files - deleted);
        // The file holding chunk 100 straddles t and stays: every kept
        // chunk still reads back.
        for (w, g) in want[keep..].iter().zip(&got) {
            assert_eq!(g.chunk_ref(Some(&cf)).unwrap().as_bytes(), w.as_bytes());
        }
        // Nothing is newer than max_t + 1: every file goes.
        let all = cf.truncate_before(want[199].max_t() + 1);
        assert_eq!(all, n_files - deleted);
        assert!(files_in(&dir).is_empty());
        // Writing goes on in a new file.
        let c = chunk(1 << 40, 120, 5);
        let hc = cf.seal(c.clone());
        assert_eq!(hc.chunk_ref(Some(&cf)).unwrap().as_bytes(), c.as_bytes());
        assert_eq!(files_in(&dir), vec![format!("{:08}", n_files)]);
    }

    #[test]
    fn failed_writes_keep_chunks_on_the_heap() {
        let tmp = tempfile::tempdir().unwrap();
        // Files smaller than a chunk: every write fails.
        let mut cf = ChunkFiles::with_file_size(&tmp.path().join("small"), 64).unwrap();
        let c = chunk(0, 120, 1);
        let hc = cf.seal(c.clone());
        assert_eq!(hc.mapped_bytes(), 0);
        assert!(hc.heap_bytes() > c.as_bytes().len());
        assert_eq!(hc.chunk_ref(Some(&cf)).unwrap().as_bytes(), c.as_bytes());
        assert_eq!(hc.chunk_ref(None).unwrap().as_bytes(), c.as_bytes());
        assert_eq!((cf.heap_fallbacks(), cf.file_count()), (1, 0));

        // The directory vanishes (as a full disk, new files cannot be
        // made): chunks already in files stay readable through their
        // maps, new ones stay on the heap and are readable too.
        let dir = tmp.path().join("gone");
        let mut cf = ChunkFiles::with_file_size(&dir, 4096).unwrap();
        let want: Vec<Chunk> = (0..100).map(|k| chunk(k * 1_000, 120, k)).collect();
        let mut got: Vec<HeadChunk> = want[..50].iter().map(|c| cf.seal(c.clone())).collect();
        std::fs::remove_dir_all(&dir).unwrap();
        got.extend(want[50..].iter().map(|c| cf.seal(c.clone())));
        assert!(got[..50].iter().all(|c| c.mapped_bytes() > 0));
        // The open file (unlinked, still open) takes chunks until it is
        // full; from the first failure on, chunks stay on the heap.
        let first_heap = got.iter().position(|c| c.mapped_bytes() == 0).unwrap();
        assert!(got[first_heap..].iter().all(|c| c.mapped_bytes() == 0));
        assert_eq!(cf.heap_fallbacks(), (100 - first_heap) as u64);
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(g.chunk_ref(Some(&cf)).unwrap().as_bytes(), w.as_bytes());
        }
        // Deleting files that are already gone only warns.
        cf.truncate_before(i64::MAX);
        assert_eq!(cf.file_count(), 0);
    }

    #[test]
    fn head_chunk_is_small() {
        assert!(std::mem::size_of::<HeadChunk>() <= 32);
    }
}
