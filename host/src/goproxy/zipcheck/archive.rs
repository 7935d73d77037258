//! A zip reader that sees exactly the entries Go's `archive/zip` sees.
//!
//! The `zip` crate alone is not enough for an untrusted module zip: it keys entries by name, so
//! duplicates (which `zip.checkZip` must reject) silently collapse into one, and it lets an
//! Info-ZIP Unicode path extra field (0x7075) replace the stored name, which Go ignores — a
//! hostile zip could show one name to us and another to the go command. So the central directory
//! is parsed here following `archive/zip/reader.go` (`readDirectoryEnd`, `readDirectoryHeader`,
//! `findBodyOffset`, `checksumReader`, `readDataDescriptor`), and the `zip` crate is used only to
//! decompress, after checking that it agrees with this parse entry by entry.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const FILE_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const DIRECTORY_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const DIRECTORY_END_SIGNATURE: [u8; 4] = *b"PK\x05\x06";
const DIRECTORY64_LOC_SIGNATURE: u32 = 0x0706_4b50;
const DIRECTORY64_END_SIGNATURE: u32 = 0x0606_4b50;
const DATA_DESCRIPTOR_SIGNATURE: u32 = 0x0807_4b50;
const FILE_HEADER_LEN: usize = 30;
const DIRECTORY_HEADER_LEN: usize = 46;
const DIRECTORY_END_LEN: usize = 22;
const DIRECTORY64_LOC_LEN: usize = 20;
const DIRECTORY64_END_LEN: usize = 56;
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// Compression methods Go's `archive/zip` registers by default (`Store`, `Deflate`).
pub(crate) const METHOD_STORE: u16 = 0;
pub(crate) const METHOD_DEFLATE: u16 = 8;

/// Size of the buffer entries are streamed through: the only per-entry memory.
const COPY_BUFFER: usize = 64 * 1024;

/// Why a zip could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArchiveError {
    /// The file itself could not be read.
    #[error("reading zip: {0}")]
    Io(#[from] io::Error),
    /// The file is larger than the caller allows (`MaxZipFile`); nothing was parsed.
    #[error("module zip file is too large ({size} bytes; limit is {limit} bytes)")]
    TooLarge {
        /// Actual size of the file.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The end-of-central-directory record or the central directory is missing or broken.
    #[error("not a valid zip file: {0}")]
    Format(&'static str),
    /// An entry's data contradicts its headers, as Go's `archive/zip` reports it.
    #[error("not a valid zip file: {0}")]
    Invalid(String),
    /// The caller's sink refused the data (a size limit); the message is final.
    #[error("{0}")]
    Refused(String),
    /// One entry cannot be read.
    #[error("zip entry {name:?}: {rule}")]
    Entry {
        /// The entry name (lossily decoded).
        name: String,
        /// What is wrong with it.
        rule: String,
    },
}

impl ArchiveError {
    /// An error about one entry.
    pub(crate) fn entry(entry: &Entry, rule: impl Into<String>) -> Self {
        Self::Entry {
            name: entry.name_lossy(),
            rule: rule.into(),
        }
    }
}

/// One central-directory record, as Go's `archive/zip.FileHeader` reads it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The stored name bytes (Go's `File.Name` is exactly these bytes).
    pub(crate) name: Vec<u8>,
    /// "Version made by": the high byte is the creator system.
    pub(crate) creator_version: u16,
    /// General-purpose flags.
    pub(crate) flags: u16,
    /// Compression method.
    pub(crate) method: u16,
    /// CRC-32 from the central directory.
    pub(crate) crc32: u32,
    /// Compressed size (zip64-aware).
    pub(crate) compressed_size: u64,
    /// Declared uncompressed size (zip64-aware).
    pub(crate) uncompressed_size: u64,
    /// External attributes (Unix mode in the high 16 bits for Unix creators).
    pub(crate) external_attrs: u32,
    /// Local header offset including the archive's base offset; may be out of range in a hostile
    /// zip, which is only detected when the entry is read (as in Go).
    header_offset: i128,
}

impl Entry {
    /// The name, lossily decoded, for messages.
    pub(crate) fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Go treats a name ending in `/` as a directory (`File.Open`, `checkZip`).
    pub(crate) fn is_dir(&self) -> bool {
        self.name.last() == Some(&b'/')
    }

    /// Traditional (bit 0) or strong (bit 6) encryption.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.flags & 0x0041 != 0
    }

    fn has_data_descriptor(&self) -> bool {
        self.flags & 0x0008 != 0
    }

    /// The Unix file type bits (`S_IFMT`), when the creator is Unix or macOS, the only systems for
    /// which Go's `FileHeader.Mode` reads the high 16 bits of the external attributes.
    pub(crate) fn unix_file_type(&self) -> Option<u32> {
        const CREATOR_UNIX: u16 = 3;
        const CREATOR_MACOSX: u16 = 19;
        match self.creator_version >> 8 {
            CREATOR_UNIX | CREATOR_MACOSX => Some((self.external_attrs >> 16) & 0o170_000),
            _ => None,
        }
    }
}

