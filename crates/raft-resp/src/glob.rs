//! Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE): `*`, `?`,
//! `[abc]`, `[^a]`, `[a-z]`, and `\` to quote the next character.

/// Whether `s` matches `p`.
pub fn matches(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| matches(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && matches(rest, &s[1..]),
        Some((b'[', rest)) => match (class(rest, s.first().copied()), s.split_first()) {
            (Some((true, after)), Some((_, tail))) => matches(after, tail),
            _ => false,
        },
        Some((b'\\', rest)) if !rest.is_empty() => {
            s.first() == Some(&rest[0]) && matches(&rest[1..], &s[1..])
        }
        Some((c, rest)) => s.first() == Some(c) && matches(rest, &s[1..]),
    }
}

/// A `[...]` class (after its `[`) against `c`: whether it matched, and
/// the pattern after the class; `None` when there is no character.
fn class(p: &[u8], c: Option<u8>) -> Option<(bool, &[u8])> {
    let c = c?;
    let (negate, mut p) = match p.first() {
        Some(b'^') => (true, &p[1..]),
        _ => (false, p),
    };
    let mut hit = false;
    loop {
        match p {
            [] => return Some((hit != negate, p)),
            [b']', rest @ ..] => return Some((hit != negate, rest)),
            [b'\\', x, rest @ ..] => {
                hit |= *x == c;
                p = rest;
            }
            [a, b'-', b, rest @ ..] if *b != b']' => {
                let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                hit |= (lo..=hi).contains(&c);
                p = rest;
            }
            [x, rest @ ..] => {
                hit |= *x == c;
                p = rest;
            }
        }
    }
}

/// The literal text every match starts with (to scan from).
pub fn prefix(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' | b'?' | b'[' => break,
            b'\\' if i + 1 < p.len() => {
                out.push(p[i + 1]);
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_examples() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes());
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("*", "") && m("user:*", "user:1") && !m("user:*", "use"));
        assert_eq!(prefix(b"user:\\*x*"), b"user:*x");
    }
}
