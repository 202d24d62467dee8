//! PostgreSQL 15 `to_char` formatting, ported from `formatting.c`.
//!
//! This module owns the text produced by `to_char(number, format)` for
//! smallint/integer/bigint, numeric, real and double precision, and by
//! `to_char(timestamp | timestamptz | date, format)`: the format-picture
//! parser, the number machinery (`NUMDesc_prepare`, `NUM_processor`,
//! `NUM_numpart_to_char`, roman numerals, `EEEE`, `V`, sign and fill-mode
//! handling) and the date/time machinery (`DCH_to_char`).  It behaves as a
//! server running with `lc_numeric`, `lc_monetary` and `lc_time` set to `C`:
//! `D` is `.`, `G` is `,`, `L` is a blank, and month and day names are
//! English.  Errors carry PostgreSQL's SQLSTATE and message text.
//!
//! Not covered: `to_char(interval)`, `to_number`/`to_date`/`to_timestamp`,
//! and numeric NaN/Infinity (floats' NaN/Infinity are handled).

use chrono::{Datelike, NaiveDateTime, Timelike};

/// A number to format, as the to_char front end for its SQL type receives it.
///
/// `Int` values inside the `integer` range take `int4_to_char`'s path (as an
/// SQL integer literal would); values outside it take `int8_to_char`'s.  The
/// two differ only in `EEEE` rounding of exact ties and in the overflow
/// error raised by `V`.
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    /// smallint, integer, bigint (int4_to_char/int8_to_char paths)
    Int(i64),
    /// numeric: value = unscaled / 10^scale (numeric_to_char)
    Numeric { unscaled: i128, scale: u32 },
    /// real (float4_to_char)
    Float4(f32),
    /// double precision (float8_to_char)
    Float8(f64),
}

/// An error raised by `to_char`, with PostgreSQL's SQLSTATE and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ToCharError {
    /// Five-character SQLSTATE, e.g. `42601`.
    pub code: &'static str,
    /// PostgreSQL's primary error message text.
    pub message: String,
}

impl std::fmt::Display for ToCharError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToCharError {}

/// ERRCODE_SYNTAX_ERROR
const SYNTAX_ERROR: &str = "42601";
/// ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
const NUMERIC_OUT_OF_RANGE: &str = "22003";
/// ERRCODE_DATETIME_VALUE_OUT_OF_RANGE
const DATETIME_OUT_OF_RANGE: &str = "22008";
/// ERRCODE_INVALID_TEXT_REPRESENTATION
const INVALID_TEXT_REPRESENTATION: &str = "22P02";

/// Builds a [`ToCharError`].
fn error(code: &'static str, message: impl Into<String>) -> ToCharError {
    ToCharError {
        code,
        message: message.into(),
    }
}

/// Shorthand for a syntax error in a number format.
fn syntax(message: &str) -> ToCharError {
    error(SYNTAX_ERROR, message)
}

// ---------------------------------------------------------------------------
// Format-picture parsing (parse_format)
// ---------------------------------------------------------------------------

/// One parsed element of a format picture.
#[derive(Debug, Clone)]
enum Node<K> {
    /// A keyword, with its DCH suffix bits (always 0 for numbers).
    Action(K, u8),
    /// One literal character, copied to the output as is.
    Char(char),
}

/// DCH suffix: fill mode (`FM` prefix).
const S_FM: u8 = 0x01;
/// DCH suffix: upper-case ordinal (`TH` postfix).
const S_TH_UPPER: u8 = 0x02;
/// DCH suffix: lower-case ordinal (`th` postfix).
const S_TH_LOWER: u8 = 0x04;
/// DCH suffix: spell mode (`SP` postfix; accepted and ignored, as in PG).
const S_SP: u8 = 0x08;
/// DCH suffix: translation mode (`TM` prefix).
const S_TM: u8 = 0x10;

/// DCH prefix suffixes, in PostgreSQL's search order.
const DCH_PREFIXES: &[(&str, u8)] = &[("FM", S_FM), ("fm", S_FM), ("TM", S_TM), ("tm", S_TM)];
/// DCH postfix suffixes, in PostgreSQL's search order.
const DCH_POSTFIXES: &[(&str, u8)] = &[("TH", S_TH_UPPER), ("th", S_TH_LOWER), ("SP", S_SP)];

/// Finds the first keyword (in table order) that `s` starts with, among the
/// keywords sharing `s`'s first byte, as `index_seq_search` does.
fn keyword_search<K: Copy>(s: &[u8], table: &[(&str, K)]) -> Option<(usize, K)> {
    let first = *s.first()?;
    if first <= b' ' || first >= b'~' {
        return None;
    }
    table
        .iter()
        .filter(|(name, _)| name.as_bytes()[0] == first)
        .find(|(name, _)| s.starts_with(name.as_bytes()))
        .map(|(name, k)| (name.len(), *k))
}

/// Finds a suffix that `s` starts with.
fn suffix_search(s: &[u8], table: &[(&str, u8)]) -> Option<(usize, u8)> {
    table
        .iter()
        .find(|(name, _)| s.starts_with(name.as_bytes()))
        .map(|(name, id)| (name.len(), *id))
}

/// The character starting at byte `pos` of `fmt` (always a char boundary here).
fn char_at(fmt: &str, pos: usize) -> Option<char> {
    fmt.get(pos..).and_then(|rest| rest.chars().next())
}

/// Parses a format picture into nodes (`parse_format`); `dch` enables the
/// date/time prefix and postfix suffixes; `on_action` sees each keyword as
/// it is found (the number version's `NUMDesc_prepare`).
fn parse_format<K: Copy>(
    fmt: &str,
    table: &[(&str, K)],
    dch: bool,
    mut on_action: impl FnMut(K) -> Result<(), ToCharError>,
) -> Result<Vec<Node<K>>, ToCharError> {
    // A C string ends at the first NUL.
    let fmt = match fmt.find('\0') {
        Some(end) => &fmt[..end],
        None => fmt,
    };
    let b = fmt.as_bytes();
    let mut pos = 0;
    let mut nodes = Vec::new();
    while pos < b.len() {
        let mut suffix = 0u8;
        if dch {
            if let Some((len, id)) = suffix_search(&b[pos..], DCH_PREFIXES) {
                suffix |= id;
                pos += len;
            }
        }
        if let Some((len, key)) = keyword_search(&b[pos..], table) {
            pos += len;
            on_action(key)?;
            if dch {
                if let Some((len, id)) = suffix_search(&b[pos..], DCH_POSTFIXES) {
                    suffix |= id;
                    pos += len;
                }
            }
            nodes.push(Node::Action(key, suffix));
        } else if pos < b.len() {
            if b[pos] == b'"' {
                // Double-quoted literal; backslash quotes the next character.
                pos += 1;
                while pos < b.len() {
                    if b[pos] == b'"' {
                        pos += 1;
                        break;
                    }
                    if b[pos] == b'\\' && pos + 1 < b.len() {
                        pos += 1;
                    }
                    let Some(c) = char_at(fmt, pos) else { break };
                    nodes.push(Node::Char(c));
                    pos += c.len_utf8();
                }
            } else {
                // Outside quotes a backslash only escapes a double quote.
                if b[pos] == b'\\' && b.get(pos + 1) == Some(&b'"') {
                    pos += 1;
                }
                let Some(c) = char_at(fmt, pos) else { break };
                nodes.push(Node::Char(c));
                pos += c.len_utf8();
            }
        }
    }
    Ok(nodes)
}

/// Ordinal suffix for the number in `num` (`get_th`).
fn get_th(num: &str, upper: bool) -> Result<&'static str, ToCharError> {
    let b = num.as_bytes();
    let last = match b.last() {
        Some(&c) if c.is_ascii_digit() => c,
        _ => {
            return Err(error(
                INVALID_TEXT_REPRESENTATION,
                format!("\"{num}\" is not a number"),
            ))
        }
    };
    let last = if b.len() > 1 && b[b.len() - 2] == b'1' {
        b'0'
    } else {
        last
    };
    Ok(match (last, upper) {
        (b'1', true) => "ST",
        (b'1', false) => "st",
        (b'2', true) => "ND",
        (b'2', false) => "nd",
        (b'3', true) => "RD",
        (b'3', false) => "rd",
        (_, true) => "TH",
        (_, false) => "th",
    })
}

// ---------------------------------------------------------------------------
// Number formatting: keywords and NUMDesc
// ---------------------------------------------------------------------------

