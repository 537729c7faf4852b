//! Kafka's `sasl.jaas.config` value: one JAAS login module entry,
//!
//! ```text
//! <login module class> <flag> (<option> = <value>)* ;
//! ```
//!
//! tokenised as Kafka's `JaasConfig` tokenises it (a `java.io.StreamTokenizer` set up so):
//! characters up to and including space separate tokens; `;` and `=` are tokens of their own;
//! `"` and `'` quote a value, in which `\` escapes as in Java (`\"`, `\\`, `\n`, `\t`, octal
//! `\101`, ...); `/` starts a comment, `/* ... */` a block comment, any other `/` a comment to
//! the end of the line, so an unquoted value cannot hold a `/`. The flag is one of `required`,
//! `requisite`, `sufficient`, `optional` in any case; the entry must end with `;`; and the value
//! must hold exactly one entry, as Kafka requires of `sasl.jaas.config`.

use std::collections::BTreeMap;
use std::fmt;

use super::SaslError;

/// The login module whose `user_<name>` options declare PLAIN users.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
/// The login module of SCRAM listeners (credentials come from the metadata log, not from it).
pub const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// One parsed `sasl.jaas.config` entry. Option values may be passwords: `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    pub flag: ControlFlag,
    /// A repeated option keeps its last value, as Kafka's map does.
    pub options: BTreeMap<String, String>,
}

/// JAAS's `LoginModuleControlFlag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlFlag {
    Required,
    Requisite,
    Sufficient,
    Optional,
}

impl ControlFlag {
    pub fn name(self) -> &'static str {
        match self {
            ControlFlag::Required => "required",
            ControlFlag::Requisite => "requisite",
            ControlFlag::Sufficient => "sufficient",
            ControlFlag::Optional => "optional",
        }
    }

    /// The flag spelt `word` in any case, as Kafka accepts it.
    pub fn from_name(word: &str) -> Option<Self> {
        [
            Self::Required,
            Self::Requisite,
            Self::Sufficient,
            Self::Optional,
        ]
        .into_iter()
        .find(|flag| flag.name().eq_ignore_ascii_case(word))
    }
}

/// Parses a `sasl.jaas.config` value; the error names the byte offset and what is wrong.
pub fn parse_jaas(value: &str) -> Result<JaasConfig, SaslError> {
    let mut lexer = Lexer { src: value, pos: 0 };
    let mut entries = Vec::new();
    while let Some((offset, token)) = lexer.next_token()? {
        let Token::Text(login_module) = token else {
            return Err(jaas_error(offset, "expected a login module class name"));
        };
        entries.push(parse_entry(&mut lexer, login_module)?);
    }
    match entries.len() {
        0 => Err(jaas_error(
            value.len(),
            "Login module not specified in JAAS config",
        )),
        1 => Ok(entries.pop().expect("one entry")),
        n => Err(jaas_error(
            0,
            &format!("JAAS config property contains {n} login modules, should be 1 module"),
        )),
    }
}

impl fmt::Debug for JaasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("JaasConfig")
            .field("login_module", &self.login_module)
            .field("flag", &self.flag)
            .field("options", &options)
            .finish()
    }
}

/// The rest of an entry after its login module name: the flag, the options, the `;`.
fn parse_entry(lexer: &mut Lexer<'_>, login_module: String) -> Result<JaasConfig, SaslError> {
    let end = lexer.src.len();
    let flag = match lexer.next_token()? {
        None => {
            return Err(jaas_error(
                end,
                "Login module control flag not specified in JAAS config",
            ))
        }
        Some((at, Token::Text(word))) => ControlFlag::from_name(&word).ok_or_else(|| {
            jaas_error(
                at,
                &format!("Invalid login module control flag '{word}' in JAAS config"),
            )
        })?,
        Some((at, _)) => return Err(jaas_error(at, "expected a login module control flag")),
    };
    let mut options = BTreeMap::new();
    loop {
        let key = match lexer.next_token()? {
            None => {
                return Err(jaas_error(
                    end,
                    "JAAS config entry not terminated by semi-colon",
                ))
            }
            Some((_, Token::Semicolon)) => break,
            Some((_, Token::Text(key))) => key,
            Some((at, Token::Equals)) => return Err(jaas_error(at, "expected an option name")),
        };
        let value = match (lexer.next_token()?, lexer.next_token()?) {
            (Some((_, Token::Equals)), Some((_, Token::Text(value)))) => value,
            _ => {
                let reason = format!("Value not specified for key '{key}' in JAAS config");
                return Err(jaas_error(lexer.pos, &reason));
            }
        };
        options.insert(key, value);
    }
    Ok(JaasConfig {
        login_module,
        flag,
        options,
    })
}

