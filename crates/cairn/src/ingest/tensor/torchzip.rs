//! PyTorch zip checkpoints (`torch.save` since 1.6, TorchScript archives).
//!
//! # Layout
//! A zip archive, entries stored (method 0), holding `<prefix>/data.pkl` (a
//! pickle of the object, with every tensor storage as a persistent id) and
//! one entry `<prefix>/data/<key>` per storage: its raw bytes, in the byte
//! order named by `<prefix>/byteorder` (little-endian when absent). The
//! dtype of a storage is known only from `data.pkl` (see the `pickle` module).
//! Each stored `data/<key>` entry becomes a region named `data/<key>`:
//! with its dtype when the pickle names it and the storage is
//! little-endian, as `Dtype::Other` otherwise (still a forced boundary).
//!
//! # Giving up
//! `Ok(None)` (chunk generically) for a zip that is not a readable torch
//! checkpoint: no end-of-central-directory record, a multi-disk archive, no
//! `data.pkl`, a compressed or encrypted `data.pkl` or one over
//! [`MAX_PICKLE`], or a pickle the walker does not understand. Compressed
//! data entries are left out (their bytes are not the tensor's). Once the
//! pickle is read, a region outside the file, overlapping another, or whose
//! size disagrees with the storage's element count is an error, as for the
//! other formats.
//!
//! # Hostile input
//! Every offset and size from the archive is checked against the file
//! before use; entry counts are bounded by the central directory's size,
//! which is bounded by the file; at most [`MAX_STORAGES`] storage entries
//! and keys of at most [`MAX_KEY`] bytes are kept.

use std::io::{BufReader, Read, Seek, SeekFrom};

use super::{finish, malformed, pickle, region, Dtype, Format, TensorError, TensorLayout};

/// Local file header signature: how a zip (and a torch checkpoint) starts.
pub(super) const LOCAL_MAGIC: [u8; 4] = *b"PK\x03\x04";
const CENTRAL_MAGIC: [u8; 4] = *b"PK\x01\x02";
const EOCD_MAGIC: [u8; 4] = *b"PK\x05\x06";
const ZIP64_LOCATOR_MAGIC: [u8; 4] = *b"PK\x06\x07";
const ZIP64_EOCD_MAGIC: [u8; 4] = *b"PK\x06\x06";

const LOCAL_LEN: u64 = 30;
const CENTRAL_LEN: u64 = 46;
const EOCD_LEN: u64 = 22;
const ZIP64_LOCATOR_LEN: u64 = 20;
const ZIP64_EOCD_LEN: u64 = 56;
/// The EOCD comment is at most 64 KiB, so the EOCD is in the file's tail.
const EOCD_SEARCH: u64 = EOCD_LEN + 0xFFFF;
/// Extra-field id of the ZIP64 extended information.
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// General-purpose flag bit 0: the entry is encrypted.
const FLAG_ENCRYPTED: u16 = 1;
const METHOD_STORED: u16 = 0;

/// Largest `data.pkl` read (real ones are kilobytes to a few MiB).
pub const MAX_PICKLE: u64 = 64 << 20;
/// Most storage entries kept from one archive.
pub const MAX_STORAGES: usize = 1 << 20;
/// Longest storage key kept (torch's keys are decimal numbers).
pub const MAX_KEY: usize = 64;
/// Longest entry name considered while the archive prefix is not yet known.
const MAX_NAME: usize = 320;

/// One central-directory entry this module cares about.
#[derive(Debug)]
struct Entry {
    method: u16,
    flags: u16,
    csize: u64,
    usize: u64,
    local_offset: u64,
}

impl Entry {
    /// Stored, unencrypted, and consistent: its bytes are the content.
    fn is_plain(&self) -> bool {
        self.method == METHOD_STORED && self.flags & FLAG_ENCRYPTED == 0 && self.csize == self.usize
    }
}

/// The entries of the first torch archive in the zip (by central order).
#[derive(Debug, Default)]
struct Archive {
    prefix: String,
    pickle: Option<Entry>,
    byteorder: Option<Entry>,
    storages: Vec<(String, Entry)>,
}

