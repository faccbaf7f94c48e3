//! The tensor type table: one row per ggml type, plus bitnet.cpp's fork types.
//!
//! Type ids 36..=42 mean different things in upstream ggml and in the bitnet.cpp fork
//! (docs/gguf.md, 'Dialects (type ids 36–42)'), so a raw id is only meaningful together with a
//! [`Dialect`]. The reader decides the dialect once per file and proves it with the offset check.

use std::fmt;

/// Which numbering of type ids a file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// ggml-org/ggml and llama.cpp: 36..=38 are removed types, 39 MXFP4, 42 Q2_0.
    Upstream,
    /// bitnet.cpp's 2024 fork (merge-dev): I2_S 36, I8_S 37, TL1 38, TL2 39.
    Bitnet2024,
    /// The later bitnet fork/port: I2_S 36, I8_S 37, TL1 38, TL2 42 (39..41 as upstream).
    Bitnet,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Bitnet, Dialect::Bitnet2024, Dialect::Upstream];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Upstream => "upstream",
            Dialect::Bitnet2024 => "bitnet-2024",
            Dialect::Bitnet => "bitnet",
        }
    }

    pub fn is_bitnet(self) -> bool {
        !matches!(self, Dialect::Upstream)
    }

    /// Parses a `--dialect` value (the names [`Dialect::name`] prints).
    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// The dialect writers use when none is asked for, by the type of the projection weights:
    /// upstream's low-bit types (TQ1_0, TQ2_0, Q1_0, Q2_0) are read by upstream llama.cpp and
    /// Ollama, so their files take upstream's numbering and architecture names; everything
    /// else takes the current bitnet.cpp's (TL2 = 42).
    pub fn default_for(weights: TensorType) -> Dialect {
        match weights {
            TensorType::TQ1_0 | TensorType::TQ2_0 | TensorType::Q1_0 | TensorType::Q2_0 => {
                Dialect::Upstream
            }
            _ => Dialect::Bitnet,
        }
    }

    /// Why a file of this dialect cannot hold `ty`, naming the type to use instead; `None`
    /// when `ty` has an id here. Writers check this before they start.
    pub fn refusal(self, ty: TensorType) -> Option<String> {
        if ty.id(self).is_some() {
            return None;
        }
        let instead = match (self, ty.is_ternary() || ty.is_bitnet_only()) {
            (Dialect::Upstream, true) => {
                "; upstream llama.cpp and Ollama read ternary weights as tq2_0 or tq1_0"
            }
            (_, true) => "; use i2_s, or --dialect bitnet for tl2",
            _ => "",
        };
        Some(format!(
            "type {ty} has no id in the {self} dialect{instead}"
        ))
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a type's byte size follows from its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeRule {
    /// `rows · (ne0 / block_len) · block_bytes`; `ne0` must be a multiple of `block_len`.
    Blocks,
    /// I2_S and TL1: `n / 4 + 32` (2 bits per weight and a 32-byte scale tail).
    QuarterPlusTail,
    /// TL2's formula (docs/gguf.md, 'Size rules'), padded to 32, plus the 32-byte scale slot.
    Tl2,
    /// A type that exists only at run time or was removed; it cannot appear in a file.
    NotStorable,
}

macro_rules! tensor_types {
    ($( $variant:ident = $name:literal, $block:expr, $bytes:expr, $rule:ident; )*) => {
        /// A tensor element type, independent of the numbering dialect.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        pub enum TensorType { $($variant,)* }

        impl TensorType {
            pub const ALL: &'static [TensorType] = &[$(TensorType::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(TensorType::$variant => $name,)* }
            }
            /// Elements per block (1 for plain and per-tensor-layout types).
            pub fn block_len(self) -> u64 {
                match self { $(TensorType::$variant => $block,)* }
            }
            /// Bytes per block for [`SizeRule::Blocks`] types.
            pub fn block_bytes(self) -> u64 {
                match self { $(TensorType::$variant => $bytes,)* }
            }
            pub fn size_rule(self) -> SizeRule {
                match self { $(TensorType::$variant => SizeRule::$rule,)* }
            }
        }
    };
}

