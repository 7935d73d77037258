//! Test helpers: zips built with the `zip` crate, and raw zips for the hostility the crate will
//! not produce (duplicate names, forged sizes and CRCs, symlink modes, encryption flags, extra
//! fields, data descriptors).

use std::io::{Cursor, Write as _};

use zip::write::SimpleFileOptions;

/// The module of the GOPROXY.md §4 vectors.
pub(crate) const MODULE: &str = "example.com/m";
/// The version of the GOPROXY.md §4 vectors.
pub(crate) const VERSION: &str = "v1.0.0";
/// The prefix every entry of a zip for `MODULE@VERSION` must carry.
pub(crate) const PREFIX: &str = "example.com/m@v1.0.0/";

/// A deflated zip built with the `zip` crate; names ending in `/` become directory entries.
pub(crate) fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        if let Some(dir) = name.strip_suffix('/') {
            w.add_directory(dir, options).expect("add directory");
        } else {
            w.start_file(*name, options).expect("start file");
            w.write_all(data).expect("write");
        }
    }
    w.finish().expect("finish").into_inner()
}

/// [`build`] with every name given below [`PREFIX`].
pub(crate) fn build_prefixed(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let named: Vec<(String, &[u8])> = entries
        .iter()
        .map(|(n, d)| (format!("{PREFIX}{n}"), *d))
        .collect();
    let refs: Vec<(&str, &[u8])> = named.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    build(&refs)
}

/// Writes `bytes` to a temporary file.
pub(crate) fn tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write temp file");
    f.flush().expect("flush");
    f
}

/// One entry of a [`raw_zip`]: stored (method field as given, data written as is).
#[derive(Clone)]
pub(crate) struct RawEntry {
    pub(crate) name: Vec<u8>,
    pub(crate) data: Vec<u8>,
    pub(crate) method: u16,
    pub(crate) flags: u16,
    /// Overrides the CRC-32 in the headers.
    pub(crate) crc: Option<u32>,
    /// Overrides the declared uncompressed size.
    pub(crate) size: Option<u32>,
    /// "Version made by" (high byte: 3 = Unix).
    pub(crate) creator: u16,
    pub(crate) external_attrs: u32,
    /// Extra field bytes, in both headers.
    pub(crate) extra: Vec<u8>,
    /// Writes a data descriptor (with signature) and sets flag 8.
    pub(crate) descriptor: bool,
    /// Overrides the CRC-32 in the data descriptor.
    pub(crate) descriptor_crc: Option<u32>,
}

impl RawEntry {
    /// A stored file named `PREFIX + name`.
    pub(crate) fn file(name: &str, data: &[u8]) -> Self {
        Self::named(format!("{PREFIX}{name}").as_bytes(), data)
    }

    /// A stored file with exactly this name.
    pub(crate) fn named(name: &[u8], data: &[u8]) -> Self {
        Self {
            name: name.to_vec(),
            data: data.to_vec(),
            method: 0,
            flags: 0,
            crc: None,
            size: None,
            creator: 20,
            external_attrs: 0,
            extra: Vec::new(),
            descriptor: false,
            descriptor_crc: None,
        }
    }
}

