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
                match self.toks.get(ti + 1) {
                    // Only where the next literal can start (its first
                    // byte, either case): a few places of a path, not each.
                    Some(Tok::Lit(l)) if !l.is_empty() => {
                        let first = l.first().copied().unwrap_or(0);
                        memchr::memchr2_iter(first, first.to_ascii_uppercase(), s)
                            .any(|k| s.get(k..).is_some_and(|r| self.at(ti + 1, r, steps)))
                    }
                    _ => {
                        (0..=s.len()).any(|k| s.get(k..).is_some_and(|r| self.at(ti + 1, r, steps)))
                    }
                }
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

    /// Every split of `s` over the tokens, no shortcuts (the reference).
    fn naive(toks: &[Tok], s: &[u8]) -> bool {
        let Some((tok, rest)) = toks.split_first() else {
            return s.is_empty();
        };
        let lit = |l: &[u8]| s.len() >= l.len() && s[..l.len()].eq_ignore_ascii_case(l);
        match tok {
            Tok::Lit(l) => lit(l) && naive(rest, &s[l.len()..]),
            Tok::Digits => (1..=s.len())
                .take_while(|&k| s[k - 1].is_ascii_digit())
                .any(|k| naive(rest, &s[k..])),
            Tok::Alt(alts) => alts.iter().any(|a| lit(a) && naive(rest, &s[a.len()..])),
            Tok::Star => (0..=s.len()).any(|k| naive(rest, &s[k..])),
        }
    }

    #[test]
    fn star_tries_only_where_the_next_literal_starts_and_finds_the_same() {
        // Random patterns and strings over a small alphabet (both cases),
        // against trying every split: same answer each time.
        let mut rng = crate::testrng::XorShift64(0x00c0_ffee_1234_5678);
        let pat_bytes = b"aAb/.1*#";
        let str_bytes = b"aAbB/.12";
        let mut matched = 0;
        for _ in 0..50_000 {
            let plen = 1 + (rng.next() % 8) as usize;
            let mut p: String = (0..plen)
                .map(|_| pat_bytes[(rng.next() % pat_bytes.len() as u64) as usize] as char)
                .collect();
            if rng.next() % 4 == 0 {
                p.push_str("{a/,b.}");
            }
            let slen = (rng.next() % 12) as usize;
            let st: Vec<u8> = (0..slen)
                .map(|_| str_bytes[(rng.next() % str_bytes.len() as u64) as usize])
                .collect();
            let g = Glob::new(&p).unwrap();
            let want = naive(&g.toks, &st);
            assert_eq!(
                g.matches(&st),
                want,
                "{p:?} on {:?}",
                String::from_utf8_lossy(&st)
            );
            matched += usize::from(want);
        }
        assert!(
            matched > 1_000,
            "the cases match too rarely to test: {matched}"
        );
    }

    #[test]
    fn crafted_input_is_bounded() {
        let g = Glob::new("*a*a*a*a*a*a*a*a*b").unwrap();
        let s = vec![b'a'; 2000];
        assert!(!g.matches(&s));
    }
}