/// What the `zip` crate says about an entry, to compare with our own parse.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CrateView {
    index: usize,
    header_start: u64,
    data_start: u64,
    compressed_size: u64,
    size: u64,
    crc32: u32,
    method: Option<u16>,
    encrypted: bool,
}

/// An opened zip: the entries in central-directory order and the means to stream each one.
pub(crate) struct Archive {
    path: PathBuf,
    file: File,
    size: u64,
    entries: Vec<Entry>,
    /// Opened on the first read of a file entry (directories need no decompression).
    decoder: Option<Decoder>,
}

struct Decoder {
    zip: zip::ZipArchive<BufReader<File>>,
    by_name: HashMap<Vec<u8>, CrateView>,
}

impl Archive {
    /// Opens `path` and reads its central directory like Go's `zip.OpenReader`, refusing files
    /// larger than `max_size` before parsing anything.
    pub(crate) fn open(path: &Path, max_size: u64) -> Result<Self, ArchiveError> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        if size > max_size {
            return Err(ArchiveError::TooLarge {
                size,
                limit: max_size,
            });
        }
        let entries = read_central_directory(&mut file, size)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            entries,
            decoder: None,
        })
    }

    /// The entries, in central-directory order.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Streams the content of entry `index` into `sink`, with the checks Go applies when the
    /// entry is opened and copied (`File.Open`, `checksumReader`): a readable local header, a
    /// supported method, actual size equal to the declared size (reading stops one byte past it,
    /// so a zip bomb costs at most its declared size), CRC-32, data descriptor. Returns the number
    /// of bytes streamed.
    pub(crate) fn read_entry(
        &mut self,
        index: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ArchiveError>,
    ) -> Result<u64, ArchiveError> {
        let Some(entry) = self.entries.get(index).cloned() else {
            return Err(ArchiveError::Format("entry index out of range"));
        };
        let body_offset = self.find_body_offset(&entry)?;
        if entry.is_dir() {
            // archive/zip File.Open: a directory yields no data; one that declares data is
            // ErrFormat (tolerating a nonzero compressed size, as Go does for jar files).
            if entry.uncompressed_size != 0 {
                return Err(ArchiveError::entry(
                    &entry,
                    "directory entry declares content",
                ));
            }
            return Ok(0);
        }
        if entry.is_encrypted() {
            return Err(ArchiveError::entry(&entry, "is encrypted"));
        }
        if entry.method != METHOD_STORE && entry.method != METHOD_DEFLATE {
            return Err(ArchiveError::entry(
                &entry,
                format!("uses unsupported compression method {}", entry.method),
            ));
        }
        let crate_index = self.crate_index(&entry, body_offset)?;
        let declared = entry.uncompressed_size;
        let mut read = 0u64;
        {
            let decoder = self
                .decoder
                .as_mut()
                .ok_or(ArchiveError::Format("decoder missing"))?;
            let mut reader = decoder
                .zip
                .by_index(crate_index)
                .map_err(|e| ArchiveError::entry(&entry, format!("cannot be decompressed: {e}")))?;
            let mut buf = vec![0u8; COPY_BUFFER];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(ArchiveError::entry(&entry, format!("corrupt data: {e}")));
                    }
                };
                read += n as u64;
                // archive/zip checksumReader: reading past the declared size is ErrFormat.
                if read > declared {
                    return Err(ArchiveError::Invalid(format!(
                        "uncompressed size of file {} is larger than declared size ({declared} bytes)",
                        entry.name_lossy()
                    )));
                }
                let chunk = buf
                    .get(..n)
                    .ok_or(ArchiveError::Format("short read buffer"))?;
                sink(chunk)?;
            }
        }
        if read != declared {
            return Err(ArchiveError::entry(
                &entry,
                format!("decompresses to {read} bytes, not its declared size of {declared} bytes"),
            ));
        }
        if entry.has_data_descriptor() {
            self.check_data_descriptor(&entry, body_offset)?;
        }
        Ok(read)
    }

    /// `archive/zip` `findBodyOffset`: the local header must be there; its own name and extra
    /// lengths (not the central directory's) say where the data starts.
    fn find_body_offset(&mut self, entry: &Entry) -> Result<u64, ArchiveError> {
        let offset = u64::try_from(entry.header_offset)
            .map_err(|_| ArchiveError::entry(entry, "local header offset is out of range"))?;
        let mut buf = [0u8; FILE_HEADER_LEN];
        self.read_at(offset, &mut buf)
            .map_err(|_| ArchiveError::entry(entry, "local header is truncated"))?;
        let mut b = Le(&buf);
        if b.u32() != Some(FILE_HEADER_SIGNATURE) {
            return Err(ArchiveError::entry(
                entry,
                "local header signature is missing",
            ));
        }
        let mut b = Le(buf.get(26..).unwrap_or_default());
        let name_len = u64::from(b.u16().unwrap_or_default());
        let extra_len = u64::from(b.u16().unwrap_or_default());
        Ok(offset + FILE_HEADER_LEN as u64 + name_len + extra_len)
    }

    /// `archive/zip` `readDataDescriptor`: the descriptor's CRC must match the directory's.
    fn check_data_descriptor(
        &mut self,
        entry: &Entry,
        body_offset: u64,
    ) -> Result<(), ArchiveError> {
        let truncated = || ArchiveError::entry(entry, "data descriptor is truncated");
        let at = body_offset
            .checked_add(entry.compressed_size)
            .ok_or_else(truncated)?;
        let mut buf = [0u8; 16];
        let available = self.size.saturating_sub(at).min(16) as usize;
        let window = buf.get_mut(..available).ok_or_else(truncated)?;
        self.read_at(at, window).map_err(|_| truncated())?;
        let mut b = Le(window);
        let first = b.u32().ok_or_else(truncated)?;
        // The signature is optional; without it the CRC comes first (12 bytes in all).
        let crc = if first == DATA_DESCRIPTOR_SIGNATURE {
            b.u32()
        } else {
            Some(first)
        };
        let needed = if first == DATA_DESCRIPTOR_SIGNATURE {
            16
        } else {
            12
        };
        match crc {
            Some(crc) if available >= needed => {
                if crc != entry.crc32 {
                    return Err(ArchiveError::entry(
                        entry,
                        "data descriptor checksum mismatch",
                    ));
                }
                Ok(())
            }
            _ => Err(truncated()),
        }
    }

    /// The `zip` crate's index for `entry`, after checking that the crate reads the same entry
    /// (same stored name, offsets, sizes, CRC and method) that Go's reader sees.
    fn crate_index(&mut self, entry: &Entry, body_offset: u64) -> Result<usize, ArchiveError> {
        if self.decoder.is_none() {
            self.decoder = Some(self.open_decoder()?);
        }
        let decoder = self
            .decoder
            .as_ref()
            .ok_or(ArchiveError::Format("decoder missing"))?;
        let expected = CrateView {
            index: 0,
            header_start: u64::try_from(entry.header_offset).unwrap_or(u64::MAX),
            data_start: body_offset,
            compressed_size: entry.compressed_size,
            size: entry.uncompressed_size,
            crc32: entry.crc32,
            method: Some(entry.method),
            encrypted: false,
        };
        match decoder.by_name.get(&entry.name) {
            Some(view)
                if CrateView {
                    index: 0,
                    ..view.clone()
                } == expected =>
            {
                Ok(view.index)
            }
            _ => Err(ArchiveError::entry(
                entry,
                "is read differently by different zip readers (ambiguous zip)",
            )),
        }
    }

    fn open_decoder(&self) -> Result<Decoder, ArchiveError> {
        let file = File::open(&self.path)?;
        if file.metadata()?.len() != self.size {
            return Err(ArchiveError::Format("zip file changed while being read"));
        }
        let mut zip = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|_| ArchiveError::Format("the central directory is unreadable"))?;
        let mut by_name = HashMap::with_capacity(zip.len());
        for index in 0..zip.len() {
            // An entry the crate cannot locate simply has no view; if Go's reader sees a file
            // there, reading it fails with "ambiguous zip".
            let Ok(f) = zip.by_index_raw(index) else {
                continue;
            };
            let method = match f.compression() {
                zip::CompressionMethod::Stored => Some(METHOD_STORE),
                zip::CompressionMethod::Deflated => Some(METHOD_DEFLATE),
                _ => None,
            };
            let view = CrateView {
                index,
                header_start: f.header_start(),
                data_start: f.data_start(),
                compressed_size: f.compressed_size(),
                size: f.size(),
                crc32: f.crc32(),
                method,
                encrypted: f.encrypted(),
            };
            by_name.insert(f.name_raw().to_vec(), view);
        }
        Ok(Decoder { zip, by_name })
    }

    /// Go's `ReadAt` into a full buffer: a short read is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }
}

