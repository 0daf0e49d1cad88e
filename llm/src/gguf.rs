//! A bounds-checked reader for GGUF files (versions 2 and 3).
//!
//! The file is untrusted input: every length is checked against what is left
//! of the buffer before anything is allocated, counts are capped, and every
//! tensor must lie inside the file. A corrupt or truncated file gives a
//! [`GgufError`] that says where it went wrong; nothing here panics.

use std::collections::HashMap;
use std::fmt;

const MAGIC: &[u8; 4] = b"GGUF";
/// At most this many metadata entries or tensors; real models have hundreds.
const MAX_COUNT: u64 = 1 << 16;
/// At most this many dimensions per tensor (ggml's own limit).
const MAX_DIMS: u32 = 4;
/// The default data alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (bad magic); expected a .gguf model")]
    NotGguf,
    #[error("GGUF version {0} is not supported (only 2 and 3)")]
    UnsupportedVersion(u32),
    #[error("file is truncated: {what} at byte {offset} runs past the end (is the download complete?)")]
    Truncated { what: &'static str, offset: usize },
    #[error("{what} of {value} at byte {offset} exceeds the limit")]
    TooLarge { what: &'static str, value: u64, offset: usize },
    #[error("string at byte {offset} is not UTF-8")]
    BadUtf8 { offset: usize },
    #[error("unknown metadata value type {ty} at byte {offset}")]
    UnknownValueType { ty: u32, offset: usize },
    #[error("tensor {name:?} has unknown type {ty}")]
    UnknownTensorType { name: String, ty: u32 },
    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },
    #[error("duplicate {what} {name:?}")]
    Duplicate { what: &'static str, name: String },
    #[error("metadata key {key:?} is missing")]
    Missing { key: String },
    #[error("metadata key {key:?} should be {expected}")]
    WrongType { key: String, expected: &'static str },
}

/// The tensor element types this reader knows the layout of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Bf16,
}

impl TensorType {
    fn from_u32(ty: u32) -> Option<Self> {
        Some(match ty {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            15 => Self::Q8K,
            30 => Self::Bf16,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block)
    pub fn block_layout(self) -> (u64, u64) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::Bf16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q8_1 => (32, 36),
            Self::Q2K => (256, 84),
            Self::Q3K => (256, 110),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
            Self::Q8K => (256, 292),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Vec<Value>),
}

impl Value {
    /// Any unsigned or non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// Where one tensor's bytes are, and what they hold.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// ggml order: `dims[0]` is the innermost (row length).
    pub dims: Vec<u64>,
    pub ty: TensorType,
    /// Absolute byte offset in the file.
    pub offset: usize,
    pub len: usize,
}

/// The parsed header of a GGUF file.
#[derive(Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    pub tensors: HashMap<String, TensorInfo>,
}

impl Gguf {
    /// Parses the header and tensor table of `data`, the whole file.
    pub fn parse(data: &[u8]) -> Result<Self, GgufError> {
        let mut r = Reader { data, pos: 0 };
        if r.bytes(4, "magic").map_err(|_| GgufError::NotGguf)? != MAGIC {
            return Err(GgufError::NotGguf);
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = r.count("tensor count")?;
        let n_kv = r.count("metadata count")?;

        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = r.string("metadata key")?;
            let ty = r.u32("value type")?;
            let value = r.value(ty, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(GgufError::Duplicate { what: "metadata key", name: key });
            }
        }

        let mut raw = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string("tensor name")?;
            let at = r.pos;
            let n_dims = r.u32("tensor dims")?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::TooLarge { what: "tensor dimensions", value: n_dims.into(), offset: at });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64("tensor dim")?);
            }
            let ty_raw = r.u32("tensor type")?;
            let ty = TensorType::from_u32(ty_raw)
                .ok_or_else(|| GgufError::UnknownTensorType { name: name.clone(), ty: ty_raw })?;
            let offset = r.u64("tensor offset")?;
            raw.push((name, dims, ty, offset));
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return Err(GgufError::WrongType { key: "general.alignment".into(), expected: "a power of two" }),
            },
        };
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;

        let mut tensors = HashMap::with_capacity(raw.len());
        for (name, dims, ty, rel) in raw {
            let bad = |reason: String| GgufError::BadTensor { name: name.clone(), reason };
            let elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| bad("element count overflows".into()))?;
            let (block, block_bytes) = ty.block_layout();
            if dims[0] % block != 0 {
                return Err(bad(format!("row length {} is not a multiple of the {ty} block ({block})", dims[0])));
            }
            let len = (elements / block).checked_mul(block_bytes).ok_or_else(|| bad("size overflows".into()))?;
            if rel % alignment != 0 {
                return Err(bad(format!("offset {rel} is not aligned to {alignment}")));
            }
            let start = data_start.checked_add(rel).ok_or_else(|| bad("offset overflows".into()))?;
            let end = start.checked_add(len).ok_or_else(|| bad("offset overflows".into()))?;
            if end > data.len() as u64 {
                return Err(bad(format!(
                    "its data ({len} bytes at byte {start}) runs past the end of the file ({} bytes); \
                     the file is truncated",
                    data.len()
                )));
            }
            let info = TensorInfo { dims, ty, offset: start as usize, len: len as usize };
            if tensors.insert(name.clone(), info).is_some() {
                return Err(GgufError::Duplicate { what: "tensor", name });
            }
        }
        Ok(Gguf { version, metadata, tensors })
    }

    /// A required metadata value.
    pub fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::Missing { key: key.into() })
    }

    /// A required unsigned integer.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get(key)?.as_u64().ok_or_else(|| GgufError::WrongType { key: key.into(), expected: "an integer" })
    }

    /// A required float (f32 or f64).
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        match self.get(key)? {
            Value::F32(v) => Ok(*v),
            Value::F64(v) => Ok(*v as f32),
            _ => Err(GgufError::WrongType { key: key.into(), expected: "a float" }),
        }
    }

    /// A required string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.get(key)? {
            Value::Str(s) => Ok(s),
            _ => Err(GgufError::WrongType { key: key.into(), expected: "a string" }),
        }
    }

    /// A required array.
    pub fn get_array(&self, key: &str) -> Result<&[Value], GgufError> {
        match self.get(key)? {
            Value::Array(a) => Ok(a),
            _ => Err(GgufError::WrongType { key: key.into(), expected: "an array" }),
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(GgufError::Truncated { what, offset: self.pos })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn count(&mut self, what: &'static str) -> Result<u64, GgufError> {
        let at = self.pos;
        let n = self.u64(what)?;
        if n > MAX_COUNT {
            return Err(GgufError::TooLarge { what, value: n, offset: at });
        }
        Ok(n)
    }

    fn string(&mut self, what: &'static str) -> Result<String, GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        let remaining = (self.data.len() - self.pos) as u64;
        if len > remaining {
            return Err(GgufError::Truncated { what, offset: at });
        }
        let b = self.bytes(len as usize, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| GgufError::BadUtf8 { offset: at })
    }

    fn value(&mut self, ty: u32, depth: u8) -> Result<Value, GgufError> {
        let at = self.pos;
        Ok(match ty {
            0 => Value::U8(self.array::<1>("u8")?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array("i8")?)),
            2 => Value::U16(u16::from_le_bytes(self.array("u16")?)),
            3 => Value::I16(i16::from_le_bytes(self.array("i16")?)),
            4 => Value::U32(self.u32("u32")?),
            5 => Value::I32(i32::from_le_bytes(self.array("i32")?)),
            6 => Value::F32(f32::from_le_bytes(self.array("f32")?)),
            7 => Value::Bool(self.array::<1>("bool")?[0] != 0),
            8 => Value::Str(self.string("string value")?),
            9 => {
                if depth > 0 {
                    return Err(GgufError::TooLarge { what: "array nesting", value: 2, offset: at });
                }
                let item_ty = self.u32("array item type")?;
                let len = self.u64("array length")?;
                // Every item takes at least one byte, so a longer array
                // cannot fit in what is left: refuse before allocating.
                if len > (self.data.len() - self.pos) as u64 {
                    return Err(GgufError::Truncated { what: "array", offset: at });
                }
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(self.value(item_ty, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64("u64")?),
            11 => Value::I64(i64::from_le_bytes(self.array("i64")?)),
            12 => Value::F64(f64::from_le_bytes(self.array("f64")?)),
            _ => return Err(GgufError::UnknownValueType { ty, offset: at }),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a small valid GGUF file: metadata plus one F32 tensor.
    pub(crate) fn tiny_file() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(b"GGUF");
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes()); // tensors
        f.extend_from_slice(&2u64.to_le_bytes()); // kv
        let s = |f: &mut Vec<u8>, s: &str| {
            f.extend_from_slice(&(s.len() as u64).to_le_bytes());
            f.extend_from_slice(s.as_bytes());
        };
        s(&mut f, "general.architecture");
        f.extend_from_slice(&8u32.to_le_bytes());
        s(&mut f, "llama");
        s(&mut f, "tokenizer.ggml.tokens");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&2u64.to_le_bytes());
        s(&mut f, "a");
        s(&mut f, "b");
        s(&mut f, "w");
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&4u64.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes()); // F32
        f.extend_from_slice(&0u64.to_le_bytes());
        while f.len() % 32 != 0 {
            f.push(0);
        }
        for v in [1.0f32, 2.0, 3.0, 4.0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f
    }

    #[test]
    fn parses_a_valid_file() {
        let f = tiny_file();
        let g = Gguf::parse(&f).unwrap();
        assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
        assert_eq!(g.get_array("tokenizer.ggml.tokens").unwrap().len(), 2);
        let t = &g.tensors["w"];
        assert_eq!((t.dims.as_slice(), t.ty, t.len, t.offset + t.len), (&[4u64][..], TensorType::F32, 16, f.len()));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let f = tiny_file();
        for n in 0..f.len() {
            assert!(Gguf::parse(&f[..n]).is_err(), "prefix of {n} bytes parsed");
        }
    }

    #[test]
    fn bad_magic_and_version() {
        let mut f = tiny_file();
        f[0] = b'X';
        assert!(matches!(Gguf::parse(&f), Err(GgufError::NotGguf)));
        let mut f = tiny_file();
        f[4] = 9;
        assert!(matches!(Gguf::parse(&f), Err(GgufError::UnsupportedVersion(9))));
    }

    #[test]
    fn huge_counts_are_refused_before_allocation() {
        let mut f = tiny_file();
        f[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Gguf::parse(&f), Err(GgufError::TooLarge { .. })));
    }

    proptest::proptest! {
        #[test]
        fn random_corruption_never_panics(pos in 0usize..200, byte in 0u8..=255) {
            let mut f = tiny_file();
            let p = pos % f.len();
            f[p] = byte;
            let _ = Gguf::parse(&f);
        }
    }
}