/// Where the central directory is.
struct CentralDir {
    offset: u64,
    size: u64,
    entries: u64,
}

/// Find the tensor storages of a zip that starts with [`LOCAL_MAGIC`].
pub(super) fn parse<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<Option<TensorLayout>, TensorError> {
    let Some(cd) = central_dir(r, file_len)? else {
        return Ok(None);
    };
    let Some(archive) = read_central(r, &cd, file_len)? else {
        return Ok(None);
    };
    let Some(pkl) = archive.pickle.as_ref().filter(|e| e.is_plain()) else {
        return Ok(None);
    };
    if pkl.usize > MAX_PICKLE {
        return Ok(None);
    }
    let Some(bytes) = read_entry(r, pkl, file_len)? else {
        return Ok(None);
    };
    let Some(dtypes) = pickle::storages(&bytes) else {
        return Ok(None);
    };
    let little = match archive
        .byteorder
        .as_ref()
        .filter(|e| e.is_plain() && e.usize <= 16)
    {
        Some(e) => read_entry(r, e, file_len)?.is_some_and(|b| b == b"little"),
        None => true,
    };
    let mut tensors = Vec::new();
    let mut plain: Vec<_> = archive
        .storages
        .into_iter()
        .filter(|(_, e)| e.is_plain())
        .collect();
    // Local headers in file order: one forward pass over the file.
    plain.sort_unstable_by_key(|(_, e)| e.local_offset);
    for (key, e) in plain {
        let name = format!("data/{key}");
        let info = dtypes.get(&key);
        let dtype = match info {
            Some(i) if little => i.dtype,
            _ => Dtype::Other,
        };
        if let Some((w, n)) = info.and_then(|i| Some((i.dtype.width()?, i.numel?))) {
            let expected = n.checked_mul(w as u64);
            if expected != Some(e.usize) {
                return Err(TensorError::SizeMismatch {
                    name,
                    len: e.usize,
                    expected: expected.unwrap_or(u64::MAX),
                });
            }
        }
        let Some(offset) = data_offset(r, &e, file_len)? else {
            return Err(malformed(format!("{name}: bad local header")));
        };
        tensors.extend(region(name, dtype, Some(offset), e.usize, file_len)?);
    }
    let data_start = tensors.iter().map(|t| t.offset).min().unwrap_or(cd.offset);
    finish(Format::PyTorchZip, data_start, tensors).map(Some)
}