/// `archive/zip` `Reader.init`: find the end record, then read directory headers from the
/// directory start until one is bad; the count must then match the end record's modulo 65536.
fn read_central_directory(file: &mut File, size: u64) -> Result<Vec<Entry>, ArchiveError> {
    let (end, base_offset) = read_directory_end(file, size)?;
    let start = base_offset + i128::from(end.directory_offset);
    let start = u64::try_from(start).map_err(|_| ArchiveError::Format("bad directory offset"))?;
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(&mut *file);
    let mut entries = Vec::new();
    let stop = loop {
        match read_directory_header(&mut reader)? {
            Header::Entry(mut entry) => {
                entry.header_offset += base_offset;
                entries.push(entry);
            }
            Header::Bad(why) => break why,
        }
    };
    // Only 16 bits are compared: writers truncate the count of zips with more entries.
    if entries.len() as u16 != end.directory_records as u16 {
        return Err(ArchiveError::Format(stop));
    }
    Ok(entries)
}

struct DirectoryEnd {
    directory_records: u64,
    directory_size: u64,
    directory_offset: u64,
}

/// `archive/zip` `readDirectoryEnd`, including the zip64 locator and the base-offset heuristics.
fn read_directory_end(file: &mut File, size: u64) -> Result<(DirectoryEnd, i128), ArchiveError> {
    const NOT_FOUND: ArchiveError =
        ArchiveError::Format("no end of central directory record (truncated or not a zip)");
    // Look for the signature in the last 1 KiB, then in the last 65 KiB.
    let mut found = None;
    for (attempt, block) in [1024u64, 65 * 1024].into_iter().enumerate() {
        let block = block.min(size);
        let mut buf = vec![0u8; block as usize];
        file.seek(SeekFrom::Start(size - block))?;
        file.read_exact(&mut buf)?;
        if let Some(p) = find_signature_in_block(&buf) {
            found = Some((buf, p, size - block + p as u64));
            break;
        }
        if attempt == 1 || block == size {
            return Err(NOT_FOUND);
        }
    }
    let Some((buf, p, mut end_offset)) = found else {
        return Err(NOT_FOUND);
    };
    let record = buf.get(p + 4..).ok_or(NOT_FOUND)?;
    let mut b = Le(record);
    let fields = (|| {
        let _disk = b.u16()?;
        let _dir_disk = b.u16()?;
        let _records_this_disk = b.u16()?;
        let records = b.u16()?;
        let dir_size = b.u32()?;
        let dir_offset = b.u32()?;
        Some((records, dir_size, dir_offset))
    })();
    let (records, dir_size, dir_offset) = fields.ok_or(NOT_FOUND)?;
    let mut end = DirectoryEnd {
        directory_records: u64::from(records),
        directory_size: u64::from(dir_size),
        directory_offset: u64::from(dir_offset),
    };
    // Go compares the directory size with 0xffff, not 0xffffffff; kept for fidelity.
    if (records == 0xffff || dir_size == 0xffff || dir_offset == 0xffff_ffff)
        && let Some(p) = find_directory64_end(file, end_offset)?
    {
        end_offset = p;
        read_directory64_end(file, size, p, &mut end)?;
    }
    let mut base_offset =
        i128::from(end_offset) - i128::from(end.directory_size) - i128::from(end.directory_offset);
    let start = base_offset + i128::from(end.directory_offset);
    if start < 0 || start >= i128::from(size) {
        return Err(ArchiveError::Format(
            "central directory offset is out of range",
        ));
    }
    // A wrong base offset in the end record is ignored if a directory header sits at the
    // recorded offset itself.
    if base_offset > 0 && end.directory_offset < size {
        file.seek(SeekFrom::Start(end.directory_offset))?;
        let mut reader = BufReader::new(&mut *file);
        if matches!(read_directory_header(&mut reader), Ok(Header::Entry(_))) {
            base_offset = 0;
        }
    }
    Ok((end, base_offset))
}