tensor_types! {
    F32 = "F32", 1, 4, Blocks;
    F16 = "F16", 1, 2, Blocks;
    Q4_0 = "Q4_0", 32, 18, Blocks;
    Q4_1 = "Q4_1", 32, 20, Blocks;
    Q4_2 = "Q4_2", 0, 0, NotStorable;
    Q4_3 = "Q4_3", 0, 0, NotStorable;
    Q5_0 = "Q5_0", 32, 22, Blocks;
    Q5_1 = "Q5_1", 32, 24, Blocks;
    Q8_0 = "Q8_0", 32, 34, Blocks;
    Q8_1 = "Q8_1", 32, 36, Blocks;
    Q2_K = "Q2_K", 256, 84, Blocks;
    Q3_K = "Q3_K", 256, 110, Blocks;
    Q4_K = "Q4_K", 256, 144, Blocks;
    Q5_K = "Q5_K", 256, 176, Blocks;
    Q6_K = "Q6_K", 256, 210, Blocks;
    Q8_K = "Q8_K", 256, 292, Blocks;
    IQ2_XXS = "IQ2_XXS", 256, 66, Blocks;
    IQ2_XS = "IQ2_XS", 256, 74, Blocks;
    IQ3_XXS = "IQ3_XXS", 256, 98, Blocks;
    IQ1_S = "IQ1_S", 256, 50, Blocks;
    IQ4_NL = "IQ4_NL", 32, 18, Blocks;
    IQ3_S = "IQ3_S", 256, 110, Blocks;
    IQ2_S = "IQ2_S", 256, 82, Blocks;
    IQ4_XS = "IQ4_XS", 256, 136, Blocks;
    I8 = "I8", 1, 1, Blocks;
    I16 = "I16", 1, 2, Blocks;
    I32 = "I32", 1, 4, Blocks;
    I64 = "I64", 1, 8, Blocks;
    F64 = "F64", 1, 8, Blocks;
    IQ1_M = "IQ1_M", 256, 56, Blocks;
    BF16 = "BF16", 1, 2, Blocks;
    Q4_0_4_4 = "Q4_0_4_4", 32, 18, Blocks;
    Q4_0_4_8 = "Q4_0_4_8", 32, 18, Blocks;
    Q4_0_8_8 = "Q4_0_8_8", 32, 18, Blocks;
    TQ1_0 = "TQ1_0", 256, 54, Blocks;
    TQ2_0 = "TQ2_0", 256, 66, Blocks;
    IQ4_NL_4_4 = "IQ4_NL_4_4", 0, 0, NotStorable;
    IQ4_NL_4_8 = "IQ4_NL_4_8", 0, 0, NotStorable;
    IQ4_NL_8_8 = "IQ4_NL_8_8", 0, 0, NotStorable;
    MXFP4 = "MXFP4", 32, 17, Blocks;
    NVFP4 = "NVFP4", 64, 36, Blocks;
    Q1_0 = "Q1_0", 128, 18, Blocks;
    Q2_0 = "Q2_0", 64, 18, Blocks;
    I2_S = "I2_S", 1, 1, QuarterPlusTail;
    I8_S = "I8_S", 1, 1, NotStorable;
    TL1 = "TL1", 1, 1, QuarterPlusTail;
    TL2 = "TL2", 1, 1, Tl2;
}

