//! Java properties files (`java.util.Properties` syntax), as Kafka's clients read their
//! `--command-config`: `#`/`!` comments, `=`/`:`/blank separators, backslash continuations and
//! `\uXXXX` escapes.

use std::collections::BTreeMap;

/// Parses a Java properties file: a later key overrides an earlier one, as in
/// `java.util.Properties`. The only error is a malformed `\uXXXX` escape.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line = trim_blank_start(line);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // A line ending in an odd number of backslashes continues on the next one, whose
        // leading blanks are dropped.
        let mut logical = line.to_string();
        while ends_in_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(trim_blank_start(next)),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|e| format!("line {}: {e}", index + 1))?;
        let value = unescape(value).map_err(|e| format!("line {}: {e}", index + 1))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn trim_blank_start(line: &str) -> &str {
    line.trim_start_matches(is_blank)
}

fn ends_in_odd_backslashes(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The key ends at the first unescaped `=`, `:` or blank; blanks and one `=` or `:` follow it.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            end = i;
            break;
        }
    }
    let key = &line[..end];
    let mut rest = trim_blank_start(&line[end..]);
    if let Some(after) = rest.strip_prefix(['=', ':']) {
        rest = trim_blank_start(after);
    }
    (key, rest)
}

/// Java's escapes: `\t \n \r \f`, `\uXXXX`, and `\c` for any other `c`.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\uxxxx escape \\u{hex}"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> BTreeMap<String, String> {
        parse_properties(text).unwrap()
    }

    #[test]
    fn java_properties_syntax() {
        let p = props(
            "# comment\n  ! another\n\
             a=1\n\
             b : 2\n\
             c 3\n\
             d\n\
             e = spaced value  \n\
             f=line one \\\n     and two\n\
             g=back\\\\slash\n\
             h=\\u0041\\t\\=x\n\
             key\\ with\\ blanks = v\n\
             a=override\n\
             \t  indented=yes\r\n",
        );
        let expected = [
            ("a", "override"),
            ("b", "2"),
            ("c", "3"),
            ("d", ""),
            ("e", "spaced value  "),
            ("f", "line one and two"),
            ("g", "back\\slash"),
            ("h", "A\t=x"),
            ("indented", "yes"),
            ("key with blanks", "v"),
        ];
        let got: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);
        let err = parse_properties("ok=1\nbad=\\u12G4\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("\\u12G4"), "{err}");
        // A comment line ending in a backslash does not swallow the next line.
        assert_eq!(props("# c \\\nx=1")["x"], "1");
    }
}