/// `archive/zip` `findSignatureInBlock`: the last end signature whose comment fits the block.
fn find_signature_in_block(b: &[u8]) -> Option<usize> {
    let last = b.len().checked_sub(DIRECTORY_END_LEN)?;
    (0..=last).rev().find(|&i| {
        let Some(window) = b.get(i..i + DIRECTORY_END_LEN) else {
            return false;
        };
        let comment_len = usize::from(u16::from_le_bytes([window[20], window[21]]));
        window.starts_with(&DIRECTORY_END_SIGNATURE)
            && comment_len + DIRECTORY_END_LEN + i <= b.len()
    })
}

/// `archive/zip` `findDirectory64End`: the zip64 locator just before the end record, if valid.
fn find_directory64_end(file: &mut File, end_offset: u64) -> Result<Option<u64>, ArchiveError> {
    let Some(loc) = end_offset.checked_sub(DIRECTORY64_LOC_LEN as u64) else {
        return Ok(None);
    };
    let mut buf = [0u8; DIRECTORY64_LOC_LEN];
    file.seek(SeekFrom::Start(loc))?;
    file.read_exact(&mut buf)?;
    let mut b = Le(&buf);
    if b.u32() != Some(DIRECTORY64_LOC_SIGNATURE) || b.u32() != Some(0) {
        return Ok(None);
    }
    let p = b.u64().unwrap_or(u64::MAX);
    if b.u32() != Some(1) || i64::try_from(p).is_err() {
        return Ok(None);
    }
    Ok(Some(p))
}