/// Read exactly `buf.len()` bytes at `at`; `false` if they are not all
/// inside the file.
fn read_at<R: Read + Seek>(
    r: &mut R,
    at: u64,
    buf: &mut [u8],
    file_len: u64,
) -> Result<bool, TensorError> {
    match at.checked_add(buf.len() as u64) {
        Some(end) if end <= file_len => {
            r.seek(SeekFrom::Start(at))?;
            r.read_exact(buf)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// Locate the central directory from the (ZIP64) end-of-central-directory
/// record. `None` if there is none or it describes a multi-disk archive.
fn central_dir<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<Option<CentralDir>, TensorError> {
    let tail_len = file_len.min(EOCD_SEARCH);
    let mut tail = vec![0u8; tail_len as usize];
    read_at(r, file_len - tail_len, &mut tail, file_len)?;
    // The last signature whose record (and comment) fits in the file.
    let found = (0..tail.len().saturating_sub(EOCD_LEN as usize - 1))
        .rev()
        .find(|&i| {
            tail[i..i + 4] == EOCD_MAGIC
                && i + EOCD_LEN as usize + usize::from(u16_at(&tail, i + 20)) <= tail.len()
        });
    let Some(i) = found else {
        return Ok(None);
    };
    let e = &tail[i..i + EOCD_LEN as usize];
    let eocd_pos = file_len - tail_len + i as u64;
    if u16_at(e, 4) != 0 || u16_at(e, 6) != 0 {
        return Ok(None);
    }
    let mut cd = CentralDir {
        entries: u64::from(u16_at(e, 10)),
        size: u64::from(u32_at(e, 12)),
        offset: u64::from(u32_at(e, 16)),
    };
    if let Some(z) = zip64_eocd(r, eocd_pos, file_len)? {
        // disk number, disk with the central directory
        if u32_at(&z, 16) != 0 || u32_at(&z, 20) != 0 {
            return Ok(None);
        }
        cd = CentralDir {
            entries: u64_at(&z, 32),
            size: u64_at(&z, 40),
            offset: u64_at(&z, 48),
        };
    }
    let fits = cd
        .offset
        .checked_add(cd.size)
        .is_some_and(|end| end <= eocd_pos);
    Ok((fits && cd.entries <= cd.size / CENTRAL_LEN).then_some(cd))
}

/// The ZIP64 end-of-central-directory record, if a locator precedes the
/// EOCD at `eocd_pos` and points at a valid one.
fn zip64_eocd<R: Read + Seek>(
    r: &mut R,
    eocd_pos: u64,
    file_len: u64,
) -> Result<Option<[u8; ZIP64_EOCD_LEN as usize]>, TensorError> {
    let Some(loc_pos) = eocd_pos.checked_sub(ZIP64_LOCATOR_LEN) else {
        return Ok(None);
    };
    let mut loc = [0u8; ZIP64_LOCATOR_LEN as usize];
    if !read_at(r, loc_pos, &mut loc, file_len)? || loc[..4] != ZIP64_LOCATOR_MAGIC {
        return Ok(None);
    }
    let at = u64_at(&loc, 8);
    let mut z = [0u8; ZIP64_EOCD_LEN as usize];
    if at > loc_pos || !read_at(r, at, &mut z, file_len)? || z[..4] != ZIP64_EOCD_MAGIC {
        return Ok(None);
    }
    Ok(Some(z))
}

/// Walk the central directory and keep the first torch archive's entries.
/// `None` if the directory is malformed or has too many storages.
fn read_central<R: Read + Seek>(
    r: &mut R,
    cd: &CentralDir,
    file_len: u64,
) -> Result<Option<Archive>, TensorError> {
    r.seek(SeekFrom::Start(cd.offset))?;
    let mut br = BufReader::with_capacity(64 << 10, r.take(cd.size));
    let mut found: Vec<(String, Entry)> = Vec::new();
    let mut archive: Option<Archive> = None;
    for _ in 0..cd.entries {
        let mut h = [0u8; CENTRAL_LEN as usize];
        // The directory's size was checked against the file: a short read is
        // a malformed directory, not an I/O error.
        if br.read_exact(&mut h).is_err() || h[..4] != CENTRAL_MAGIC {
            return Ok(None);
        }
        let (name_len, extra_len, comment_len) = (u16_at(&h, 28), u16_at(&h, 30), u16_at(&h, 32));
        let mut name = vec![0u8; usize::from(name_len)];
        let mut extra = vec![0u8; usize::from(extra_len)];
        let mut comment = vec![0u8; usize::from(comment_len)];
        if br.read_exact(&mut name).is_err()
            || br.read_exact(&mut extra).is_err()
            || br.read_exact(&mut comment).is_err()
        {
            return Ok(None);
        }
        let Some(entry) = central_entry(&h, &extra) else {
            return Ok(None);
        };
        if entry.local_offset >= file_len {
            return Ok(None);
        }
        let Ok(name) = String::from_utf8(name) else {
            continue;
        };
        if let Some(prefix) = name.strip_suffix("/data.pkl").filter(|p| !p.contains('/')) {
            if archive.is_none() {
                archive = Some(Archive {
                    prefix: prefix.to_owned(),
                    pickle: Some(entry),
                    ..Archive::default()
                });
            }
        } else if name.len() <= MAX_NAME
            && (name.contains("/data/") || name.ends_with("/byteorder"))
        {
            if found.len() >= MAX_STORAGES {
                return Ok(None);
            }
            found.push((name, entry));
        }
    }
    let Some(mut a) = archive else {
        return Ok(None);
    };
    for (name, entry) in found {
        let Some(rest) = name.strip_prefix(a.prefix.as_str()) else {
            continue;
        };
        if rest == "/byteorder" {
            a.byteorder = Some(entry);
        } else if let Some(key) = rest.strip_prefix("/data/") {
            if !key.is_empty() && key.len() <= MAX_KEY && !key.contains('/') {
                a.storages.push((key.to_owned(), entry));
            }
        }
    }
    Ok(Some(a))
}

/// Decode a central header's fields, taking 0xFFFFFFFF sizes and offset
/// from the ZIP64 extra field. `None` if that field is missing or short.
fn central_entry(h: &[u8], extra: &[u8]) -> Option<Entry> {
    const MAX32: u64 = u32::MAX as u64;
    let mut usize = u64::from(u32_at(h, 24));
    let mut csize = u64::from(u32_at(h, 20));
    let mut local_offset = u64::from(u32_at(h, 42));
    if usize == MAX32 || csize == MAX32 || local_offset == MAX32 {
        let mut z = zip64_extra(extra)?;
        // The fields present are exactly those that overflowed, in this order.
        for field in [&mut usize, &mut csize, &mut local_offset] {
            if *field == MAX32 {
                let (v, rest) = z.split_first_chunk::<8>()?;
                *field = u64::from_le_bytes(*v);
                z = rest;
            }
        }
    }
    Some(Entry {
        flags: u16_at(h, 8),
        method: u16_at(h, 10),
        csize,
        usize,
        local_offset,
    })
}

/// The body of the ZIP64 extended-information extra field.
fn zip64_extra(mut extra: &[u8]) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0), usize::from(u16_at(extra, 2)));
        let body = extra.get(4..4 + len)?;
        if id == ZIP64_EXTRA_ID {
            return Some(body);
        }
        extra = &extra[4 + len..];
    }
    None
}