/// Number format keywords (`NUM_poz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumKey {
    /// `,`
    Comma,
    /// `.`
    Dec,
    /// `0`
    Zero,
    /// `9`
    Nine,
    /// `B`
    B,
    /// `C` (no output)
    C,
    /// `D` locale decimal point
    D,
    /// `EEEE`
    E,
    /// `FM`
    Fm,
    /// `G` locale group separator
    G,
    /// `L` currency symbol
    L,
    /// `MI`
    Mi,
    /// `PL`
    Pl,
    /// `PR`
    Pr,
    /// `RN`
    RnUpper,
    /// `SG`
    Sg,
    /// `SP` (no output)
    Sp,
    /// `S`
    S,
    /// `TH`
    ThUpper,
    /// `V`
    V,
    /// `rn`
    RnLower,
    /// `th`
    ThLower,
}

/// Number format keywords, in PostgreSQL's table order (`NUM_keywords`).
const NUM_KEYWORDS: &[(&str, NumKey)] = &[
    (",", NumKey::Comma),
    (".", NumKey::Dec),
    ("0", NumKey::Zero),
    ("9", NumKey::Nine),
    ("B", NumKey::B),
    ("C", NumKey::C),
    ("D", NumKey::D),
    ("EEEE", NumKey::E),
    ("FM", NumKey::Fm),
    ("G", NumKey::G),
    ("L", NumKey::L),
    ("MI", NumKey::Mi),
    ("PL", NumKey::Pl),
    ("PR", NumKey::Pr),
    ("RN", NumKey::RnUpper),
    ("SG", NumKey::Sg),
    ("SP", NumKey::Sp),
    ("S", NumKey::S),
    ("TH", NumKey::ThUpper),
    ("V", NumKey::V),
    ("b", NumKey::B),
    ("c", NumKey::C),
    ("d", NumKey::D),
    ("eeee", NumKey::E),
    ("fm", NumKey::Fm),
    ("g", NumKey::G),
    ("l", NumKey::L),
    ("mi", NumKey::Mi),
    ("pl", NumKey::Pl),
    ("pr", NumKey::Pr),
    ("rn", NumKey::RnLower),
    ("sg", NumKey::Sg),
    ("sp", NumKey::Sp),
    ("s", NumKey::S),
    ("th", NumKey::ThLower),
    ("v", NumKey::V),
];

/// NUMDesc flag: has a decimal point.
const F_DECIMAL: u32 = 1 << 1;
/// NUMDesc flag: locale decimal point (`D`).
const F_LDECIMAL: u32 = 1 << 2;
/// NUMDesc flag: has a `0`.
const F_ZERO: u32 = 1 << 3;
/// NUMDesc flag: `B` seen before any digit.
const F_BLANK: u32 = 1 << 4;
/// NUMDesc flag: fill mode (`FM`).
const F_FILLMODE: u32 = 1 << 5;
/// NUMDesc flag: locale sign (`S`).
const F_LSIGN: u32 = 1 << 6;
/// NUMDesc flag: angle brackets for negatives (`PR`).
const F_BRACKET: u32 = 1 << 7;
/// NUMDesc flag: `MI` (or `SG`).
const F_MINUS: u32 = 1 << 8;
/// NUMDesc flag: `PL` (or `SG`).
const F_PLUS: u32 = 1 << 9;
/// NUMDesc flag: roman numerals (`RN`).
const F_ROMAN: u32 = 1 << 10;
/// NUMDesc flag: multiplier (`V`).
const F_MULTI: u32 = 1 << 11;
/// NUMDesc flag: `PL` after the decimal point.
const F_PLUS_POST: u32 = 1 << 12;
/// NUMDesc flag: `MI` after the decimal point.
const F_MINUS_POST: u32 = 1 << 13;
/// NUMDesc flag: scientific notation (`EEEE`).
const F_EEEE: u32 = 1 << 14;

/// Locale sign before the number.
const LSIGN_PRE: i64 = -1;
/// Locale sign after the number.
const LSIGN_POST: i64 = 1;
/// No locale sign.
const LSIGN_NONE: i64 = 0;

/// Description of a number format picture (`NUMDesc`).
#[derive(Debug, Clone, Default)]
struct NumDesc {
    /// Digit positions before the decimal point.
    pre: i64,
    /// Digit positions after the decimal point.
    post: i64,
    /// Where the locale sign goes (`LSIGN_*`).
    lsign: i64,
    /// `F_*` bits.
    flag: u32,
    /// `pre` when `S` was seen.
    pre_lsign_num: i64,
    /// Number of digits after `V`.
    multi: i64,
    /// Position of the first `0`.
    zero_start: i64,
    /// Position of the last `0`.
    zero_end: i64,
}

impl NumDesc {
    /// Tests a flag bit.
    fn has(&self, f: u32) -> bool {
        self.flag & f != 0
    }

    /// Accounts for one keyword of the picture (`NUMDesc_prepare`).
    fn prepare(&mut self, key: NumKey) -> Result<(), ToCharError> {
        if self.has(F_EEEE) && key != NumKey::E {
            return Err(syntax("\"EEEE\" must be the last pattern used"));
        }
        match key {
            NumKey::Nine => {
                if self.has(F_BRACKET) {
                    return Err(syntax("\"9\" must be ahead of \"PR\""));
                }
                if self.has(F_MULTI) {
                    self.multi += 1;
                } else if self.has(F_DECIMAL) {
                    self.post += 1;
                } else {
                    self.pre += 1;
                }
            }
            NumKey::Zero => {
                if self.has(F_BRACKET) {
                    return Err(syntax("\"0\" must be ahead of \"PR\""));
                }
                if !self.has(F_ZERO) && !self.has(F_DECIMAL) {
                    self.flag |= F_ZERO;
                    self.zero_start = self.pre + 1;
                }
                if !self.has(F_DECIMAL) {
                    self.pre += 1;
                } else {
                    self.post += 1;
                }
                self.zero_end = self.pre + self.post;
            }
            NumKey::B => {
                if self.pre == 0 && self.post == 0 && !self.has(F_ZERO) {
                    self.flag |= F_BLANK;
                }
            }
            NumKey::D | NumKey::Dec => {
                if key == NumKey::D {
                    self.flag |= F_LDECIMAL;
                }
                if self.has(F_DECIMAL) {
                    return Err(syntax("multiple decimal points"));
                }
                if self.has(F_MULTI) {
                    return Err(syntax("cannot use \"V\" and decimal point together"));
                }
                self.flag |= F_DECIMAL;
            }
            NumKey::Fm => self.flag |= F_FILLMODE,
            NumKey::S => {
                if self.has(F_LSIGN) {
                    return Err(syntax("cannot use \"S\" twice"));
                }
                if self.has(F_PLUS) || self.has(F_MINUS) || self.has(F_BRACKET) {
                    return Err(syntax(
                        "cannot use \"S\" and \"PL\"/\"MI\"/\"SG\"/\"PR\" together",
                    ));
                }
                if !self.has(F_DECIMAL) {
                    self.lsign = LSIGN_PRE;
                    self.pre_lsign_num = self.pre;
                    self.flag |= F_LSIGN;
                } else if self.lsign == LSIGN_NONE {
                    self.lsign = LSIGN_POST;
                    self.flag |= F_LSIGN;
                }
            }
            NumKey::Mi => {
                if self.has(F_LSIGN) {
                    return Err(syntax("cannot use \"S\" and \"MI\" together"));
                }
                self.flag |= F_MINUS;
                if self.has(F_DECIMAL) {
                    self.flag |= F_MINUS_POST;
                }
            }
            NumKey::Pl => {
                if self.has(F_LSIGN) {
                    return Err(syntax("cannot use \"S\" and \"PL\" together"));
                }
                self.flag |= F_PLUS;
                if self.has(F_DECIMAL) {
                    self.flag |= F_PLUS_POST;
                }
            }
            NumKey::Sg => {
                if self.has(F_LSIGN) {
                    return Err(syntax("cannot use \"S\" and \"SG\" together"));
                }
                self.flag |= F_MINUS | F_PLUS;
            }
            NumKey::Pr => {
                if self.has(F_LSIGN) || self.has(F_PLUS) || self.has(F_MINUS) {
                    return Err(syntax(
                        "cannot use \"PR\" and \"S\"/\"PL\"/\"MI\"/\"SG\" together",
                    ));
                }
                self.flag |= F_BRACKET;
            }
            NumKey::RnUpper | NumKey::RnLower => self.flag |= F_ROMAN,
            NumKey::V => {
                if self.has(F_DECIMAL) {
                    return Err(syntax("cannot use \"V\" and decimal point together"));
                }
                self.flag |= F_MULTI;
            }
            NumKey::E => {
                if self.has(F_EEEE) {
                    return Err(syntax("cannot use \"EEEE\" twice"));
                }
                if self.has(F_BLANK)
                    || self.has(F_FILLMODE)
                    || self.has(F_LSIGN)
                    || self.has(F_BRACKET)
                    || self.has(F_MINUS)
                    || self.has(F_PLUS)
                    || self.has(F_ROMAN)
                    || self.has(F_MULTI)
                {
                    return Err(syntax("\"EEEE\" is incompatible with other formats"));
                }
                self.flag |= F_EEEE;
            }
            NumKey::Comma
            | NumKey::C
            | NumKey::G
            | NumKey::L
            | NumKey::Sp
            | NumKey::ThUpper
            | NumKey::ThLower => {}
        }
        Ok(())
    }
}

