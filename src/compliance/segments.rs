//! SMS encoding, segment count and estimated cost.
//!
//! A text is sent as GSM-7 (the GSM 03.38 basic set, where the extension characters
//! `^{}\[~]|€` and form feed take two septets each) when every character fits, else as UCS-2.
//! A single GSM-7 message holds 160 septets, each part of a longer one 153 (the rest carries the
//! concatenation header); UCS-2 holds 70 UTF-16 code units, or 67 per part, so a character
//! outside the Basic Multilingual Plane (most emoji) counts two.
//!
//! Costs are exact decimal arithmetic on the practice's per-segment price: the price is kept as
//! an integer and its number of decimal places, never as a float.

use serde::Serialize;
use utoipa::ToSchema;

/// The most segments one SMS may have; carriers and Twilio refuse longer messages (1,600 chars).
pub const MAX_SEGMENTS: u32 = 10;

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

/// What a text costs to send as SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsShape {
    pub encoding: Encoding,
    /// Unicode code points.
    pub characters: usize,
    pub segments: u32,
    /// The characters that forced UCS-2, each once, in order of first appearance.
    pub non_gsm_characters: Vec<String>,
}

/// Septets a character takes in GSM-7, or `None` when it has no GSM-7 form.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

pub fn analyse(text: &str) -> SmsShape {
    let characters = text.chars().count();
    let mut non_gsm: Vec<String> = Vec::new();
    let mut septets = 0usize;
    for c in text.chars() {
        match gsm_septets(c) {
            Some(n) => septets += n,
            None => {
                let s = c.to_string();
                if !non_gsm.contains(&s) {
                    non_gsm.push(s);
                }
            }
        }
    }
    let (encoding, units, single, part) = if non_gsm.is_empty() {
        (Encoding::Gsm7, septets, 160, 153)
    } else {
        (Encoding::Ucs2, text.encode_utf16().count(), 70, 67)
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    SmsShape {
        encoding,
        characters,
        segments: u32::try_from(segments).unwrap_or(u32::MAX),
        non_gsm_characters: non_gsm,
    }
}

/// Why `text` cannot go out as one SMS, if it cannot: more than [`MAX_SEGMENTS`] segments, said
/// as "is 11 SMS segments (GSM-7, 153 characters each); an SMS may have at most 10".
pub fn over_limit(text: &str) -> Option<String> {
    let shape = analyse(text);
    (shape.segments > MAX_SEGMENTS).then(|| {
        format!(
            "is {} SMS segments ({}); an SMS may have at most {MAX_SEGMENTS}",
            shape.segments,
            match shape.encoding {
                Encoding::Gsm7 => "GSM-7, 153 characters each",
                Encoding::Ucs2 => "UCS-2, 67 characters each",
            },
        )
    })
}

/// A non-negative decimal amount with at most [`Price::MAX_DECIMALS`] places, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    units: u128,
    decimals: u32,
}

impl Price {
    pub const MAX_DECIMALS: u32 = 8;

    /// Parses `"0.0079"`, `"1"`, `"0.50"`; refuses signs, exponents and more than 8 decimals.
    pub fn parse(text: &str) -> Result<Self, String> {
        const WHY: &str = "must be a non-negative decimal like \"0.0079\" with at most 8 decimals";
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || whole.len() > 6
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || (text.contains('.') && fraction.is_empty())
            || fraction.len() > Self::MAX_DECIMALS as usize
        {
            return Err(WHY.into());
        }
        let units = format!("{whole}{fraction}").parse().map_err(|_| WHY)?;
        Ok(Self {
            units,
            decimals: fraction.len() as u32,
        })
    }

    pub fn times(self, count: u32) -> Self {
        Self {
            units: self.units * u128::from(count),
            decimals: self.decimals,
        }
    }
}

