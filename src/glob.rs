//! The small glob language of content signatures (`[[http_path]]`,
//! `[[user_agent]]` in signatures/*.toml): `*` any run of bytes (also
//! empty, also across `/`), `#` one or more ASCII digits, `{a,b,c}` one of
//! the literal alternatives, everything else literal; ASCII case-insensitive.
//! Compiled once by the matcher; [`Glob::matches`] is bounded by
//! [`MAX_GLOB_STEPS`] and never panics. Parsed from signature files, so a
//! bad pattern is an error naming what is wrong.

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

/// Longest glob pattern accepted.
pub const MAX_GLOB_LEN: usize = 512;
/// Matching steps per call before giving up (no match): keeps crafted
/// inputs from costing more than a few microseconds.
pub const MAX_GLOB_STEPS: usize = 20_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Lit(Vec<u8>),
    Star,
    Digits,
    Alt(Vec<Vec<u8>>),
}

/// A compiled glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
    /// Literal bytes every match starts with (a cheap prefilter).
    prefix: Vec<u8>,
}

impl Glob {
    /// Compile `p`; the error says what is wrong.
    pub fn new(p: &str) -> Result<Glob, String> {
        if p.is_empty() {
            return Err("empty pattern".into());
        }
        if p.len() > MAX_GLOB_LEN {
            return Err(format!("pattern longer than {MAX_GLOB_LEN} bytes"));
        }
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = Vec::new();
        let mut bytes = p.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'*' | b'#' | b'{' => {
                    if !lit.is_empty() {
                        toks.push(Tok::Lit(std::mem::take(&mut lit)));
                    }
                    match b {
                        b'*' => {
                            if toks.last() != Some(&Tok::Star) {
                                toks.push(Tok::Star);
                            }
                        }
                        b'#' => toks.push(Tok::Digits),
                        _ => {
                            let mut alts = vec![Vec::new()];
                            let mut closed = false;
                            for c in bytes.by_ref() {
                                match c {
                                    b'}' => {
                                        closed = true;
                                        break;
                                    }
                                    b',' => alts.push(Vec::new()),
                                    b'*' | b'#' | b'{' => {
                                        return Err("only literals inside {...}".into())
                                    }
                                    _ => {
                                        if let Some(a) = alts.last_mut() {
                                            a.push(c.to_ascii_lowercase());
                                        }
                                    }
                                }
                            }
                            if !closed {
                                return Err("'{' is never closed".into());
                            }
                            toks.push(Tok::Alt(alts));
                        }
                    }
                }
                b'}' => return Err("'}' without '{'".into()),
                _ => lit.push(b.to_ascii_lowercase()),
            }
        }
        if !lit.is_empty() {
            toks.push(Tok::Lit(lit));
        }
        let prefix = match toks.first() {
            Some(Tok::Lit(l)) => l.clone(),
            _ => Vec::new(),
        };
        Ok(Glob { toks, prefix })
    }

    /// Does the whole of `s` match (ASCII case-insensitive)?
    pub fn matches(&self, s: &[u8]) -> bool {
        if s.len() < self.prefix.len()
            || !s
                .get(..self.prefix.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.prefix))
        {
            return false;
        }
        let mut steps = 0usize;
        self.at(0, s, &mut steps)
    }

    fn at(&self, ti: usize, s: &[u8], steps: &mut usize) -> bool {
        *steps += 1;
        if *steps > MAX_GLOB_STEPS {
            return false;
        }
        let Some(tok) = self.toks.get(ti) else {
            return s.is_empty();
        };
        match tok {
            Tok::Lit(l) => {
                s.get(..l.len()).is_some_and(|h| h.eq_ignore_ascii_case(l))
                    && s.get(l.len()..).is_some_and(|r| self.at(ti + 1, r, steps))
            }
            Tok::Digits => {
                let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
                // Greedy first, then shorter runs (at least one digit).
                (1..=n)
                    .rev()
                    .any(|k| s.get(k..).is_some_and(|r| self.at(ti + 1, r, steps)))
            }
            Tok::Alt(alts) => alts.iter().any(|a| {
                s.get(..a.len()).is_some_and(|h| h.eq_ignore_ascii_case(a))
                    && s.get(a.len()..).is_some_and(|r| self.at(ti + 1, r, steps))
            }),
            Tok::Star => {
                if ti + 1 == self.toks.len() {
                    return true;
                }
                (0..=s.len()).any(|k| s.get(k..).is_some_and(|r| self.at(ti + 1, r, steps)))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stars_digits_alternatives() {
        let g = Glob::new("*/index/u#g.xml.{dif,klz}").unwrap();
        assert!(g.matches(b"/index/u0607g.xml.dif"));
        assert!(g.matches(b"/mirror/INDEX/U1313G.XML.KLZ"));
        assert!(!g.matches(b"/index/ug.xml.dif"));
        assert!(!g.matches(b"/index/uabcg.xml.dif"));
        assert!(!g.matches(b"/index/u0607g.xml"));
        let g = Glob::new("/updaters/*").unwrap();
        assert!(g.matches(b"/updaters/x") && !g.matches(b"/blog/updaters/x"));
        assert_eq!(Glob::new("{a").unwrap_err(), "'{' is never closed");
        assert!(Glob::new("a}").is_err() && Glob::new("{*}").is_err() && Glob::new("").is_err());
    }

    #[test]
    fn crafted_input_is_bounded() {
        let g = Glob::new("*a*a*a*a*a*a*a*a*b").unwrap();
        let s = vec![b'a'; 2000];
        assert!(!g.matches(&s));
    }
}
