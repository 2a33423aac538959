//! A minimal pickle opcode walker that finds the tensor storages a PyTorch
//! `data.pkl` refers to, and their dtypes.
//!
//! # What it understands
//! `torch.save` pickles every storage as a persistent id, a 5-tuple
//! `('storage', <storage type>, '<key>', '<location>', <numel>)` followed by
//! `BINPERSID`; the storage type is a global such as `torch.FloatStorage`
//! (what every torch release since 1.6 writes), or a dtype global such as
//! `torch.bfloat16`, accepted too. The walker keeps a model of the pickle
//! stack and memo just precise enough to rebuild those tuples, including
//! their memoized parts (`BINGET` of the `'storage'` string or of a storage
//! type seen before), for pickle protocols 0 to 5. Nothing is executed or
//! imported.
//!
//! # Hostile input
//! Every opcode of protocols 0-5 is known; any other byte, a truncated
//! argument, a stack underflow or a missing mark ends the walk with `None`
//! (never a panic). Memory is bounded: strings longer than
//! [`MAX_STRING`] are not kept, tuples are kept only when they look like a
//! storage id (so values never nest and never drop recursively), and the
//! stack and memo are capped at [`MAX_ITEMS`] entries each.

use std::collections::HashMap;
use std::rc::Rc;

use super::Dtype;

/// Longest string kept on the model stack (storage keys are decimal
/// numbers; the rest only has to be skipped).
const MAX_STRING: usize = 256;
/// Cap on stack depth and on the number of memo entries kept.
const MAX_ITEMS: usize = 1 << 21;

/// What `data.pkl` says about one storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StorageInfo {
    /// `Dtype::Other` for storage types without their own variant
    /// (complex, quantised, untyped).
    pub dtype: Dtype,
    /// Element count from the persistent id, when it was a small int.
    pub numel: Option<u64>,
}

/// Storage key → what the pickle says about it.
pub(super) type Storages = HashMap<String, StorageInfo>;

/// One value on the model stack. Only what a storage id needs is kept.
#[derive(Clone, Debug)]
enum Val {
    Mark,
    Str(Rc<str>),
    Int(u64),
    /// A global naming a storage type or a dtype, resolved to its dtype.
    Type(Dtype),
    /// A `('storage', type, key, location, numel)` tuple.
    Pid(Rc<str>, StorageInfo),
    Other,
}

/// Map the name of a `torch` global (a typed storage class or a dtype
/// object) to a dtype; `None` if it is neither.
fn torch_type(name: &str) -> Option<Dtype> {
    use Dtype::*;
    Some(match name {
        "FloatStorage" | "float32" | "float" => F32,
        "DoubleStorage" | "float64" | "double" => F64,
        "HalfStorage" | "float16" | "half" => F16,
        "BFloat16Storage" | "bfloat16" => BF16,
        "Float8_e4m3fnStorage" | "float8_e4m3fn" => F8E4M3,
        "Float8_e5m2Storage" | "float8_e5m2" => F8E5M2,
        "LongStorage" | "int64" | "long" => I64,
        "IntStorage" | "int32" | "int" => I32,
        "ShortStorage" | "int16" | "short" => I16,
        "CharStorage" | "int8" => I8,
        "ByteStorage" | "uint8" => U8,
        "BoolStorage" | "bool" => Bool,
        n if n.ends_with("Storage") => Other,
        _ => return None,
    })
}

fn global(module: &str, name: &str) -> Val {
    match (module, torch_type(name)) {
        ("torch", Some(d)) => Val::Type(d),
        _ => Val::Other,
    }
}

/// The tuple `items` as a storage id, or `Other`.
fn tuple(items: &[Val]) -> Val {
    match items {
        [Val::Str(tag), Val::Type(dtype), Val::Str(key), _, numel] if &**tag == "storage" => {
            let numel = match numel {
                Val::Int(n) => Some(*n),
                _ => None,
            };
            let info = StorageInfo {
                dtype: *dtype,
                numel,
            };
            Val::Pid(key.clone(), info)
        }
        _ => Val::Other,
    }
}