impl std::fmt::Display for Price {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scale = 10u128.pow(self.decimals);
        let (whole, fraction) = (self.units / scale, self.units % scale);
        if self.decimals == 0 {
            write!(f, "{whole}")
        } else {
            write!(
                f,
                "{whole}.{fraction:0width$}",
                width = self.decimals as usize
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_gsm7_and_160_characters_fit_one_segment() {
        let shape = analyse(&"a".repeat(160));
        assert_eq!(shape.encoding, Encoding::Gsm7);
        assert_eq!(shape.segments, 1);
        assert_eq!(analyse(&"a".repeat(161)).segments, 2);
        assert_eq!(analyse(&"a".repeat(306)).segments, 2);
        assert_eq!(analyse(&"a".repeat(307)).segments, 3);
        assert_eq!(analyse("").segments, 1);
    }

    #[test]
    fn extension_characters_count_two_septets_but_stay_gsm7() {
        let shape = analyse(&"€".repeat(80));
        assert_eq!(shape.encoding, Encoding::Gsm7);
        assert_eq!(shape.characters, 80);
        assert_eq!(shape.segments, 1);
        assert_eq!(analyse(&format!("{}a", "{".repeat(80))).segments, 2);
        for c in "^{}\\[~]|€\u{000C}".chars() {
            let shape = analyse(&c.to_string().repeat(81));
            assert_eq!(
                (shape.encoding, shape.segments),
                (Encoding::Gsm7, 2),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_non_gsm_character_forces_ucs2_with_70_and_67_unit_segments() {
        let text = format!("{}ç", "a".repeat(69));
        let shape = analyse(&text);
        assert_eq!(shape.encoding, Encoding::Ucs2);
        assert_eq!(shape.segments, 1);
        assert_eq!(shape.non_gsm_characters, vec!["ç".to_string()]);
        assert_eq!(analyse(&format!("{}ç", "a".repeat(70))).segments, 2);
        assert_eq!(analyse(&format!("{}ç", "a".repeat(133))).segments, 2);
        assert_eq!(analyse(&format!("{}ç", "a".repeat(134))).segments, 3);
    }

    #[test]
    fn an_emoji_counts_two_code_units_but_one_character() {
        let shape = analyse(&"😀".repeat(35));
        assert_eq!(shape.characters, 35);
        assert_eq!(shape.segments, 1);
        let shape = analyse(&"😀".repeat(36));
        assert_eq!(shape.segments, 2);
        assert_eq!(shape.non_gsm_characters, vec!["😀".to_string()]);
    }

    #[test]
    fn the_characters_that_forced_ucs2_are_listed_once_in_order() {
        let shape = analyse("Hi “Pat” — see you 🦷 “soon”");
        assert_eq!(shape.non_gsm_characters, ["“", "”", "—", "🦷"]);
        assert_eq!(analyse("Ça va? Ñandú £5 ¥ è").non_gsm_characters, ["ú"]);
    }

    #[test]
    fn accented_letters_in_the_gsm_set_stay_gsm7() {
        assert_eq!(analyse("Ñandú").encoding, Encoding::Ucs2); // ú is not GSM-7
        assert_eq!(analyse("Ñandù é ü ß Ä").encoding, Encoding::Gsm7);
    }

    #[test]
    fn price_is_parsed_and_multiplied_exactly() {
        let price = Price::parse("0.0079").unwrap();
        assert_eq!(price.times(3).to_string(), "0.0237");
        assert_eq!(Price::parse("1").unwrap().times(2).to_string(), "2");
        assert_eq!(Price::parse("0.10").unwrap().times(10).to_string(), "1.00");
        assert_eq!(
            Price::parse("0.00000001").unwrap().times(7).to_string(),
            "0.00000007"
        );
        for bad in [
            "",
            "-1",
            "1e3",
            ".5",
            "1.",
            "0.000000001",
            "abc",
            "1,5",
            "+1",
        ] {
            assert!(Price::parse(bad).is_err(), "{bad:?}");
        }
    }
}