fn jaas_error(offset: usize, reason: &str) -> SaslError {
    SaslError::Jaas {
        offset,
        reason: reason.to_string(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A bare word or a quoted string, unescaped.
    Text(String),
    Semicolon,
    Equals,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    /// The next token and the byte offset it starts at; `None` at the end.
    fn next_token(&mut self) -> Result<Option<(usize, Token)>, SaslError> {
        self.skip_blanks_and_comments();
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let token = match c {
            ';' => Token::Semicolon,
            '=' => Token::Equals,
            '"' | '\'' => {
                self.pos += 1;
                return Ok(Some((start, Token::Text(self.quoted(c, start)?))));
            }
            c if is_word_char(c) => return Ok(Some((start, Token::Text(self.word())))),
            c => {
                let reason = format!("unexpected character U+{:04X}", u32::from(c));
                return Err(jaas_error(start, &reason));
            }
        };
        self.pos += 1;
        Ok(Some((start, token)))
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn skip_blanks_and_comments(&mut self) {
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start_matches(|c: char| c <= ' ');
            self.pos += rest.len() - trimmed.len();
            if let Some(block) = trimmed.strip_prefix("/*") {
                // An unclosed block comment runs to the end, as in StreamTokenizer.
                self.pos += block.find("*/").map_or(trimmed.len(), |end| 2 + end + 2);
            } else if trimmed.starts_with('/') {
                self.pos += trimmed.find(['\n', '\r']).unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    fn word(&mut self) -> String {
        let rest = &self.src[self.pos..];
        let len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        self.pos += len;
        rest[..len].to_string()
    }

    /// The body of a string opened by `quote` at `start`; `pos` is just past the quote.
    fn quoted(&mut self, quote: char, start: usize) -> Result<String, SaslError> {
        let unterminated = || jaas_error(start, "unterminated quoted value");
        let mut value = String::new();
        let mut chars = self.src[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                _ if c == quote => {
                    self.pos += i + 1;
                    return Ok(value);
                }
                '\n' | '\r' => return Err(unterminated()),
                '\\' => {
                    let (_, escaped) = chars.next().ok_or_else(unterminated)?;
                    value.push(unescape(escaped, &mut chars));
                }
                c => value.push(c),
            }
        }
        Err(unterminated())
    }
}

/// Characters of a bare word in Kafka's tokenizer: everything but blanks, the token
/// characters, quotes, the comment character and the C1 controls (U+0081..=U+009F), which it
/// leaves ordinary.
fn is_word_char(c: char) -> bool {
    c > ' ' && !matches!(c, ';' | '=' | '"' | '\'' | '/' | '\u{81}'..='\u{9f}')
}

/// Java's escapes after a `\`: control letters, up to three octal digits (three only when the
/// first is 0..=3, so the value fits a byte), and any other character as itself.
fn unescape(escaped: char, rest: &mut std::str::CharIndices<'_>) -> char {
    match escaped {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        '0'..='7' => {
            let max_digits = if escaped <= '3' { 3 } else { 2 };
            let mut code = escaped.to_digit(8).expect("an octal digit");
            for _ in 1..max_digits {
                let mut ahead = rest.clone();
                match ahead.next().and_then(|(_, c)| c.to_digit(8)) {
                    Some(digit) => {
                        code = code * 8 + digit;
                        *rest = ahead;
                    }
                    None => break,
                }
            }
            char::from_u32(code).expect("at most 0o377")
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(value: &str) -> String {
        parse_jaas(value).unwrap_err().to_string()
    }

    #[test]
    fn kafkas_plain_example() {
        let config = parse_jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"admin\" password=\"admin-secret\" \
             user_admin=\"admin-secret\" user_alice=\"alice-secret\";",
        )
        .unwrap();
        assert_eq!(config.login_module, PLAIN_LOGIN_MODULE);
        assert_eq!(config.flag, ControlFlag::Required);
        let options: Vec<(&str, &str)> = config
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            options,
            [
                ("password", "admin-secret"),
                ("user_admin", "admin-secret"),
                ("user_alice", "alice-secret"),
                ("username", "admin"),
            ]
        );
    }

    #[test]
    fn kafkas_scram_example_has_no_options() {
        let config =
            parse_jaas("org.apache.kafka.common.security.scram.ScramLoginModule required;")
                .unwrap();
        assert_eq!(config.login_module, SCRAM_LOGIN_MODULE);
        assert_eq!(config.flag, ControlFlag::Required);
        assert!(config.options.is_empty());
    }

    #[test]
    fn every_flag_in_any_case() {
        for (word, flag) in [
            ("required", ControlFlag::Required),
            ("REQUISITE", ControlFlag::Requisite),
            ("Sufficient", ControlFlag::Sufficient),
            ("optional", ControlFlag::Optional),
            ("'optional'", ControlFlag::Optional),
        ] {
            assert_eq!(
                parse_jaas(&format!("M {word};")).unwrap().flag,
                flag,
                "{word}"
            );
        }
        assert_eq!(
            error_of("M mandatory;"),
            "Invalid JAAS config at byte 2: Invalid login module control flag 'mandatory' in JAAS \
             config"
        );
    }

    #[test]
    fn quoted_values_unescape_like_java() {
        let config = parse_jaas(concat!(
            r#"M required a="say \"hi\"" b='single' c="back\\slash" d="tab\there""#,
            r#" e="\101\0619" f='x"y' g=bare;"#
        ))
        .unwrap();
        let get = |k: &str| config.options[k].as_str();
        assert_eq!(get("a"), "say \"hi\"");
        assert_eq!(get("b"), "single");
        assert_eq!(get("c"), "back\\slash");
        assert_eq!(get("d"), "tab\there");
        assert_eq!(get("e"), "A19");
        assert_eq!(get("f"), "x\"y");
        assert_eq!(get("g"), "bare");
    }

    #[test]
    fn blanks_newlines_and_comments_separate_tokens() {
        let config = parse_jaas(
            "  M\n\trequired /* block\n comment */ a = \"1\" // to the end\n b=2 / also\n ;  ",
        )
        .unwrap();
        assert_eq!(config.options.len(), 2);
        assert_eq!(config.options["a"], "1");
        assert_eq!(config.options["b"], "2");
        // An unquoted value stops at `/`, so paths must be quoted.
        let config = parse_jaas("M required path=\"/etc/kafka\";").unwrap();
        assert_eq!(config.options["path"], "/etc/kafka");
    }

    #[test]
    fn missing_semicolon_is_refused_as_kafka_does() {
        assert_eq!(
            error_of("org.apache.kafka.common.security.scram.ScramLoginModule required"),
            "Invalid JAAS config at byte 64: JAAS config entry not terminated by semi-colon"
        );
        assert!(error_of("M required a=\"b\"").contains("not terminated by semi-colon"));
    }

    #[test]
    fn garbage_gets_a_clear_error() {
        let cases = [
            ("", "Login module not specified"),
            ("   // nothing\n", "Login module not specified"),
            ("M", "control flag not specified"),
            ("M required a;", "Value not specified for key 'a'"),
            ("M required a=;", "Value not specified for key 'a'"),
            ("M required a=b=c;", "expected an option name"),
            ("M required a=b 'c' d=e;", "Value not specified for key 'c'"),
            ("M required =b;", "expected an option name"),
            ("; M required;", "expected a login module class name"),
            ("M ;", "expected a login module control flag"),
            ("M required a=\"open;", "unterminated quoted value"),
            ("M required a=\"line\nbreak\";", "unterminated quoted value"),
            ("M required a=\"x\\", "unterminated quoted value"),
            ("M required a=\u{85}x;", "unexpected character U+0085"),
            (
                "M required; N optional;",
                "contains 2 login modules, should be 1 module",
            ),
            ("{ not jaas }", "Invalid login module control flag 'not'"),
        ];
        for (value, needle) in cases {
            let err = error_of(value);
            assert!(err.contains(needle), "{value:?}: {err}");
        }
    }

    #[test]
    fn repeated_option_keeps_the_last_value() {
        let config = parse_jaas("M required a=1 a=2;").unwrap();
        assert_eq!(config.options["a"], "2");
    }

    #[test]
    fn debug_hides_option_values() {
        let config = parse_jaas("M required username=\"admin\" password=\"hunter2\";").unwrap();
        let text = format!("{config:?}");
        assert!(
            text.contains("password") && text.contains("Required"),
            "{text}"
        );
        assert!(
            !text.contains("hunter2") && !text.contains("admin"),
            "{text}"
        );
    }

    #[test]
    fn no_prefix_panics() {
        let value = "M required a=\"x\\\"y\\101\" /* c */ b='z' // d\n c=w;";
        for (end, _) in value.char_indices() {
            let _ = parse_jaas(&value[..end]);
        }
        assert!(parse_jaas(value).is_ok());
    }
}