/// Absolute offset of a stored entry's data, from its local header (whose
/// extra field may differ from the central one: torch pads it to align the
/// data). `None` if the header is not inside the file or has the wrong
/// signature.
fn data_offset<R: Read + Seek>(
    r: &mut R,
    e: &Entry,
    file_len: u64,
) -> Result<Option<u64>, TensorError> {
    let mut h = [0u8; LOCAL_LEN as usize];
    if !read_at(r, e.local_offset, &mut h, file_len)? || h[..4] != LOCAL_MAGIC {
        return Ok(None);
    }
    let var = u64::from(u16_at(&h, 26)) + u64::from(u16_at(&h, 28));
    Ok(Some(e.local_offset + LOCAL_LEN + var))
}

/// The bytes of a small stored entry (`e.usize` checked by the caller).
fn read_entry<R: Read + Seek>(
    r: &mut R,
    e: &Entry,
    file_len: u64,
) -> Result<Option<Vec<u8>>, TensorError> {
    let Some(at) = data_offset(r, e, file_len)? else {
        return Ok(None);
    };
    if at.checked_add(e.usize).is_none_or(|end| end > file_len) {
        return Ok(None);
    }
    let mut buf = vec![0u8; e.usize as usize];
    read_at(r, at, &mut buf, file_len)?;
    Ok(Some(buf))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ingest::tensor::parse_layout;
    use proptest::prelude::*;
    use std::io::Cursor;

    /// `data.pkl` of a state dict, as `torch.save` (pickle protocol 2)
    /// writes it: an OrderedDict with `_metadata`, of `_rebuild_tensor_v2`
    /// calls on storages 0 (FloatStorage, 6), 1 (BFloat16Storage, 8),
    /// 2 (HalfStorage, 4), 3 (LongStorage, 1); the last tensor is a view of
    /// storage 0, whose id is then all memo hits. Generated by CPython's
    /// pickle with torch's `persistent_id` over stub classes.
    pub(crate) const STATE_DICT_P2: &[u8] = b"\x80\x02ccollections\x0aOrderedDict\x0aq\x00)Rq\x01(X\x0c\x00\x00\x00layer.weightq\x02ctorch._utils\x0a_rebuild_tensor_v2\x0aq\x03((X\x07\x00\x00\x00storageq\x04ctorch\x0aFloatStorage\x0aq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x06tq\x08QK\x00K\x02K\x03\x86q\x09K\x03K\x01\x86q\x0a\x89h\x00)Rq\x0btq\x0cRq\x0dX\x0a\x00\x00\x00layer.biasq\x0eh\x03((h\x04ctorch\x0aBFloat16Storage\x0aq\x0fX\x01\x00\x00\x001q\x10h\x07K\x08tq\x11QK\x00K\x08\x85q\x12K\x01\x85q\x13\x89h\x00)Rq\x14tq\x15Rq\x16X\x0b\x00\x00\x00norm.weightq\x17h\x03((h\x04ctorch\x0aHalfStorage\x0aq\x18X\x01\x00\x00\x002q\x19h\x07K\x04tq\x1aQK\x00K\x04\x85q\x1bh\x13\x89h\x00)Rq\x1ctq\x1dRq\x1eX\x04\x00\x00\x00stepq\x1fh\x03((h\x04ctorch\x0aLongStorage\x0aq X\x01\x00\x00\x003q!h\x07K\x01tq\x22QK\x00))\x89h\x00)Rq#tq$Rq%X\x10\x00\x00\x00layer.weight_rowq&h\x03((h\x04h\x05h\x06h\x07K\x06tq'QK\x03K\x03\x85q(h\x13\x89h\x00)Rq)tq*Rq+u}q,X\x09\x00\x00\x00_metadataq-h\x00)Rq.X\x00\x00\x00\x00q/}q0X\x07\x00\x00\x00versionq1K\x01sssb.";

    /// The same state dict pickled with protocol 4 (FRAME, MEMOIZE,
    /// SHORT_BINUNICODE and STACK_GLOBAL with a memoized module name).
    pub(crate) const STATE_DICT_P4: &[u8] = b"\x80\x04\x95\xc6\x01\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(\x8c\x0clayer.weight\x94\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_tensor_v2\x94\x93\x94((\x8c\x07storage\x94\x8c\x05torch\x94\x8c\x0cFloatStorage\x94\x93\x94\x8c\x010\x94\x8c\x03cpu\x94K\x06t\x94QK\x00K\x02K\x03\x86\x94K\x03K\x01\x86\x94\x89h\x02)R\x94t\x94R\x94\x8c\x0alayer.bias\x94h\x07((h\x08h\x09\x8c\x0fBFloat16Storage\x94\x93\x94\x8c\x011\x94h\x0dK\x08t\x94QK\x00K\x08\x85\x94K\x01\x85\x94\x89h\x02)R\x94t\x94R\x94\x8c\x0bnorm.weight\x94h\x07((h\x08h\x09\x8c\x0bHalfStorage\x94\x93\x94\x8c\x012\x94h\x0dK\x04t\x94QK\x00K\x04\x85\x94h\x1a\x89h\x02)R\x94t\x94R\x94\x8c\x04step\x94h\x07((h\x08h\x09\x8c\x0bLongStorage\x94\x93\x94\x8c\x013\x94h\x0dK\x01t\x94QK\x00))\x89h\x02)R\x94t\x94R\x94\x8c\x10layer.weight_row\x94h\x07((h\x08h\x0bh\x0ch\x0dK\x06t\x94QK\x03K\x03\x85\x94h\x1a\x89h\x02)R\x94t\x94R\x94u}\x94\x8c\x09_metadata\x94h\x02)R\x94\x8c\x00\x94}\x94\x8c\x07version\x94K\x01sssb.";

    /// A protocol-2 pickle of a list of storage ids `(type, key, numel)`;
    /// `type` is the `torch` global's name (`FloatStorage`, `bfloat16`, ...).
    pub(crate) fn pid_pickle(storages: &[(&str, &str, u32)]) -> Vec<u8> {
        let mut p = b"\x80\x02]q\x00(".to_vec();
        let unicode = |p: &mut Vec<u8>, s: &str| {
            p.push(b'X');
            p.extend_from_slice(&(s.len() as u32).to_le_bytes());
            p.extend_from_slice(s.as_bytes());
        };
        for (ty, key, numel) in storages {
            p.push(b'(');
            unicode(&mut p, "storage");
            p.extend_from_slice(format!("ctorch\n{ty}\n").as_bytes());
            unicode(&mut p, key);
            unicode(&mut p, "cpu");
            p.push(b'J');
            p.extend_from_slice(&numel.to_le_bytes());
            p.extend_from_slice(b"tQ");
        }
        p.extend_from_slice(b"e.");
        p
    }

    /// A zip entry for [`zip`]: name, content, compression method.
    pub(crate) type ZipEntry<'a> = (&'a str, &'a [u8], u16);

    /// A zip as torch's writer makes it: each entry's data aligned to 64
    /// bytes by padding its *local* extra field (the central one stays
    /// empty). With `zip64`, sizes and offsets are moved to ZIP64 extra
    /// fields and the EOCD points through a ZIP64 locator.
    pub(crate) fn zip(entries: &[ZipEntry], zip64: bool) -> Vec<u8> {
        let mut f = Vec::new();
        let mut central = Vec::new();
        for &(name, data, method) in entries {
            let lho = f.len() as u64;
            let pad = (64 - (f.len() + 30 + name.len() + 4) % 64) % 64;
            let len = data.len() as u32;
            f.extend_from_slice(&LOCAL_MAGIC);
            f.extend_from_slice(&[20, 0, 0, 0]); // version, flags
            f.extend_from_slice(&method.to_le_bytes());
            f.extend_from_slice(&[0; 8]); // time, date, crc
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(&(name.len() as u16).to_le_bytes());
            f.extend_from_slice(&(pad as u16 + 4).to_le_bytes());
            f.extend_from_slice(name.as_bytes());
            f.extend_from_slice(b"FB");
            f.extend_from_slice(&(pad as u16).to_le_bytes());
            f.resize(f.len() + pad, b'Z');
            f.extend_from_slice(data);

            let (l32, o32) = if zip64 {
                (u32::MAX, u32::MAX)
            } else {
                (len, lho as u32)
            };
            central.extend_from_slice(&CENTRAL_MAGIC);
            central.extend_from_slice(&[45, 3, 45, 0, 0, 0]); // made by, needed, flags
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&l32.to_le_bytes());
            central.extend_from_slice(&l32.to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&(if zip64 { 28u16 } else { 0 }).to_le_bytes());
            central.extend_from_slice(&[0; 10]); // comment len, disk, attrs
            central.extend_from_slice(&o32.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
            if zip64 {
                central.extend_from_slice(&ZIP64_EXTRA_ID.to_le_bytes());
                central.extend_from_slice(&24u16.to_le_bytes());
                for v in [u64::from(len), u64::from(len), lho] {
                    central.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let (cd_off, cd_len, n) = (f.len() as u64, central.len() as u64, entries.len() as u64);
        f.extend_from_slice(&central);
        if zip64 {
            let z64 = f.len() as u64;
            f.extend_from_slice(&ZIP64_EOCD_MAGIC);
            f.extend_from_slice(&44u64.to_le_bytes());
            f.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            for v in [n, n, cd_len, cd_off] {
                f.extend_from_slice(&v.to_le_bytes());
            }
            f.extend_from_slice(&ZIP64_LOCATOR_MAGIC);
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(&z64.to_le_bytes());
            f.extend_from_slice(&1u32.to_le_bytes());
        }
        let (n16, len32, off32) = if zip64 {
            (u16::MAX, u32::MAX, u32::MAX)
        } else {
            (n as u16, cd_len as u32, cd_off as u32)
        };
        f.extend_from_slice(&EOCD_MAGIC);
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(&n16.to_le_bytes());
        f.extend_from_slice(&n16.to_le_bytes());
        f.extend_from_slice(&len32.to_le_bytes());
        f.extend_from_slice(&off32.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f
    }

    /// Storage bytes of [`STATE_DICT_P2`]'s four storages.
    fn storage_bytes() -> [Vec<u8>; 4] {
        let f32s: Vec<u8> = (0..6)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect();
        [
            f32s,
            vec![0x3F; 16],
            vec![0x3C; 8],
            7i64.to_le_bytes().to_vec(),
        ]
    }

    /// A torch.save checkpoint of [`STATE_DICT_P2`]; `methods` gives the
    /// compression method of data.pkl and of data/0..3.
    fn checkpoint_with(pickle: &[u8], methods: [u16; 5], byteorder: &[u8], zip64: bool) -> Vec<u8> {
        let s = storage_bytes();
        zip(
            &[
                ("archive/data.pkl", pickle, methods[0]),
                ("archive/byteorder", byteorder, 0),
                ("archive/data/0", &s[0], methods[1]),
                ("archive/data/1", &s[1], methods[2]),
                ("archive/data/2", &s[2], methods[3]),
                ("archive/data/3", &s[3], methods[4]),
                ("archive/version", b"3\n", 0),
                ("archive/.data/serialization_id", b"1234", 0),
            ],
            zip64,
        )
    }

    fn checkpoint() -> Vec<u8> {
        checkpoint_with(STATE_DICT_P2, [0; 5], b"little", false)
    }

    use crate::ingest::tensor::tests::parse;

    fn summary(l: &TensorLayout) -> Vec<(&str, Dtype, u64)> {
        l.tensors
            .iter()
            .map(|t| (t.name.as_str(), t.dtype, t.len))
            .collect()
    }

    const EXPECTED: [(&str, Dtype, u64); 4] = [
        ("data/0", Dtype::F32, 24),
        ("data/1", Dtype::BF16, 16),
        ("data/2", Dtype::F16, 8),
        ("data/3", Dtype::I64, 8),
    ];

    #[test]
    fn state_dict_layout() {
        for zip64 in [false, true] {
            let f = checkpoint_with(STATE_DICT_P2, [0; 5], b"little", zip64);
            let l = parse(&f).unwrap().unwrap();
            assert_eq!(l.format, Format::PyTorchZip);
            assert_eq!(summary(&l), EXPECTED, "zip64 {zip64}");
            assert_eq!(l.data_start, l.tensors[0].offset);
            for (t, bytes) in l.tensors.iter().zip(storage_bytes()) {
                assert_eq!(t.offset % 64, 0, "torch aligns storages");
                assert_eq!(&f[t.offset as usize..][..t.len as usize], bytes);
            }
        }
    }

    #[test]
    fn pickle_protocols_agree() {
        let p2 = pickle::storages(STATE_DICT_P2).unwrap();
        assert_eq!(pickle::storages(STATE_DICT_P4).unwrap(), p2);
        let got = |k: &str| p2.get(k).map(|i| (i.dtype, i.numel));
        assert_eq!(p2.len(), 4);
        assert_eq!(got("0"), Some((Dtype::F32, Some(6))));
        assert_eq!(got("1"), Some((Dtype::BF16, Some(8))));
        assert_eq!(got("2"), Some((Dtype::F16, Some(4))));
        assert_eq!(got("3"), Some((Dtype::I64, Some(1))));
    }

    #[test]
    fn dtype_globals_and_other_storage_types() {
        let p = pid_pickle(&[
            ("bfloat16", "a", 2),
            ("float32", "b", 1),
            ("ComplexFloatStorage", "c", 1),
            ("UntypedStorage", "d", 8),
        ]);
        let s = pickle::storages(&p).unwrap();
        let got = |k: &str| s.get(k).map(|i| i.dtype);
        assert_eq!(got("a"), Some(Dtype::BF16));
        assert_eq!(got("b"), Some(Dtype::F32));
        assert_eq!(got("c"), Some(Dtype::Other));
        assert_eq!(got("d"), Some(Dtype::Other));
        // Not from the torch module: not a storage id.
        let mut q = p.clone();
        let at = q.windows(6).position(|w| w == b"ctorch").unwrap();
        q[at + 1] = b'T';
        assert_eq!(pickle::storages(&q).unwrap().len(), 3);
    }

    #[test]
    fn eocd_signature_in_the_comment_is_skipped() {
        let mut f = checkpoint();
        let comment = b"PK\x05\x06 looks like an EOCD but does not fit";
        let n = f.len();
        f[n - 2..].copy_from_slice(&(comment.len() as u16).to_le_bytes());
        f.extend_from_slice(comment);
        assert_eq!(summary(&parse(&f).unwrap().unwrap()), EXPECTED);
    }

    #[test]
    fn compressed_entries() {
        // A deflated storage is left out; the others keep their dtypes.
        let f = checkpoint_with(STATE_DICT_P2, [0, 0, 8, 0, 0], b"little", false);
        let l = parse(&f).unwrap().unwrap();
        let want: Vec<_> = EXPECTED
            .iter()
            .copied()
            .filter(|t| t.0 != "data/1")
            .collect();
        assert_eq!(summary(&l), want);
        // A deflated data.pkl: nothing is known, give up.
        let f = checkpoint_with(STATE_DICT_P2, [8, 0, 0, 0, 0], b"little", false);
        assert!(parse(&f).unwrap().is_none());
    }

    #[test]
    fn big_endian_storages_have_no_dtype() {
        let f = checkpoint_with(STATE_DICT_P2, [0; 5], b"big", false);
        let l = parse(&f).unwrap().unwrap();
        assert!(l.tensors.iter().all(|t| t.dtype == Dtype::Other));
        assert_eq!(l.tensors.len(), 4);
    }

    #[test]
    fn unreferenced_storage_is_other_and_sizes_are_checked() {
        // The pickle names only storage 0; the rest are kept as Other.
        let p = pid_pickle(&[("FloatStorage", "0", 6)]);
        let l = parse(&checkpoint_with(&p, [0; 5], b"little", false))
            .unwrap()
            .unwrap();
        assert_eq!(l.tensors[0].dtype, Dtype::F32);
        assert!(l.tensors[1..].iter().all(|t| t.dtype == Dtype::Other));
        let p = pid_pickle(&[("FloatStorage", "0", 7)]);
        assert!(matches!(
            parse(&checkpoint_with(&p, [0; 5], b"little", false)),
            Err(TensorError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn other_zips_and_unknown_pickles_are_none() {
        let plain = zip(
            &[("hello.txt", b"hello", 0), ("dir/data/0", b"x", 0)],
            false,
        );
        assert!(parse(&plain).unwrap().is_none());
        let mut p = STATE_DICT_P2.to_vec();
        let q = p.iter().position(|&b| b == b'Q').unwrap();
        p[q] = 0xFF; // not an opcode
        assert!(pickle::storages(&p).is_none());
        assert!(parse(&checkpoint_with(&p, [0; 5], b"little", false))
            .unwrap()
            .is_none());
        // No EOCD: a zip's first bytes only.
        assert!(parse(&checkpoint()[..200]).unwrap().is_none());
        assert!(pickle::storages(b"").is_none());
        assert!(pickle::storages(b"\x80\x02t.").is_none()); // TUPLE without a mark
        assert!(pickle::storages(b"\x80\x02(Q.").is_none()); // mark as a pid
    }

    #[test]
    fn every_truncation_is_handled() {
        for p in [STATE_DICT_P2, STATE_DICT_P4] {
            for cut in 0..p.len() {
                assert!(pickle::storages(&p[..cut]).is_none(), "cut {cut}");
            }
        }
        for zip64 in [false, true] {
            let f = checkpoint_with(STATE_DICT_P2, [0; 5], b"little", zip64);
            for cut in 0..f.len() {
                if let Ok(Some(l)) = parse(&f[..cut]) {
                    assert!(l.tensors.iter().all(|t| t.offset + t.len <= cut as u64));
                }
            }
        }
    }

    #[test]
    fn lying_file_len_gives_io_error_or_none() {
        let f = checkpoint();
        // The tail read past the real data fails.
        let r = parse_layout(&mut Cursor::new(&f[..100]), f.len() as u64);
        assert!(matches!(r, Err(TensorError::Io(_))));
    }

    proptest! {
        #[test]
        fn mutated_checkpoint_never_panics(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            zip64 in any::<bool>(),
        ) {
            crate::ingest::tensor::tests::check_mutated(checkpoint_with(STATE_DICT_P2, [0; 5], b"little", zip64), edits)?;
        }

        #[test]
        fn mutated_pickle_never_panics(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut p = STATE_DICT_P4.to_vec();
            for (i, b) in edits {
                let n = p.len();
                p[i % n] = b;
            }
            let _ = pickle::storages(&p);
        }
    }
}