/// Parses a number format picture into nodes and its description.
fn parse_num_format(fmt: &str) -> Result<(Vec<Node<NumKey>>, NumDesc), ToCharError> {
    let mut desc = NumDesc::default();
    let nodes = parse_format(fmt, NUM_KEYWORDS, false, |k| desc.prepare(k))?;
    Ok((nodes, desc))
}

// ---------------------------------------------------------------------------
// Number formatting: NUM_processor (to_char direction)
// ---------------------------------------------------------------------------

/// C locale negative sign.
const L_NEGATIVE_SIGN: &str = "-";
/// C locale positive sign.
const L_POSITIVE_SIGN: &str = "+";
/// C locale decimal point (used for both `.` and `D`).
const L_DECIMAL: &str = ".";
/// C locale thousands separator as PostgreSQL substitutes it.
const L_THOUSANDS_SEP: &str = ",";
/// C locale currency symbol as PostgreSQL substitutes it.
const L_CURRENCY_SYMBOL: &str = " ";

/// The number processor's state (`NUMProc`, to_char direction only).
struct NumProc<'a> {
    /// The format description (modified as PostgreSQL modifies it).
    num: &'a mut NumDesc,
    /// b'+', b'-' or 0 (roman numerals).
    sign: u8,
    /// Whether the sign has been written.
    sign_wrote: bool,
    /// Number of digit positions to write.
    num_count: i64,
    /// Whether we are inside the written number.
    num_in: bool,
    /// Index of the current digit position in the picture.
    num_curr: i64,
    /// Blank positions before the first digit.
    out_pre_spaces: i64,
    /// The digits to print (no sign).
    number: Vec<u8>,
    /// Current position in `number`.
    number_p: usize,
    /// Output bytes; a NUL ends the result as in C.
    out: Vec<u8>,
    /// Last digit after the decimal point worth printing in fill mode.
    last_relevant: Option<usize>,
}

impl NumProc<'_> {
    /// `*Np->number_p`: the current number byte, 0 at the end.
    fn cur(&self) -> u8 {
        self.number.get(self.number_p).copied().unwrap_or(0)
    }

    /// Whether `last_relevant` points at the decimal point.
    fn last_relevant_is_dot(&self) -> bool {
        matches!(self.last_relevant, Some(i) if self.number.get(i) == Some(&b'.'))
    }

    /// `IS_PREDEC_SPACE`: a lone leading zero before the decimal point.
    fn is_predec_space(&self) -> bool {
        !self.num.has(F_ZERO)
            && self.number_p == 0
            && self.number.first() == Some(&b'0')
            && self.num.post != 0
    }

    /// Appends a locale symbol (`NUM_add_locale_symbol`).
    fn add_symbol(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    /// The locale sign symbol for the current sign.
    fn sign_symbol(&self) -> &'static str {
        if self.sign == b'-' {
            L_NEGATIVE_SIGN
        } else {
            L_POSITIVE_SIGN
        }
    }

    /// Writes one digit/decimal-point position (`NUM_numpart_to_char`).
    fn numpart_to_char(&mut self, id: NumKey) {
        if self.num.has(F_ROMAN) {
            return;
        }
        self.num_in = false;
        let fm = self.num.has(F_FILLMODE);

        // Write the sign if the real number starts here.
        if !self.sign_wrote
            && (self.num_curr >= self.out_pre_spaces
                || (self.num.has(F_ZERO) && self.num.zero_start == self.num_curr))
            && (!self.is_predec_space() || self.last_relevant_is_dot())
        {
            if self.num.has(F_LSIGN) {
                if self.num.lsign == LSIGN_PRE {
                    self.add_symbol(self.sign_symbol());
                    self.sign_wrote = true;
                }
            } else if self.num.has(F_BRACKET) {
                self.out.push(if self.sign == b'+' { b' ' } else { b'<' });
                self.sign_wrote = true;
            } else if self.sign == b'+' {
                if !fm {
                    self.out.push(b' ');
                }
                self.sign_wrote = true;
            } else if self.sign == b'-' {
                self.out.push(b'-');
                self.sign_wrote = true;
            }
        }

        // Digits, fill, zero and decimal point.
        if self.num_curr < self.out_pre_spaces
            && (self.num.zero_start > self.num_curr || !self.num.has(F_ZERO))
        {
            if !fm {
                self.out.push(b' ');
            }
        } else if self.num.has(F_ZERO)
            && self.num_curr < self.out_pre_spaces
            && self.num.zero_start <= self.num_curr
        {
            self.out.push(b'0');
            self.num_in = true;
        } else {
            if self.cur() == b'.' {
                if !self.last_relevant_is_dot() || fm {
                    self.add_symbol(L_DECIMAL);
                }
            } else if matches!(self.last_relevant, Some(lr) if self.number_p > lr)
                && id != NumKey::Zero
            {
                // Trailing zero dropped by fill mode.
            } else if self.is_predec_space() {
                if !fm {
                    self.out.push(b' ');
                } else if self.last_relevant_is_dot() {
                    self.out.push(b'0');
                }
            } else {
                let c = self.cur();
                self.out.push(c);
                self.num_in = true;
            }
            if self.cur() != 0 {
                self.number_p += 1;
            }
        }

        let mut end = self.num_count
            + i64::from(self.out_pre_spaces != 0)
            + i64::from(self.num.has(F_DECIMAL));
        if self.last_relevant == Some(self.number_p) {
            end = self.num_curr;
        }
        if self.num_curr + 1 == end {
            if self.sign_wrote && self.num.has(F_BRACKET) {
                self.out.push(if self.sign == b'+' { b' ' } else { b'>' });
            } else if self.num.has(F_LSIGN) && self.num.lsign == LSIGN_POST {
                self.add_symbol(self.sign_symbol());
            }
        }
        self.num_curr += 1;
    }
}