/// `archive/zip` `readDirectory64End`.
fn read_directory64_end(
    file: &mut File,
    size: u64,
    offset: u64,
    end: &mut DirectoryEnd,
) -> Result<(), ArchiveError> {
    const BAD: ArchiveError = ArchiveError::Format("bad zip64 end of central directory record");
    if offset.saturating_add(DIRECTORY64_END_LEN as u64) > size {
        return Err(BAD);
    }
    let mut buf = [0u8; DIRECTORY64_END_LEN];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)?;
    let mut b = Le(&buf);
    if b.u32() != Some(DIRECTORY64_END_SIGNATURE) {
        return Err(BAD);
    }
    let mut b = Le(buf.get(4 + 12 + 8..).unwrap_or_default());
    end.directory_records = b.u64().ok_or(BAD)?;
    end.directory_size = b.u64().ok_or(BAD)?;
    end.directory_offset = b.u64().ok_or(BAD)?;
    Ok(())
}

enum Header {
    Entry(Entry),
    /// Go's `ErrFormat` or `io.ErrUnexpectedEOF`: the end of the directory listing.
    Bad(&'static str),
}

/// `archive/zip` `readDirectoryHeader`.
fn read_directory_header(r: &mut impl Read) -> Result<Header, ArchiveError> {
    let mut buf = [0u8; DIRECTORY_HEADER_LEN];
    match read_full(r, &mut buf)? {
        Full::Yes => {}
        // io.ReadFull's io.EOF (nothing at all) is not one of the errors Go's loop stops on.
        Full::Nothing => {
            return Err(ArchiveError::Format(
                "central directory runs to end of file",
            ));
        }
        Full::Partly => return Ok(Header::Bad("central directory is truncated")),
    }
    let mut b = Le(&buf);
    if b.u32() != Some(DIRECTORY_HEADER_SIGNATURE) {
        return Ok(Header::Bad(
            "central directory has the wrong number of entries",
        ));
    }
    let fields = (|| {
        let creator_version = b.u16()?;
        let _reader_version = b.u16()?;
        let flags = b.u16()?;
        let method = b.u16()?;
        let _time = b.u16()?;
        let _date = b.u16()?;
        let crc32 = b.u32()?;
        let compressed = b.u32()?;
        let uncompressed = b.u32()?;
        let name_len = usize::from(b.u16()?);
        let extra_len = usize::from(b.u16()?);
        let comment_len = usize::from(b.u16()?);
        let _disk_and_internal_attrs = b.u32()?;
        let external_attrs = b.u32()?;
        let header_offset = b.u32()?;
        Some((
            creator_version,
            flags,
            method,
            crc32,
            compressed,
            uncompressed,
            (name_len, extra_len, comment_len),
            external_attrs,
            header_offset,
        ))
    })();
    let Some((creator_version, flags, method, crc32, csize, usize32, lens, external_attrs, offset)) =
        fields
    else {
        return Ok(Header::Bad("central directory header is short"));
    };
    let (name_len, extra_len, comment_len) = lens;
    let mut rest = vec![0u8; name_len + extra_len + comment_len];
    match read_full(r, &mut rest)? {
        Full::Yes => {}
        Full::Nothing => {
            return Err(ArchiveError::Format(
                "central directory runs to end of file",
            ));
        }
        Full::Partly => return Ok(Header::Bad("central directory is truncated")),
    }
    let name = rest.get(..name_len).unwrap_or_default().to_vec();
    let extra = rest.get(name_len..name_len + extra_len).unwrap_or_default();

    let mut entry = Entry {
        name,
        creator_version,
        flags,
        method,
        crc32,
        compressed_size: u64::from(csize),
        uncompressed_size: u64::from(usize32),
        external_attrs,
        header_offset: i128::from(offset),
    };
    let mut need_usize = usize32 == u32::MAX;
    let mut need_csize = csize == u32::MAX;
    let mut need_offset = offset == u32::MAX;
    let mut extra = Le(extra);
    while extra.0.len() >= 4 {
        let (Some(tag), Some(field_len)) = (extra.u16(), extra.u16()) else {
            break;
        };
        let Some(field) = extra.sub(usize::from(field_len)) else {
            break;
        };
        if tag != ZIP64_EXTRA_ID {
            continue;
        }
        // Zip64 values are only consulted for fields that are maxed out (golang.org/issue/13367).
        let mut field = Le(field);
        let bad = Header::Bad("bad zip64 extra field");
        if need_usize {
            need_usize = false;
            let Some(v) = field.u64() else { return Ok(bad) };
            entry.uncompressed_size = v;
        }
        if need_csize {
            need_csize = false;
            let Some(v) = field.u64() else { return Ok(bad) };
            entry.compressed_size = v;
        }
        if need_offset {
            need_offset = false;
            let Some(v) = field.u64() else { return Ok(bad) };
            // Go converts with int64(...), so offsets ≥ 2^63 become negative (and unreadable).
            entry.header_offset = i128::from(v as i64);
        }
    }
    // An uncompressed size of 2^32-1 without zip64 is accepted (42.zip); the others are not.
    let _ = need_usize;
    if need_csize || need_offset {
        return Ok(Header::Bad("zip64 sizes are missing"));
    }
    Ok(Header::Entry(entry))
}

enum Full {
    Yes,
    Nothing,
    Partly,
}

/// Go's `io.ReadFull`, distinguishing "nothing read" (`io.EOF`) from a short read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<Full> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => {
                return Ok(if filled == 0 {
                    Full::Nothing
                } else {
                    Full::Partly
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Full::Yes)
}

/// A little-endian cursor; every read is bounds-checked.
struct Le<'a>(&'a [u8]);

impl<'a> Le<'a> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn sub(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}