/// Byte cursor over the pickle; every read is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        let s = self.take(n as u64)?;
        Some(
            s.iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    /// A `\n`-terminated argument (protocol 0 style), without the newline.
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.b.get(self.pos..)?;
        let n = rest.iter().position(|&c| c == b'\n')?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    /// A string with an `n`-byte little-endian length prefix.
    fn counted(&mut self, n: usize) -> Option<&'a [u8]> {
        let len = self.uint(n)?;
        self.take(len)
    }
}

fn string(b: &[u8]) -> Val {
    match std::str::from_utf8(b) {
        Ok(s) if s.len() <= MAX_STRING => Val::Str(s.into()),
        _ => Val::Other,
    }
}

fn line_index(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// The model machine: a stack (with marks) and the memo.
#[derive(Default)]
struct Machine {
    stack: Vec<Val>,
    memo: HashMap<u64, Val>,
    storages: Storages,
}

impl Machine {
    fn push(&mut self, v: Val) -> Option<()> {
        (self.stack.len() < MAX_ITEMS).then(|| self.stack.push(v))
    }

    fn pop(&mut self) -> Option<Val> {
        match self.stack.pop()? {
            Val::Mark => None,
            v => Some(v),
        }
    }

    fn pop_n(&mut self, n: usize) -> Option<()> {
        (0..n).try_for_each(|_| self.pop().map(drop))
    }

    /// Pop everything above the topmost mark, and the mark.
    fn pop_mark(&mut self) -> Option<Vec<Val>> {
        let m = self.stack.iter().rposition(|v| matches!(v, Val::Mark))?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Some(items)
    }

    /// Replace the top `n` values by one built from them.
    fn fold(&mut self, n: usize, f: impl FnOnce(&[Val]) -> Val) -> Option<()> {
        let at = self.stack.len().checked_sub(n)?;
        if self.stack[at..].iter().any(|v| matches!(v, Val::Mark)) {
            return None;
        }
        let v = f(&self.stack[at..]);
        self.stack.truncate(at);
        self.stack.push(v);
        Some(())
    }

    fn put(&mut self, idx: u64) -> Option<()> {
        let top = self.stack.last()?;
        if matches!(top, Val::Mark) {
            return None;
        }
        // Values that cannot be part of a storage id are not kept: a GET of
        // them yields `Other` all the same.
        if matches!(top, Val::Other) {
            self.memo.remove(&idx);
        } else if self.memo.len() < MAX_ITEMS || self.memo.contains_key(&idx) {
            self.memo.insert(idx, top.clone());
        } else {
            return None;
        }
        Some(())
    }

    fn get(&mut self, idx: u64) -> Option<()> {
        let v = self.memo.get(&idx).cloned().unwrap_or(Val::Other);
        self.push(v)
    }

    fn persid(&mut self) -> Option<()> {
        if let Val::Pid(key, info) = self.pop()? {
            self.storages.insert(key.to_string(), info);
        }
        self.push(Val::Other)
    }
}

/// Walk `pickle` to its `STOP` and return the storages its persistent ids
/// name. `None` if the pickle is malformed or uses an opcode outside
/// protocols 0-5.
pub(super) fn storages(pickle: &[u8]) -> Option<Storages> {
    let mut c = Cursor { b: pickle, pos: 0 };
    let mut m = Machine::default();
    // MEMOIZE stores at index len(memo); pickles use it (protocol 4+)
    // instead of explicit PUTs, so counting MEMOIZEs is enough.
    let mut next_memo = 0u64;
    loop {
        let op = *c.take(1)?.first()?;
        match op {
            b'.' => return Some(m.storages),
            // Protocol header and framing: no stack effect.
            0x80 => {
                c.take(1)?;
            }
            0x95 => {
                c.take(8)?;
            }
            b'(' => m.push(Val::Mark)?,
            b'0' => drop(m.pop()?),
            b'1' => drop(m.pop_mark()?),
            b'2' => {
                let top = m.stack.last()?.clone();
                if matches!(top, Val::Mark) {
                    return None;
                }
                m.push(top)?
            }
            // Ints.
            b'K' => m.push(Val::Int(c.uint(1)?))?,
            b'M' => m.push(Val::Int(c.uint(2)?))?,
            b'J' => {
                let v = c.uint(4)? as u32 as i32;
                m.push(u64::try_from(v).map_or(Val::Other, Val::Int))?
            }
            0x8a => {
                let b = c.counted(1)?;
                let v = match b {
                    // Non-negative values up to 2^63 (sign bit of the last byte clear).
                    [.., last] if b.len() <= 8 && last & 0x80 == 0 => {
                        Val::Int(b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x)))
                    }
                    [] => Val::Int(0),
                    _ => Val::Other,
                };
                m.push(v)?
            }
            0x8b => {
                let n = c.uint(4)? as u32;
                if n > i32::MAX as u32 {
                    return None;
                }
                c.take(u64::from(n))?;
                m.push(Val::Other)?
            }
            // Strings: only unicode ones can name a storage.
            b'X' => m.push(string(c.counted(4)?))?,
            0x8c => m.push(string(c.counted(1)?))?,
            0x8d => m.push(string(c.counted(8)?))?,
            b'T' | b'B' => {
                let n = c.uint(4)? as u32;
                if n > i32::MAX as u32 {
                    return None;
                }
                c.take(u64::from(n))?;
                m.push(Val::Other)?
            }
            b'U' | b'C' => {
                c.counted(1)?;
                m.push(Val::Other)?
            }
            0x8e | 0x96 => {
                c.counted(8)?;
                m.push(Val::Other)?
            }
            // Protocol 0 text arguments.
            b'F' | b'I' | b'L' | b'S' | b'V' | b'P' => {
                c.line()?;
                m.push(Val::Other)?
            }
            b'G' => {
                c.take(8)?;
                m.push(Val::Other)?
            }
            b'N' | b'}' | b']' | 0x88 | 0x89 | 0x8f | 0x97 => m.push(Val::Other)?,
            b')' => m.push(Val::Other)?,
            0x82 => {
                c.take(1)?;
                m.push(Val::Other)?
            }
            0x83 => {
                c.take(2)?;
                m.push(Val::Other)?
            }
            0x84 => {
                c.take(4)?;
                m.push(Val::Other)?
            }
            // Globals.
            b'c' => {
                let module = c.line()?;
                let name = c.line()?;
                let v = match (std::str::from_utf8(module), std::str::from_utf8(name)) {
                    (Ok(module), Ok(name)) => global(module, name),
                    _ => Val::Other,
                };
                m.push(v)?
            }
            0x93 => m.fold(2, |v| match v {
                [Val::Str(module), Val::Str(name)] => global(module, name),
                _ => Val::Other,
            })?,
            b'i' => {
                c.line()?;
                c.line()?;
                m.pop_mark()?;
                m.push(Val::Other)?
            }
            // Persistent ids.
            b'Q' => m.persid()?,
            // Tuples.
            b't' => {
                let items = m.pop_mark()?;
                m.push(tuple(&items))?
            }
            0x85 => m.fold(1, tuple)?,
            0x86 => m.fold(2, tuple)?,
            0x87 => m.fold(3, tuple)?,
            // Containers and calls: only their stack effect matters.
            b'd' | b'l' | b'o' | 0x91 => {
                m.pop_mark()?;
                m.push(Val::Other)?
            }
            b'e' | b'u' | 0x90 => drop(m.pop_mark()?),
            b'a' | b'b' => m.pop_n(1)?,
            b's' => m.pop_n(2)?,
            b'R' | 0x81 => m.fold(2, |_| Val::Other)?,
            0x92 => m.fold(3, |_| Val::Other)?,
            0x98 => m.fold(1, |v| v[0].clone())?,
            // Memo.
            b'q' => m.put(c.uint(1)?)?,
            b'r' => m.put(c.uint(4)?)?,
            b'p' => m.put(line_index(c.line()?)?)?,
            0x94 => {
                m.put(next_memo)?;
                next_memo += 1;
            }
            b'h' => m.get(c.uint(1)?)?,
            b'j' => m.get(c.uint(4)?)?,
            b'g' => m.get(line_index(c.line()?)?)?,
            _ => return None,
        }
    }
}