/// Formats `number` (digits without sign, or '#' fill, or a roman numeral)
/// along the picture (`NUM_processor`, to_char direction).
fn num_processor(
    nodes: &[Node<NumKey>],
    num: &mut NumDesc,
    number: Vec<u8>,
    out_pre_spaces: i64,
    sign: u8,
) -> Result<String, ToCharError> {
    if num.zero_start != 0 {
        num.zero_start -= 1;
    }
    if num.has(F_EEEE) {
        return Ok(String::from_utf8_lossy(&number).into_owned());
    }
    if num.has(F_ROMAN) {
        num.lsign = 0;
        num.pre_lsign_num = 0;
        num.post = 0;
        num.pre = 0;
        num.flag = (num.flag & F_FILLMODE) | F_ROMAN;
    }

    let mut np = NumProc {
        num,
        sign,
        sign_wrote: false,
        num_count: 0,
        num_in: false,
        num_curr: 0,
        out_pre_spaces: 0,
        number,
        number_p: 0,
        out: Vec::new(),
        last_relevant: None,
    };

    // Sign
    if np.num.has(F_PLUS) || np.num.has(F_MINUS) {
        // MI/PL/SG write the sign themselves; a lone PL still needs one.
        np.sign_wrote = !np.num.has(F_PLUS) || np.num.has(F_MINUS);
    } else {
        if np.sign != b'-' {
            if np.num.has(F_BRACKET) && np.num.has(F_FILLMODE) {
                np.num.flag &= !F_BRACKET;
            }
            if np.num.has(F_MINUS) {
                np.num.flag &= !F_MINUS;
            }
        } else if np.sign != b'+' && np.num.has(F_PLUS) {
            np.num.flag &= !F_PLUS;
        }
        np.sign_wrote = np.sign == b'+' && np.num.has(F_FILLMODE) && !np.num.has(F_LSIGN);
        if np.num.lsign == LSIGN_PRE && np.num.pre == np.num.pre_lsign_num {
            np.num.lsign = LSIGN_POST;
        }
    }

    // Count
    np.num_count = np.num.post + np.num.pre - 1;
    np.out_pre_spaces = out_pre_spaces;
    if np.num.has(F_FILLMODE) && np.num.has(F_DECIMAL) {
        np.last_relevant = get_last_relevant_decnum(&np.number);
        if let Some(lr) = np.last_relevant {
            if np.num.zero_end > np.out_pre_spaces {
                let last_zero_pos =
                    (np.number.len() as i64 - 1).min(np.num.zero_end - np.out_pre_spaces);
                if (lr as i64) < last_zero_pos {
                    np.last_relevant = usize::try_from(last_zero_pos).ok();
                }
            }
        }
    }
    if !np.sign_wrote && np.out_pre_spaces == 0 {
        np.num_count += 1;
    }

    let fm = np.num.has(F_FILLMODE);
    for node in nodes {
        let (key, _) = match node {
            Node::Char(c) => {
                let mut buf = [0u8; 4];
                np.out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            Node::Action(k, s) => (*k, *s),
        };
        match key {
            NumKey::Nine | NumKey::Zero | NumKey::Dec | NumKey::D => np.numpart_to_char(key),
            NumKey::Comma => {
                if np.num_in {
                    np.out.push(b',');
                } else if !fm {
                    np.out.push(b' ');
                }
            }
            NumKey::G => {
                if np.num_in {
                    np.add_symbol(L_THOUSANDS_SEP);
                } else if !fm {
                    let n = L_THOUSANDS_SEP.chars().count();
                    np.out.extend(std::iter::repeat_n(b' ', n));
                }
            }
            NumKey::L => np.add_symbol(L_CURRENCY_SYMBOL),
            NumKey::RnUpper | NumKey::RnLower => {
                let rest = np.number.get(np.number_p..).unwrap_or(&[]);
                let rest: Vec<u8> = rest.iter().copied().take_while(|&c| c != 0).collect();
                let rest = if key == NumKey::RnLower {
                    rest.to_ascii_lowercase()
                } else {
                    rest
                };
                if !fm {
                    let pad = 15usize.saturating_sub(rest.len());
                    np.out.extend(std::iter::repeat_n(b' ', pad));
                }
                np.out.extend_from_slice(&rest);
            }
            NumKey::ThUpper | NumKey::ThLower => {
                if np.num.has(F_ROMAN)
                    || np.number.first() == Some(&b'#')
                    || np.sign == b'-'
                    || np.num.has(F_DECIMAL)
                {
                    continue;
                }
                let digits: Vec<u8> = np.number.iter().copied().take_while(|&c| c != 0).collect();
                let th = get_th(&String::from_utf8_lossy(&digits), key == NumKey::ThUpper)?;
                np.out.extend_from_slice(th.as_bytes());
            }
            NumKey::Mi => {
                if np.sign == b'-' {
                    np.out.push(b'-');
                } else if !fm {
                    np.out.push(b' ');
                }
            }
            NumKey::Pl => {
                if np.sign == b'+' {
                    np.out.push(b'+');
                } else if !fm {
                    np.out.push(b' ');
                }
            }
            NumKey::Sg => np.out.push(np.sign),
            NumKey::B
            | NumKey::C
            | NumKey::E
            | NumKey::Fm
            | NumKey::Pr
            | NumKey::Sp
            | NumKey::S
            | NumKey::V => {}
        }
    }

    // The C result is a NUL-terminated string.
    let mut out = np.out;
    if let Some(end) = out.iter().position(|&c| c == 0) {
        out.truncate(end);
    }
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Position of the last non-zero digit after the decimal point, or of the
/// point itself; `None` without a decimal point (`get_last_relevant_decnum`).
fn get_last_relevant_decnum(num: &[u8]) -> Option<usize> {
    let dot = num.iter().position(|&c| c == b'.')?;
    let mut result = dot;
    for (i, &c) in num.iter().enumerate().skip(dot + 1) {
        if c == 0 {
            break;
        }
        if c != b'0' {
            result = i;
        }
    }
    Some(result)
}

/// `fill_str`: `n` copies of `c`.
fn fill_str(c: u8, n: i64) -> Vec<u8> {
    vec![c; usize::try_from(n).unwrap_or(0)]
}

/// The '#' overflow picture: `pre` hashes, '.', `post` hashes.
fn overflow_fill(pre: i64, post: i64) -> Vec<u8> {
    let mut s = fill_str(b'#', pre + post + 1);
    if let Some(c) = usize::try_from(pre).ok().and_then(|p| s.get_mut(p)) {
        *c = b'.';
    }
    s
}

/// The '#' picture printed for NaN/Infinity under `EEEE`.
fn eeee_special_fill(pre: i64, post: i64) -> Vec<u8> {
    let mut s = fill_str(b'#', pre + post + 6);
    if let Some(c) = s.get_mut(0) {
        *c = b' ';
    }
    if let Some(c) = usize::try_from(pre + 1).ok().and_then(|p| s.get_mut(p)) {
        *c = b'.';
    }
    s
}

/// Roman numeral for 1..=3999, else fifteen '#' (`int_to_roman`).
fn int_to_roman(number: i64) -> String {
    const RM1: [&str; 9] = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"];
    const RM10: [&str; 9] = ["X", "XX", "XXX", "XL", "L", "LX", "LXX", "LXXX", "XC"];
    const RM100: [&str; 9] = ["C", "CC", "CCC", "CD", "D", "DC", "DCC", "DCCC", "CM"];
    if !(1..=3999).contains(&number) {
        return "#".repeat(15);
    }
    let digits = number.to_string();
    let mut result = String::new();
    let mut len = digits.len();
    for d in digits.bytes() {
        let n = usize::from(d - b'0');
        if n > 0 {
            match len {
                4.. => result.push_str(&"M".repeat(n)),
                3 => result.push_str(RM100[n - 1]),
                2 => result.push_str(RM10[n - 1]),
                _ => result.push_str(RM1[n - 1]),
            }
        }
        len -= 1;
    }
    result
}

/// Splits an optional leading '-' off a printed number.
fn split_sign(s: String) -> (u8, Vec<u8>) {
    match s.strip_prefix('-') {
        Some(rest) => (b'-', rest.as_bytes().to_vec()),
        None => (b'+', s.into_bytes()),
    }
}

/// Digits before the decimal point of a printed number.
fn pre_len(s: &[u8]) -> i64 {
    s.iter().position(|&c| c == b'.').unwrap_or(s.len()) as i64
}

/// Common tail of the front ends: pad or overflow-fill the digits.
fn pad_or_overflow(numstr: Vec<u8>, desc: &NumDesc) -> (Vec<u8>, i64) {
    let len = pre_len(&numstr);
    if len < desc.pre {
        (numstr, desc.pre - len)
    } else if len > desc.pre {
        (overflow_fill(desc.pre, desc.post), 0)
    } else {
        (numstr, 0)
    }
}

// ---------------------------------------------------------------------------
// printf emulation (PostgreSQL's snprintf.c over glibc)
// ---------------------------------------------------------------------------

/// Largest precision snprintf.c passes to the C library; the rest is zeros.
const MAX_PRINTF_PRECISION: usize = 350;

/// `%.*f` as PostgreSQL's snprintf prints it.
fn printf_f(v: f64, prec: i64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    let prec = usize::try_from(prec).unwrap_or(0);
    let mut s = String::new();
    if v.is_sign_negative() {
        s.push('-');
    }
    let a = v.abs();
    if a.is_infinite() {
        s.push_str("Infinity");
        return s;
    }
    let p = prec.min(MAX_PRINTF_PRECISION);
    s.push_str(&format!("{a:.p$}"));
    s.extend(std::iter::repeat_n('0', prec - p));
    s
}

/// `%+.*e` as PostgreSQL's snprintf prints it.
fn printf_e_plus(v: f64, prec: i64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    let prec = usize::try_from(prec).unwrap_or(0);
    let mut s = String::from(if v.is_sign_negative() { "-" } else { "+" });
    let a = v.abs();
    if a.is_infinite() {
        s.push_str("Infinity");
        return s;
    }
    let p = prec.min(MAX_PRINTF_PRECISION);
    let r = format!("{a:.p$e}");
    let (mant, exp) = r.split_once('e').unwrap_or((r.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    s.push_str(mant);
    s.extend(std::iter::repeat_n('0', prec - p));
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.abs()));
    s
}

/// C's `(int) rint(x)` on x86-64: out-of-range and NaN give INT_MIN.
fn rint_to_int(x: f64) -> i64 {
    let r = x.round_ties_even();
    if r.is_finite() && r >= f64::from(i32::MIN) && r <= f64::from(i32::MAX) {
        r as i64
    } else {
        i64::from(i32::MIN)
    }
}

// ---------------------------------------------------------------------------
// Exact decimal arithmetic for the numeric front end
// ---------------------------------------------------------------------------

/// Largest display scale numeric_round() allows (NUMERIC_DSCALE_MAX).
const NUMERIC_DSCALE_MAX: i64 = 0x3FFF;

/// A decimal value: `digits` (ASCII, no leading zeros, empty for zero) × 10^`exp`.
#[derive(Debug, Clone)]
struct Dec {
    /// Negative (never for zero).
    neg: bool,
    /// Coefficient digits, most significant first.
    digits: Vec<u8>,
    /// Power of ten applied to the coefficient.
    exp: i64,
}

impl Dec {
    /// From a numeric's unscaled value and scale.
    fn new(unscaled: i128, scale: u32) -> Dec {
        let mut d = Dec {
            neg: unscaled < 0,
            digits: unscaled.unsigned_abs().to_string().into_bytes(),
            exp: -i64::from(scale),
        };
        d.normalize();
        d
    }

    /// Strips leading zeros; zero is positive.
    fn normalize(&mut self) {
        let nz = self
            .digits
            .iter()
            .position(|&c| c != b'0')
            .unwrap_or(self.digits.len());
        self.digits.drain(..nz);
        if self.digits.is_empty() {
            self.neg = false;
        }
    }

    /// Rounds half away from zero to `scale` decimal places (`round_var`).
    fn round(&mut self, scale: i64) {
        let drop = -self.exp - scale;
        if drop <= 0 {
            return;
        }
        let len = self.digits.len() as i64;
        self.exp = -scale;
        if drop > len {
            self.digits.clear();
            self.normalize();
            return;
        }
        let keep = (len - drop) as usize;
        let round_up = self.digits.get(keep).is_some_and(|&c| c >= b'5');
        self.digits.truncate(keep);
        if round_up {
            let mut i = self.digits.len();
            loop {
                if i == 0 {
                    self.digits.insert(0, b'1');
                    break;
                }
                i -= 1;
                if self.digits[i] == b'9' {
                    self.digits[i] = b'0';
                } else {
                    self.digits[i] += 1;
                    break;
                }
            }
        }
        self.normalize();
    }

    /// Prints with exactly `dscale` decimals (`get_str_from_var`); the value
    /// must already be rounded to at most `dscale` places.
    fn to_fixed(&self, dscale: i64) -> String {
        let dscale = usize::try_from(dscale).unwrap_or(0);
        let mut s = String::new();
        if self.neg {
            s.push('-');
        }
        let mut coeff: Vec<u8> = self.digits.clone();
        if self.exp > 0 && !coeff.is_empty() {
            coeff.extend(fill_str(b'0', self.exp));
        }
        let frac_len = usize::try_from(-self.exp).unwrap_or(0);
        let (int_part, frac_part): (Vec<u8>, Vec<u8>) = if coeff.len() > frac_len {
            let split = coeff.len() - frac_len;
            (coeff[..split].to_vec(), coeff[split..].to_vec())
        } else {
            let mut f = vec![b'0'; frac_len - coeff.len()];
            f.extend_from_slice(&coeff);
            (b"0".to_vec(), f)
        };
        s.push_str(&String::from_utf8_lossy(&int_part));
        if dscale > 0 {
            s.push('.');
            let mut frac = frac_part;
            frac.truncate(dscale);
            frac.resize(dscale, b'0');
            s.push_str(&String::from_utf8_lossy(&frac));
        }
        s
    }

    /// Scientific notation with `rscale` significand decimals
    /// (`numeric_out_sci` / `get_str_from_var_sci`).
    fn to_sci(&self, rscale: i64) -> String {
        let rscale = rscale.max(0);
        let exponent = if self.digits.is_empty() {
            0
        } else {
            self.digits.len() as i64 - 1 + self.exp
        };
        let mut sig = self.clone();
        sig.exp -= exponent;
        sig.round(rscale);
        format!(
            "{}e{}{:02}",
            sig.to_fixed(rscale),
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        )
    }

    /// `numeric_int4` of an integral value.
    fn to_i32(&self) -> Result<i64, ToCharError> {
        let out_of_range = || error(NUMERIC_OUT_OF_RANGE, "integer out of range");
        if self.digits.is_empty() {
            return Ok(0);
        }
        if self.digits.len() as i64 + self.exp.max(0) > 10 || self.exp < 0 {
            return Err(out_of_range());
        }
        let mut v: i64 = 0;
        for &c in &self.digits {
            v = v * 10 + i64::from(c - b'0');
        }
        for _ in 0..self.exp {
            v *= 10;
        }
        if self.neg {
            v = -v;
        }
        if i32::try_from(v).is_err() {
            return Err(out_of_range());
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------
// Number front ends
// ---------------------------------------------------------------------------

/// Formats a number with a `to_char` number format picture.
///
/// An empty format gives an empty string, as PostgreSQL does.
pub fn number(value: &Num, format: &str) -> Result<String, ToCharError> {
    if format.is_empty() {
        return Ok(String::new());
    }
    let (nodes, mut desc) = parse_num_format(format)?;
    let (numstr, out_pre_spaces, sign) = match *value {
        Num::Int(v) => match i32::try_from(v) {
            Ok(v4) => int4_numstr(v4, &mut desc)?,
            Err(_) => int8_numstr(v, &mut desc)?,
        },
        Num::Numeric { unscaled, scale } => numeric_numstr(Dec::new(unscaled, scale), &mut desc)?,
        Num::Float4(v) => float4_numstr(v, &mut desc),
        Num::Float8(v) => float8_numstr(v, &mut desc),
    };
    num_processor(&nodes, &mut desc, numstr, out_pre_spaces, sign)
}

/// Digits, padding and sign for the integer paths after `V` is applied.
fn int_digits(v: i64, desc: &mut NumDesc) -> (Vec<u8>, i64, u8) {
    let (sign, orgnum) = split_sign(v.to_string());
    let mut numstr = orgnum;
    let len = numstr.len() as i64;
    if desc.post > 0 {
        numstr.push(b'.');
        numstr.extend(fill_str(b'0', desc.post));
    }
    let (numstr, pad) = if len < desc.pre {
        (numstr, desc.pre - len)
    } else if len > desc.pre {
        (overflow_fill(desc.pre, desc.post), 0)
    } else {
        (numstr, 0)
    };
    (numstr, pad, sign)
}

/// `int4_to_char`'s preparation of the number string.
fn int4_numstr(v: i32, desc: &mut NumDesc) -> Result<(Vec<u8>, i64, u8), ToCharError> {
    if desc.has(F_ROMAN) {
        return Ok((int_to_roman(i64::from(v)).into_bytes(), 0, 0));
    }
    if desc.has(F_EEEE) {
        let mut s = printf_e_plus(f64::from(v), desc.post).into_bytes();
        if s.first() == Some(&b'+') {
            s[0] = b' ';
        }
        return Ok((s, 0, 0));
    }
    let mut value = i64::from(v);
    if desc.has(F_MULTI) {
        let out_of_range = || error(NUMERIC_OUT_OF_RANGE, "integer out of range");
        let multi = 10f64.powf(desc.multi as f64).round_ties_even();
        if !(multi >= f64::from(i32::MIN) && multi < -f64::from(i32::MIN)) {
            return Err(out_of_range());
        }
        value = i32::try_from(value * multi as i64)
            .map_err(|_| out_of_range())?
            .into();
        desc.pre += desc.multi;
    }
    Ok(int_digits(value, desc))
}

/// `int8_to_char`'s preparation of the number string.
fn int8_numstr(v: i64, desc: &mut NumDesc) -> Result<(Vec<u8>, i64, u8), ToCharError> {
    if desc.has(F_ROMAN) {
        let v4 =
            i32::try_from(v).map_err(|_| error(NUMERIC_OUT_OF_RANGE, "integer out of range"))?;
        return Ok((int_to_roman(i64::from(v4)).into_bytes(), 0, 0));
    }
    if desc.has(F_EEEE) {
        return Ok((eeee_from_dec(&Dec::new(i128::from(v), 0), desc.post), 0, 0));
    }
    let mut value = v;
    if desc.has(F_MULTI) {
        let out_of_range = || error(NUMERIC_OUT_OF_RANGE, "bigint out of range");
        let multi = 10f64.powf(desc.multi as f64).round_ties_even();
        // FLOAT8_FITS_IN_INT64
        if !(multi >= i64::MIN as f64 && multi < -(i64::MIN as f64)) {
            return Err(out_of_range());
        }
        value = value.checked_mul(multi as i64).ok_or_else(out_of_range)?;
        desc.pre += desc.multi;
    }
    Ok(int_digits(value, desc))
}

/// A numeric's `EEEE` string with a blank standing in for '+'.
fn eeee_from_dec(d: &Dec, post: i64) -> Vec<u8> {
    let s = d.to_sci(post);
    if s.starts_with('-') {
        s.into_bytes()
    } else {
        let mut v = vec![b' '];
        v.extend_from_slice(s.as_bytes());
        v
    }
}

/// `numeric_to_char`'s preparation of the number string.
fn numeric_numstr(value: Dec, desc: &mut NumDesc) -> Result<(Vec<u8>, i64, u8), ToCharError> {
    if desc.has(F_ROMAN) {
        let mut x = value;
        x.round(0);
        return Ok((int_to_roman(x.to_i32()?).into_bytes(), 0, 0));
    }
    if desc.has(F_EEEE) {
        return Ok((eeee_from_dec(&value, desc.post), 0, 0));
    }
    let mut val = value;
    if desc.has(F_MULTI) {
        val.exp += desc.multi;
        desc.pre += desc.multi;
    }
    let scale = desc.post.min(NUMERIC_DSCALE_MAX);
    val.round(scale);
    let (sign, numstr) = split_sign(val.to_fixed(scale));
    let (numstr, pad) = pad_or_overflow(numstr, desc);
    Ok((numstr, pad, sign))
}

/// Shared tail of the float front ends once `%.0f` of |val| is known.
fn float_numstr(
    val: f64,
    int_digits_len: i64,
    max_digits: i64,
    desc: &mut NumDesc,
) -> (Vec<u8>, i64, u8) {
    if int_digits_len >= max_digits {
        desc.post = 0;
    } else if int_digits_len + desc.post > max_digits {
        desc.post = max_digits - int_digits_len;
    }
    let (sign, numstr) = split_sign(printf_f(val, desc.post));
    let (numstr, pad) = pad_or_overflow(numstr, desc);
    (numstr, pad, sign)
}

/// `float4_to_char`'s preparation of the number string.
fn float4_numstr(value: f32, desc: &mut NumDesc) -> (Vec<u8>, i64, u8) {
    if desc.has(F_ROMAN) {
        return (
            int_to_roman(rint_to_int(f64::from(value))).into_bytes(),
            0,
            0,
        );
    }
    if desc.has(F_EEEE) {
        if !value.is_finite() {
            return (eeee_special_fill(desc.pre, desc.post), 0, 0);
        }
        let mut s = printf_e_plus(f64::from(value), desc.post).into_bytes();
        if s.first() == Some(&b'+') {
            s[0] = b' ';
        }
        return (s, 0, 0);
    }
    let mut val = value;
    if desc.has(F_MULTI) {
        let multi = 10f64.powf(desc.multi as f64) as f32;
        val = value * multi;
        desc.pre += desc.multi;
    }
    let len = printf_f(f64::from(val).abs(), 0).len() as i64;
    float_numstr(f64::from(val), len, 6, desc)
}

/// `float8_to_char`'s preparation of the number string.
fn float8_numstr(value: f64, desc: &mut NumDesc) -> (Vec<u8>, i64, u8) {
    if desc.has(F_ROMAN) {
        return (int_to_roman(rint_to_int(value)).into_bytes(), 0, 0);
    }
    if desc.has(F_EEEE) {
        if !value.is_finite() {
            return (eeee_special_fill(desc.pre, desc.post), 0, 0);
        }
        let mut s = printf_e_plus(value, desc.post).into_bytes();
        if s.first() == Some(&b'+') {
            s[0] = b' ';
        }
        return (s, 0, 0);
    }
    let mut val = value;
    if desc.has(F_MULTI) {
        val = value * 10f64.powf(desc.multi as f64);
        desc.pre += desc.multi;
    }
    let len = printf_f(val.abs(), 0).len() as i64;
    float_numstr(val, len, 15, desc)
}

// ---------------------------------------------------------------------------
// Date/time formatting (DCH)
// ---------------------------------------------------------------------------

/// Letter case of a name keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// `MONTH`
    Upper,
    /// `Month`
    Cap,
    /// `month`
    Lower,
}

/// Date/time format keywords (`DCH_poz`, with case variants folded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dch {
    /// AD/BC markers.
    AdBc {
        /// Spelled with periods (`A.D.`).
        dots: bool,
        /// Upper case.
        upper: bool,
    },
    /// AM/PM markers.
    AmPm {
        /// Spelled with periods (`A.D.`).
        dots: bool,
        /// Upper case.
        upper: bool,
    },
    /// `CC` century
    Cc,
    /// `DAY`/`Day`/`day`
    Day(Case),
    /// `DDD` day of year
    Ddd,
    /// `DD` day of month
    Dd,
    /// `DY`/`Dy`/`dy`
    Dy(Case),
    /// `D` day of week, Sunday = 1
    D,
    /// FF1..FF6
    Ff(u8),
    /// `FX` (no output)
    Fx,
    /// `HH24`
    Hh24,
    /// `HH12`
    Hh12,
    /// `HH`
    Hh,
    /// `IDDD` ISO day of year
    Iddd,
    /// `ID` ISO day of week
    Id,
    /// `IW` ISO week
    Iw,
    /// `IYYY`
    Iyyy,
    /// `IYY`
    Iyy,
    /// `IY`
    Iy,
    /// `I`
    I,
    /// `J` Julian day
    J,
    /// `MI` minute
    Mi,
    /// `MM` month
    Mm,
    /// `MONTH`/`Month`/`month`
    Month(Case),
    /// `MON`/`Mon`/`mon`
    Mon(Case),
    /// `MS` milliseconds
    Ms,
    /// `OF` UTC offset
    Of,
    /// `Q` quarter
    Q,
    /// `RM`/`rm` roman month
    Rm {
        /// Upper case.
        upper: bool,
    },
    /// `SSSS`/`SSSSS` seconds past midnight
    Ssss,
    /// `SS`
    Ss,
    /// `TZH`
    Tzh,
    /// `TZM`
    Tzm,
    /// `TZ`/`tz` zone abbreviation
    Tz {
        /// Upper case.
        upper: bool,
    },
    /// `US` microseconds
    Us,
    /// `WW` week of year
    Ww,
    /// `W` week of month
    W,
    /// `Y,YYY`
    YComma,
    /// `YYYY`
    Yyyy,
    /// `YYY`
    Yyy,
    /// `YY`
    Yy,
    /// `Y`
    Y,
}

/// Date/time keywords in PostgreSQL's table order (`DCH_keywords`).
const DCH_KEYWORDS: &[(&str, Dch)] = &[
    (
        "A.D.",
        Dch::AdBc {
            dots: true,
            upper: true,
        },
    ),
    (
        "A.M.",
        Dch::AmPm {
            dots: true,
            upper: true,
        },
    ),
    (
        "AD",
        Dch::AdBc {
            dots: false,
            upper: true,
        },
    ),
    (
        "AM",
        Dch::AmPm {
            dots: false,
            upper: true,
        },
    ),
    (
        "B.C.",
        Dch::AdBc {
            dots: true,
            upper: true,
        },
    ),
    (
        "BC",
        Dch::AdBc {
            dots: false,
            upper: true,
        },
    ),
    ("CC", Dch::Cc),
    ("DAY", Dch::Day(Case::Upper)),
    ("DDD", Dch::Ddd),
    ("DD", Dch::Dd),
    ("DY", Dch::Dy(Case::Upper)),
    ("Day", Dch::Day(Case::Cap)),
    ("Dy", Dch::Dy(Case::Cap)),
    ("D", Dch::D),
    ("FF1", Dch::Ff(1)),
    ("FF2", Dch::Ff(2)),
    ("FF3", Dch::Ff(3)),
    ("FF4", Dch::Ff(4)),
    ("FF5", Dch::Ff(5)),
    ("FF6", Dch::Ff(6)),
    ("FX", Dch::Fx),
    ("HH24", Dch::Hh24),
    ("HH12", Dch::Hh12),
    ("HH", Dch::Hh),
    ("IDDD", Dch::Iddd),
    ("ID", Dch::Id),
    ("IW", Dch::Iw),
    ("IYYY", Dch::Iyyy),
    ("IYY", Dch::Iyy),
    ("IY", Dch::Iy),
    ("I", Dch::I),
    ("J", Dch::J),
    ("MI", Dch::Mi),
    ("MM", Dch::Mm),
    ("MONTH", Dch::Month(Case::Upper)),
    ("MON", Dch::Mon(Case::Upper)),
    ("MS", Dch::Ms),
    ("Month", Dch::Month(Case::Cap)),
    ("Mon", Dch::Mon(Case::Cap)),
    ("OF", Dch::Of),
    (
        "P.M.",
        Dch::AmPm {
            dots: true,
            upper: true,
        },
    ),
    (
        "PM",
        Dch::AmPm {
            dots: false,
            upper: true,
        },
    ),
    ("Q", Dch::Q),
    ("RM", Dch::Rm { upper: true }),
    ("SSSSS", Dch::Ssss),
    ("SSSS", Dch::Ssss),
    ("SS", Dch::Ss),
    ("TZH", Dch::Tzh),
    ("TZM", Dch::Tzm),
    ("TZ", Dch::Tz { upper: true }),
    ("US", Dch::Us),
    ("WW", Dch::Ww),
    ("W", Dch::W),
    ("Y,YYY", Dch::YComma),
    ("YYYY", Dch::Yyyy),
    ("YYY", Dch::Yyy),
    ("YY", Dch::Yy),
    ("Y", Dch::Y),
    (
        "a.d.",
        Dch::AdBc {
            dots: true,
            upper: false,
        },
    ),
    (
        "a.m.",
        Dch::AmPm {
            dots: true,
            upper: false,
        },
    ),
    (
        "ad",
        Dch::AdBc {
            dots: false,
            upper: false,
        },
    ),
    (
        "am",
        Dch::AmPm {
            dots: false,
            upper: false,
        },
    ),
    (
        "b.c.",
        Dch::AdBc {
            dots: true,
            upper: false,
        },
    ),
    (
        "bc",
        Dch::AdBc {
            dots: false,
            upper: false,
        },
    ),
    ("cc", Dch::Cc),
    ("day", Dch::Day(Case::Lower)),
    ("ddd", Dch::Ddd),
    ("dd", Dch::Dd),
    ("dy", Dch::Dy(Case::Lower)),
    ("d", Dch::D),
    ("ff1", Dch::Ff(1)),
    ("ff2", Dch::Ff(2)),
    ("ff3", Dch::Ff(3)),
    ("ff4", Dch::Ff(4)),
    ("ff5", Dch::Ff(5)),
    ("ff6", Dch::Ff(6)),
    ("fx", Dch::Fx),
    ("hh24", Dch::Hh24),
    ("hh12", Dch::Hh12),
    ("hh", Dch::Hh),
    ("iddd", Dch::Iddd),
    ("id", Dch::Id),
    ("iw", Dch::Iw),
    ("iyyy", Dch::Iyyy),
    ("iyy", Dch::Iyy),
    ("iy", Dch::Iy),
    ("i", Dch::I),
    ("j", Dch::J),
    ("mi", Dch::Mi),
    ("mm", Dch::Mm),
    ("month", Dch::Month(Case::Lower)),
    ("mon", Dch::Mon(Case::Lower)),
    ("ms", Dch::Ms),
    ("of", Dch::Of),
    (
        "p.m.",
        Dch::AmPm {
            dots: true,
            upper: false,
        },
    ),
    (
        "pm",
        Dch::AmPm {
            dots: false,
            upper: false,
        },
    ),
    ("q", Dch::Q),
    ("rm", Dch::Rm { upper: false }),
    ("sssss", Dch::Ssss),
    ("ssss", Dch::Ssss),
    ("ss", Dch::Ss),
    ("tzh", Dch::Tzh),
    ("tzm", Dch::Tzm),
    ("tz", Dch::Tz { upper: false }),
    ("us", Dch::Us),
    ("ww", Dch::Ww),
    ("w", Dch::W),
    ("y,yyy", Dch::YComma),
    ("yyyy", Dch::Yyyy),
    ("yyy", Dch::Yyy),
    ("yy", Dch::Yy),
    ("y", Dch::Y),
];

/// English month names (C locale).
const MONTHS_FULL: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
/// English month abbreviations (C locale).
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// English day names, Sunday first (C locale).
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// English day abbreviations, Sunday first (C locale).
const DAYS_SHORT: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
/// Upper-case roman month numerals, December first.
const RM_MONTHS_UPPER: [&str; 12] = [
    "XII", "XI", "X", "IX", "VIII", "VII", "VI", "V", "IV", "III", "II", "I",
];
/// Lower-case roman month numerals, December first.
const RM_MONTHS_LOWER: [&str; 12] = [
    "xii", "xi", "x", "ix", "viii", "vii", "vi", "v", "iv", "iii", "ii", "i",
];

/// Julian day number of a proleptic Gregorian date (`date2j`).
fn date2j(y: i64, m: i64, d: i64) -> i64 {
    let (m, y) = if m > 2 {
        (m + 1, y + 4800)
    } else {
        (m + 13, y + 4799)
    };
    let century = y / 100;
    let mut julian = y * 365 - 32167;
    julian += y / 4 - century + century / 4;
    julian += 7834 * m / 256 + d;
    julian
}

/// Day of week, Sunday = 0 (`j2day`).
fn j2day(date: i64) -> i64 {
    (date + 1).rem_euclid(7)
}

/// Julian day of the first day of ISO week `week` of ISO year `year` (`isoweek2j`).
fn isoweek2j(year: i64, week: i64) -> i64 {
    let day4 = date2j(year, 1, 4);
    let day0 = j2day(day4 - 1);
    (week - 1) * 7 + (day4 - day0)
}

/// ISO week number (`date2isoweek`).
fn date2isoweek(year: i64, mon: i64, mday: i64) -> i64 {
    let dayn = date2j(year, mon, mday);
    let mut day4 = date2j(year, 1, 4);
    let mut day0 = j2day(day4 - 1);
    if dayn < day4 - day0 {
        day4 = date2j(year - 1, 1, 4);
        day0 = j2day(day4 - 1);
    }
    let mut result = (dayn - (day4 - day0)) / 7 + 1;
    if result >= 52 {
        day4 = date2j(year + 1, 1, 4);
        day0 = j2day(day4 - 1);
        if dayn >= day4 - day0 {
            result = (dayn - (day4 - day0)) / 7 + 1;
        }
    }
    result
}

/// ISO 8601 week-numbering year (`date2isoyear`).
fn date2isoyear(year: i64, mon: i64, mday: i64) -> i64 {
    let mut year = year;
    let dayn = date2j(year, mon, mday);
    let mut day4 = date2j(year, 1, 4);
    let mut day0 = j2day(day4 - 1);
    if dayn < day4 - day0 {
        day4 = date2j(year - 1, 1, 4);
        day0 = j2day(day4 - 1);
        year -= 1;
    }
    let result = (dayn - (day4 - day0)) / 7 + 1;
    if result >= 52 {
        day4 = date2j(year + 1, 1, 4);
        day0 = j2day(day4 - 1);
        if dayn >= day4 - day0 {
            year += 1;
        }
    }
    year
}

/// Day of the ISO year (`date2isoyearday`).
fn date2isoyearday(year: i64, mon: i64, mday: i64) -> i64 {
    date2j(year, mon, mday) - isoweek2j(date2isoyear(year, mon, mday), 1) + 1
}

/// `ADJUST_YEAR` for timestamps: 1 BC is year 0 internally, shown as 1.
fn adjust_year(year: i64) -> i64 {
    if year <= 0 {
        -(year - 1)
    } else {
        year
    }
}

/// The broken-down time `DCH_to_char` works from (`fmt_tm` plus extras).
struct Tm {
    /// Astronomical year (0 = 1 BC).
    year: i64,
    /// Month 1..=12.
    mon: i64,
    /// Day of month.
    mday: i64,
    /// Hour 0..=23.
    hour: i64,
    /// Minute.
    min: i64,
    /// Second.
    sec: i64,
    /// Microseconds.
    fsec: i64,
    /// Day of week, Sunday = 0.
    wday: i64,
    /// Day of year, 1-based.
    yday: i64,
    /// Seconds east of UTC.
    gmtoff: i64,
    /// Zone abbreviation (timestamptz only).
    tzn: Option<String>,
}

/// `%0*d`: `v` zero-padded to `width` (sign included in the width).
fn zpad(v: i64, width: usize) -> String {
    format!("{v:0width$}")
}

/// Applies `Case` to an English name.
fn case_name(name: &str, case: Case) -> String {
    match case {
        Case::Upper => name.to_ascii_uppercase(),
        Case::Cap => name.to_string(),
        Case::Lower => name.to_ascii_lowercase(),
    }
}

/// Formats a timestamp's local wall-clock time with a `to_char` date/time
/// format picture.
///
/// `zone` is `Some((utc_offset_seconds, abbreviation))` for timestamptz, the
/// offset counted east of UTC (e.g. `3600` for CET); `None` for timestamp and
/// date.  Sub-microsecond digits are dropped.  An empty format gives an empty
/// string (PostgreSQL returns NULL there).
pub fn datetime(
    t: &NaiveDateTime,
    zone: Option<(i32, &str)>,
    format: &str,
) -> Result<String, ToCharError> {
    if format.is_empty() {
        return Ok(String::new());
    }
    let out_of_range = || error(DATETIME_OUT_OF_RANGE, "timestamp out of range");
    // chrono shows a leap second as nanosecond >= 1e9; PostgreSQL has none.
    let mut t = *t;
    let mut nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        nanos -= 1_000_000_000;
        t = t
            .with_nanosecond(nanos)
            .and_then(|x| x.checked_add_signed(chrono::TimeDelta::seconds(1)))
            .ok_or_else(out_of_range)?;
    }
    let (year, mon, mday) = (
        i64::from(t.year()),
        i64::from(t.month()),
        i64::from(t.day()),
    );
    let thisdate = date2j(year, mon, mday);
    if thisdate < 0 {
        return Err(out_of_range());
    }
    let tm = Tm {
        year,
        mon,
        mday,
        hour: i64::from(t.hour()),
        min: i64::from(t.minute()),
        sec: i64::from(t.second()),
        fsec: i64::from(nanos / 1000),
        wday: (thisdate + 1) % 7,
        yday: thisdate - date2j(year, 1, 1) + 1,
        gmtoff: zone.map_or(0, |(off, _)| i64::from(off)),
        tzn: zone.map(|(_, abbrev)| abbrev.to_string()),
    };
    let nodes = parse_format(format, DCH_KEYWORDS, true, |_| Ok(()))?;
    dch_to_char(&nodes, &tm)
}

/// Writes each node of a date/time picture (`DCH_to_char`).
fn dch_to_char(nodes: &[Node<Dch>], tm: &Tm) -> Result<String, ToCharError> {
    let mut out = String::new();
    for node in nodes {
        let (key, suffix) = match node {
            Node::Char(c) => {
                out.push(*c);
                continue;
            }
            Node::Action(k, s) => (*k, *s),
        };
        let fm = suffix & S_FM != 0;
        let tmode = suffix & S_TM != 0;
        let th = suffix & (S_TH_UPPER | S_TH_LOWER) != 0;
        let th_upper = suffix & S_TH_UPPER != 0;
        // Width of a zero-padded field: 0 in fill mode, one more if negative.
        let w = |width: usize, v: i64| -> usize {
            if fm {
                0
            } else if v >= 0 {
                width
            } else {
                width + 1
            }
        };
        // Left-justified name padded to 9 unless FM/TM.
        let name9 = |s: String| -> String {
            if fm || tmode {
                s
            } else {
                format!("{s:<9}")
            }
        };
        let month_idx = usize::try_from(tm.mon - 1).unwrap_or(0).min(11);
        let wday_idx = usize::try_from(tm.wday).unwrap_or(0).min(6);
        let isoyear = || adjust_year(date2isoyear(tm.year, tm.mon, tm.mday));
        let numeric: Option<String> = match key {
            Dch::AmPm { dots, upper } => {
                let pm = tm.hour % 24 >= 12;
                out.push_str(match (dots, upper, pm) {
                    (true, true, true) => "P.M.",
                    (true, true, false) => "A.M.",
                    (false, true, true) => "PM",
                    (false, true, false) => "AM",
                    (true, false, true) => "p.m.",
                    (true, false, false) => "a.m.",
                    (false, false, true) => "pm",
                    (false, false, false) => "am",
                });
                None
            }
            Dch::AdBc { dots, upper } => {
                let bc = tm.year <= 0;
                out.push_str(match (dots, upper, bc) {
                    (true, true, true) => "B.C.",
                    (true, true, false) => "A.D.",
                    (false, true, true) => "BC",
                    (false, true, false) => "AD",
                    (true, false, true) => "b.c.",
                    (true, false, false) => "a.d.",
                    (false, false, true) => "bc",
                    (false, false, false) => "ad",
                });
                None
            }
            Dch::Hh | Dch::Hh12 => {
                let h = if tm.hour % 12 == 0 { 12 } else { tm.hour % 12 };
                Some(zpad(h, w(2, tm.hour)))
            }
            Dch::Hh24 => Some(zpad(tm.hour, w(2, tm.hour))),
            Dch::Mi => Some(zpad(tm.min, w(2, tm.min))),
            Dch::Ss => Some(zpad(tm.sec, w(2, tm.sec))),
            Dch::Ff(n) => {
                let (div, width) = match n {
                    1 => (100_000, 1),
                    2 => (10_000, 2),
                    3 => (1_000, 3),
                    4 => (100, 4),
                    5 => (10, 5),
                    _ => (1, 6),
                };
                Some(zpad(tm.fsec / div, width))
            }
            Dch::Ms => Some(zpad(tm.fsec / 1000, 3)),
            Dch::Us => Some(zpad(tm.fsec, 6)),
            Dch::Ssss => Some((tm.hour * 3600 + tm.min * 60 + tm.sec).to_string()),
            Dch::Tz { upper } => {
                if let Some(z) = &tm.tzn {
                    if upper {
                        out.push_str(z);
                    } else {
                        out.push_str(&z.to_ascii_lowercase());
                    }
                }
                None
            }
            Dch::Tzh => {
                let sign = if tm.gmtoff >= 0 { '+' } else { '-' };
                out.push_str(&format!("{sign}{:02}", tm.gmtoff.abs() / 3600));
                None
            }
            Dch::Tzm => {
                out.push_str(&format!("{:02}", (tm.gmtoff.abs() % 3600) / 60));
                None
            }
            Dch::Of => {
                let sign = if tm.gmtoff >= 0 { '+' } else { '-' };
                let width = if fm { 0 } else { 2 };
                out.push(sign);
                out.push_str(&zpad(tm.gmtoff.abs() / 3600, width));
                if tm.gmtoff.abs() % 3600 != 0 {
                    out.push_str(&format!(":{:02}", (tm.gmtoff.abs() % 3600) / 60));
                }
                None
            }
            Dch::Month(case) => {
                out.push_str(&name9(case_name(MONTHS_FULL[month_idx], case)));
                None
            }
            Dch::Mon(case) => {
                out.push_str(&case_name(MONTHS[month_idx], case));
                None
            }
            Dch::Mm => Some(zpad(tm.mon, w(2, tm.mon))),
            Dch::Day(case) => {
                out.push_str(&name9(case_name(DAYS[wday_idx], case)));
                None
            }
            Dch::Dy(case) => {
                out.push_str(&case_name(DAYS_SHORT[wday_idx], case));
                None
            }
            Dch::Ddd => Some(zpad(tm.yday, if fm { 0 } else { 3 })),
            Dch::Iddd => Some(zpad(
                date2isoyearday(tm.year, tm.mon, tm.mday),
                if fm { 0 } else { 3 },
            )),
            Dch::Dd => Some(zpad(tm.mday, if fm { 0 } else { 2 })),
            Dch::D => Some((tm.wday + 1).to_string()),
            Dch::Id => Some((if tm.wday == 0 { 7 } else { tm.wday }).to_string()),
            Dch::Ww => Some(zpad((tm.yday - 1) / 7 + 1, if fm { 0 } else { 2 })),
            Dch::Iw => Some(zpad(
                date2isoweek(tm.year, tm.mon, tm.mday),
                if fm { 0 } else { 2 },
            )),
            Dch::Q => Some(((tm.mon - 1) / 3 + 1).to_string()),
            Dch::Cc => {
                let i = if tm.year > 0 {
                    (tm.year - 1) / 100 + 1
                } else {
                    tm.year / 100 - 1
                };
                if (-99..=99).contains(&i) {
                    Some(zpad(i, w(2, i)))
                } else {
                    Some(i.to_string())
                }
            }
            Dch::YComma => {
                let y = adjust_year(tm.year);
                let i = y / 1000;
                Some(format!("{},{:03}", i, y - i * 1000))
            }
            Dch::Yyyy => {
                let y = adjust_year(tm.year);
                Some(zpad(y, w(4, y)))
            }
            Dch::Iyyy => {
                let y = adjust_year(tm.year);
                Some(zpad(isoyear(), w(4, y)))
            }
            Dch::Yyy => {
                let y = adjust_year(tm.year);
                Some(zpad(y % 1000, w(3, y)))
            }
            Dch::Iyy => {
                let y = adjust_year(tm.year);
                Some(zpad(isoyear() % 1000, w(3, y)))
            }
            Dch::Yy => {
                let y = adjust_year(tm.year);
                Some(zpad(y % 100, w(2, y)))
            }
            Dch::Iy => {
                let y = adjust_year(tm.year);
                Some(zpad(isoyear() % 100, w(2, y)))
            }
            Dch::Y => Some((adjust_year(tm.year) % 10).to_string()),
            Dch::I => Some((isoyear() % 10).to_string()),
            Dch::Rm { upper } => {
                let months = if upper {
                    &RM_MONTHS_UPPER
                } else {
                    &RM_MONTHS_LOWER
                };
                let idx = usize::try_from(12 - tm.mon).unwrap_or(0).min(11);
                let s = months[idx];
                if fm {
                    out.push_str(s);
                } else {
                    out.push_str(&format!("{s:<4}"));
                }
                None
            }
            Dch::W => Some(((tm.mday - 1) / 7 + 1).to_string()),
            Dch::J => Some(date2j(tm.year, tm.mon, tm.mday).to_string()),
            Dch::Fx => None,
        };
        if let Some(s) = numeric {
            out.push_str(&s);
            if th {
                out.push_str(get_th(&s, th_upper)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