/// A zip laid out by hand: local headers and data, central directory, end record.
pub(crate) fn raw_zip(entries: &[RawEntry]) -> Vec<u8> {
    fn u16le(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32le(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let crc = e.crc.unwrap_or_else(|| crc32(&e.data));
        let csize = e.data.len() as u32;
        let usize_ = e.size.unwrap_or(csize);
        let flags = e.flags | if e.descriptor { 8 } else { 0 };
        // Local header.
        u32le(&mut out, 0x0403_4b50);
        u16le(&mut out, 20);
        u16le(&mut out, flags);
        u16le(&mut out, e.method);
        u16le(&mut out, 0);
        u16le(&mut out, 0x21);
        let (lcrc, lc, lu) = if e.descriptor {
            (0, 0, 0)
        } else {
            (crc, csize, usize_)
        };
        u32le(&mut out, lcrc);
        u32le(&mut out, lc);
        u32le(&mut out, lu);
        u16le(&mut out, e.name.len() as u16);
        u16le(&mut out, e.extra.len() as u16);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.extra);
        out.extend_from_slice(&e.data);
        if e.descriptor {
            u32le(&mut out, 0x0807_4b50);
            u32le(&mut out, e.descriptor_crc.unwrap_or(crc));
            u32le(&mut out, csize);
            u32le(&mut out, usize_);
        }
        // Central directory header.
        u32le(&mut central, 0x0201_4b50);
        u16le(&mut central, e.creator);
        u16le(&mut central, 20);
        u16le(&mut central, flags);
        u16le(&mut central, e.method);
        u16le(&mut central, 0);
        u16le(&mut central, 0x21);
        u32le(&mut central, crc);
        u32le(&mut central, csize);
        u32le(&mut central, usize_);
        u16le(&mut central, e.name.len() as u16);
        u16le(&mut central, e.extra.len() as u16);
        u16le(&mut central, 0);
        u16le(&mut central, 0);
        u16le(&mut central, 0);
        u32le(&mut central, e.external_attrs);
        u32le(&mut central, offset);
        central.extend_from_slice(&e.name);
        central.extend_from_slice(&e.extra);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    u16le(&mut out, 0);
    u16le(&mut out, 0);
    u16le(&mut out, entries.len() as u16);
    u16le(&mut out, entries.len() as u16);
    u32le(&mut out, central.len() as u32);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    out
}

/// Rewrites the declared uncompressed size of the entry named `name` in both its local and its
/// central header (the crate-built zips have one entry per name and no data descriptors).
pub(crate) fn forge_size(zip: &mut [u8], name: &str, size: u32) {
    let mut patched = 0;
    for i in 0..zip.len().saturating_sub(46) {
        let (sig, name_at, size_at) = match &zip[i..i + 4] {
            b"PK\x03\x04" => ("local", i + 30, i + 22),
            b"PK\x01\x02" => ("central", i + 46, i + 24),
            _ => continue,
        };
        let _ = sig;
        if zip.get(name_at..name_at + name.len()) == Some(name.as_bytes()) {
            zip[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(
        patched, 2,
        "expected one local and one central header for {name}"
    );
}

/// CRC-32 (IEEE), bitwise: only for small test data.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The module cache's `cache/download` directory, if `GOMODCACHE`/`GOPATH`/`$HOME/go` has one.
pub(crate) fn mod_cache_download_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("GOMODCACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("GOPATH")
                .and_then(|p| std::env::split_paths(&p).next())
                .map(|p| p.join("pkg/mod"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join("go/pkg/mod"))
        })?;
    let dir = base.join("cache/download");
    dir.is_dir().then_some(dir)
}

/// Up to `max` `(zip, ziphash contents, module path, version)` found in the module cache.
pub(crate) fn cached_zips(max: usize) -> Vec<(std::path::PathBuf, String, String, String)> {
    let Some(root) = mod_cache_download_dir() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                // The sumdb cache holds no module zips.
                if p.file_name() != Some(std::ffi::OsStr::new("sumdb")) {
                    stack.push(p);
                }
                continue;
            }
            if p.extension() != Some(std::ffi::OsStr::new("zip")) {
                continue;
            }
            let Ok(ziphash) = std::fs::read_to_string(p.with_extension("ziphash")) else {
                continue;
            };
            // <root>/<escaped module>/@v/<escaped version>.zip
            let Ok(rel) = p.strip_prefix(&root) else {
                continue;
            };
            let rel = rel.to_string_lossy().into_owned();
            let Some((module, file)) = rel.split_once("/@v/") else {
                continue;
            };
            let Some(version) = file.strip_suffix(".zip") else {
                continue;
            };
            found.push((
                p.clone(),
                ziphash.trim().to_owned(),
                unescape(module),
                unescape(version),
            ));
            if found.len() >= max {
                return found;
            }
        }
    }
    found
}

/// `module.UnescapePath` for well-formed cache paths: `!x` → `X`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if bang {
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else {
            out.push(c);
        }
    }
    out
}