impl TensorType {
    /// Resolves a raw type id under a dialect. `None` means the id is unknown there.
    pub fn from_id(id: u32, dialect: Dialect) -> Option<TensorType> {
        use TensorType::*;
        let bitnet = dialect.is_bitnet();
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            4 => Q4_2,
            5 => Q4_3,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            31 => Q4_0_4_4,
            32 => Q4_0_4_8,
            33 => Q4_0_8_8,
            34 => TQ1_0,
            35 => TQ2_0,
            36 if bitnet => I2_S,
            37 if bitnet => I8_S,
            38 if bitnet => TL1,
            39 if dialect == Dialect::Bitnet2024 => TL2,
            42 if dialect == Dialect::Bitnet => TL2,
            36 => IQ4_NL_4_4,
            37 => IQ4_NL_4_8,
            38 => IQ4_NL_8_8,
            39 => MXFP4,
            40 if dialect != Dialect::Bitnet2024 => NVFP4,
            41 if dialect != Dialect::Bitnet2024 => Q1_0,
            42 if dialect == Dialect::Upstream => Q2_0,
            _ => return None,
        })
    }

    /// The id this type has under a dialect, if it has one there.
    pub fn id(self, dialect: Dialect) -> Option<u32> {
        (0..=42u32).find(|&id| TensorType::from_id(id, dialect) == Some(self))
    }

    /// True for the 1.58-bit weight formats (codes in {-1, 0, +1} plus scales).
    pub fn is_ternary(self) -> bool {
        matches!(
            self,
            TensorType::I2_S
                | TensorType::TL1
                | TensorType::TL2
                | TensorType::TQ1_0
                | TensorType::TQ2_0
        )
    }

    /// True for the types that only bitnet.cpp understands.
    pub fn is_bitnet_only(self) -> bool {
        matches!(
            self,
            TensorType::I2_S | TensorType::I8_S | TensorType::TL1 | TensorType::TL2
        )
    }

    /// Byte size of a tensor of this type and shape (ggml order, `ne[0]` fastest), or
    /// `None` when the shape does not fit the type or the size overflows.
    pub fn nbytes(self, ne: &[u64]) -> Option<u64> {
        let n = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
        let k = *ne.first().unwrap_or(&1);
        let rows = n.checked_div(k).unwrap_or(0);
        match self.size_rule() {
            SizeRule::NotStorable => None,
            SizeRule::Blocks => {
                let block = self.block_len();
                if block == 0 || !k.is_multiple_of(block) {
                    return None;
                }
                rows.checked_mul(k / block)?.checked_mul(self.block_bytes())
            }
            SizeRule::QuarterPlusTail => (n / 4).checked_add(32),
            SizeRule::Tl2 => {
                // C integer arithmetic, left to right, as the fork computes it; it assumes
                // K >= 256 (the converter cannot produce anything smaller).
                let m = rows;
                if k < 256 {
                    return None;
                }
                let three = (k - 256).checked_mul(m)? / 3 * 5 / 8;
                let two = 256u64.checked_mul(m)? / 2 * 4 / 8;
                let x = three.checked_add(two)?;
                x.checked_add(31).map(|v| v / 32 * 32)?.checked_add(32)
            }
        }
    }

    /// Bits per weight as stored (including per-block or per-tensor scales).
    pub fn bits_per_weight(self, ne: &[u64]) -> Option<f64> {
        let n: u64 = ne.iter().product();
        let bytes = self.nbytes(ne)?;
        (n > 0).then(|| bytes as f64 * 8.0 / n as f64)
    }

    /// Looks a type up by its name, case-insensitively (`"i2_s"`, `"TQ2_0"`, ...).
    pub fn from_name(name: &str) -> Option<TensorType> {
        TensorType::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_every_dialect() {
        for d in Dialect::ALL {
            for id in 0..=42u32 {
                if let Some(t) = TensorType::from_id(id, d) {
                    assert_eq!(t.id(d), Some(id), "{t} in {d}");
                }
            }
            assert_eq!(TensorType::from_id(43, d), None);
        }
    }

    #[test]
    fn collisions_resolve_per_dialect() {
        assert_eq!(
            TensorType::from_id(36, Dialect::Bitnet),
            Some(TensorType::I2_S)
        );
        assert_eq!(
            TensorType::from_id(36, Dialect::Upstream),
            Some(TensorType::IQ4_NL_4_4)
        );
        assert_eq!(
            TensorType::from_id(39, Dialect::Bitnet2024),
            Some(TensorType::TL2)
        );
        assert_eq!(
            TensorType::from_id(39, Dialect::Bitnet),
            Some(TensorType::MXFP4)
        );
        assert_eq!(
            TensorType::from_id(42, Dialect::Bitnet),
            Some(TensorType::TL2)
        );
        assert_eq!(
            TensorType::from_id(42, Dialect::Upstream),
            Some(TensorType::Q2_0)
        );
        assert_eq!(TensorType::from_id(40, Dialect::Bitnet2024), None);
    }

    #[test]
    fn writers_refuse_types_a_dialect_cannot_number() {
        let msg = Dialect::Upstream.refusal(TensorType::I2_S).unwrap();
        assert!(msg.contains("I2_S") && msg.contains("tq2_0"), "{msg}");
        assert!(Dialect::Upstream.refusal(TensorType::TL2).is_some());
        assert!(Dialect::Upstream.refusal(TensorType::TQ2_0).is_none());
        assert_eq!(TensorType::TL2.id(Dialect::Bitnet2024), Some(39));
        assert_eq!(TensorType::TL2.id(Dialect::Bitnet), Some(42));
        assert_eq!(Dialect::from_name("bitnet-2024"), Some(Dialect::Bitnet2024));
        assert_eq!(Dialect::from_name("ollama"), None);
        assert_eq!(Dialect::default_for(TensorType::TQ1_0), Dialect::Upstream);
        assert_eq!(Dialect::default_for(TensorType::Q2_0), Dialect::Upstream);
        assert_eq!(Dialect::default_for(TensorType::F16), Dialect::Bitnet);
    }

    #[test]
    fn size_rules_match_the_spec() {
        // I2_S 4x128: 128 packed bytes + 32-byte tail.
        assert_eq!(TensorType::I2_S.nbytes(&[128, 4]), Some(160));
        assert_eq!(TensorType::TL1.nbytes(&[256, 64]), Some(4096 + 32));
        // TL2 64x256 (docs/formats/tl.md, 'TL2 byte order'): X = 4096 exactly, then the scale slot.
        assert_eq!(TensorType::TL2.nbytes(&[256, 64]), Some(4096 + 32));
        assert_eq!(TensorType::Q8_0.nbytes(&[64, 3]), Some(3 * 2 * 34));
        assert_eq!(TensorType::Q8_0.nbytes(&[65, 3]), None);
        assert_eq!(TensorType::TQ2_0.nbytes(&[256, 2]), Some(132));
        assert_eq!(TensorType::IQ4_NL_4_4.nbytes(&[32]), None);
        assert_eq!(TensorType::F32.nbytes(&[u64::MAX, 2]), None);
    }
}
