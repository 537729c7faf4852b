//! The principal Kafka gives a TLS client: the certificate's subject DN as Java's
//! `X500Principal.getName()` (RFC 2253 format) prints it, rewritten by
//! `ssl.principal.mapping.rules`; `ANONYMOUS` without a certificate.
//!
//! DN order: RFC 2253 §2.1 prints "starting with the last element of the sequence and moving
//! backwards toward the first", and Java's `X500Name.getRFC2253Name` does exactly that (it
//! walks its RDN array from the end). So the ASN.1 order is reversed: a subject made with
//! `openssl req -subj "/CN=alice/OU=eng/O=millrace"` has CN first in the sequence and Java
//! prints `O=millrace,OU=eng,CN=alice`; the usual `CN=alice,OU=eng,O=millrace` comes from a
//! subject whose sequence is O, OU, CN (`-subj "/O=millrace/OU=eng/CN=alice"`, or keytool's
//! `-dname "CN=alice,OU=eng,O=millrace"`). The tests check both.
//!
//! Value formatting follows Java's `AVA.toRFC2253String`: keywords only for CN, C, L, ST, O,
//! OU, STREET, DC and UID, other types as a dotted OID with `#` and the hex of the value's DER;
//! string values with `, = + < > # ; " \` escaped by a backslash, NUL as `\00`, and leading or
//! trailing spaces escaped; multi-valued RDNs joined with `+` in encoded order. One deliberate
//! difference: Java decodes a BMPString's bytes as UTF-8 (garbling it); here it is decoded as
//! UTF-16, as the standard means.
//!
//! Mapping rules follow Kafka's `SslPrincipalMapper`: the same splitting and rule grammar
//! (`DEFAULT` or `RULE:pattern/replacement/[LU]`), a rule applies when its pattern matches the
//! whole DN, the result is Java's `replaceAll` with the replacement (`$n`, `${name}`, `\x`),
//! and the first applying rule wins. Patterns are compiled with Rust's `regex`, which accepts
//! the patterns Kafka documents but not look-around or back-references (those are errors).

use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use rustls_pki_types::CertificateDer;
use x509_parser::asn1_rs::{Any, Class, Tag, ToDer};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::TlsError;

/// Kafka's principal name for a TLS client that presented no certificate.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// Kafka's rule grammar: `DEFAULT`, or `RULE:` pattern `/` replacement `/` optional L or U,
/// where `\` escapes (so a `/` inside the pattern is written `\/`).
const RULE_PATTERN: &str = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)";

static RULE_SPLITTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"\s*({RULE_PATTERN})\s*(,\s*|$)")).expect("splitter pattern is valid")
});
static RULE_PARSER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^(?:{RULE_PATTERN})")).expect("rule pattern is valid"));

/// Parsed `ssl.principal.mapping.rules`.
#[derive(Clone, Debug)]
pub struct PrincipalRules {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Replace {
        /// As written, for display.
        source: String,
        /// The pattern, for Java's `replaceAll`.
        find: Regex,
        /// The pattern anchored at both ends, for Java's `Matcher.matches`.
        whole: Regex,
        replacement_source: String,
        replacement: Vec<Piece>,
        case: Case,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// A parsed Java replacement string.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Group(usize),
    Named(String),
}

impl PrincipalRules {
    /// Parses an `ssl.principal.mapping.rules` value. Empty entries are ignored as in Kafka; an
    /// empty value therefore maps nothing (every [`apply`](Self::apply) fails).
    pub fn parse(rules: &str) -> Result<Self, TlsError> {
        let mut parsed = Vec::new();
        for caps in RULE_SPLITTER.captures_iter(rules.trim()) {
            let text = caps.get(1).map_or("", |m| m.as_str());
            if let Some(rule) = parse_rule(text)? {
                parsed.push(rule);
            }
        }
        Ok(Self { rules: parsed })
    }

    /// The principal name for a DN: the first rule that applies wins. Kafka fails the client's
    /// authentication when none applies; so should the caller on an error here.
    pub fn apply(&self, dn: &str) -> Result<String, TlsError> {
        self.rules
            .iter()
            .find_map(|rule| rule.apply(dn))
            .ok_or_else(|| TlsError::NoMatchingRule { dn: dn.to_string() })
    }
}

/// Kafka's principal name of a TLS peer: [`ANONYMOUS`] without a certificate, otherwise the
/// mapped DN of the first (end-entity) certificate.
pub fn peer_principal_name(
    peer_certificates: Option<&[CertificateDer<'_>]>,
    rules: &PrincipalRules,
) -> Result<String, TlsError> {
    match peer_certificates.and_then(|certs| certs.first()) {
        None => Ok(ANONYMOUS.to_string()),
        Some(cert) => rules.apply(&certificate_dn(cert)?),
    }
}

/// The subject DN of a DER certificate in Java's RFC 2253 form (see the module doc).
pub fn certificate_dn(cert_der: &[u8]) -> Result<String, TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| TlsError::PeerCertificate {
            reason: format!("not a valid X.509 certificate: {e}"),
        })?;
    rfc2253_name(cert.subject())
}

impl fmt::Display for PrincipalRules {
    /// Kafka's `SslPrincipalMapper.toString` list form, e.g. `[RULE:^CN=(.*)$/$1/L, DEFAULT]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match rule {
                Rule::Default => f.write_str("DEFAULT")?,
                Rule::Replace {
                    source,
                    replacement_source,
                    case,
                    ..
                } => {
                    write!(f, "RULE:{source}/{replacement_source}")?;
                    match case {
                        Case::Keep => {}
                        Case::Lower => f.write_str("/L")?,
                        Case::Upper => f.write_str("/U")?,
                    }
                }
            }
        }
        f.write_str("]")
    }
}

impl Rule {
    fn apply(&self, dn: &str) -> Option<String> {
        let Rule::Replace {
            find,
            whole,
            replacement,
            case,
            ..
        } = self
        else {
            return Some(dn.to_string());
        };
        if !whole.is_match(dn) {
            return None;
        }
        let replaced = java_replace_all(find, dn, replacement);
        Some(match case {
            Case::Keep => replaced,
            Case::Lower => replaced.to_lowercase(),
            Case::Upper => replaced.to_uppercase(),
        })
    }
}

/// One split entry; `None` for an empty one.
fn parse_rule(text: &str) -> Result<Option<Rule>, TlsError> {
    let invalid = |reason: String| TlsError::InvalidRule {
        rule: text.to_string(),
        reason,
    };
    let caps = RULE_PARSER
        .captures(text)
        .expect("the parser's last alternative matches anything");
    let end = caps.get(0).map_or(0, |m| m.end());
    if end != text.len() {
        return Err(invalid(format!("unmatched text `{}`", &text[end..])));
    }
    if caps.get(1).is_some() {
        return Ok(Some(Rule::Default));
    }
    let (Some(pattern), Some(replacement)) = (caps.get(2), caps.get(4)) else {
        return Ok(None);
    };
    let pattern = pattern.as_str();
    let find = Regex::new(pattern).map_err(|e| invalid(e.to_string()))?;
    let whole = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| invalid(e.to_string()))?;
    let pieces = parse_replacement(replacement.as_str(), &find).map_err(invalid)?;
    let case = match caps.get(6).map(|m| m.as_str()) {
        Some("L") => Case::Lower,
        Some("U") => Case::Upper,
        _ => Case::Keep,
    };
    Ok(Some(Rule::Replace {
        source: pattern.to_string(),
        find,
        whole,
        replacement_source: replacement.as_str().to_string(),
        replacement: pieces,
        case,
    }))
}

/// Parses a Java replacement string: `\c` is a literal `c`, `$n` a group (digits taken while
/// the number stays a valid group), `${name}` a named group. A reference to a group the pattern
/// lacks stays literal text, which is what Kafka's escaping of such references intends.
fn parse_replacement(text: &str, pattern: &Regex) -> Result<Vec<Piece>, String> {
    let groups = pattern.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => literal.push(chars.next().ok_or("replacement ends with `\\`")?),
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                if !pattern.capture_names().any(|n| n == Some(name.as_str())) {
                    return Err(format!("replacement names unknown group `{name}`"));
                }
                flush(&mut literal, &mut pieces);
                pieces.push(Piece::Named(name));
            }
            '$' => {
                let Some(first) = chars.peek().and_then(|d| d.to_digit(10)) else {
                    return Err("`$` in replacement is not followed by a group".into());
                };
                let mut group = first as usize;
                if group > groups {
                    literal.push('$');
                    continue;
                }
                chars.next();
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    let longer = group * 10 + d as usize;
                    if longer > groups {
                        break;
                    }
                    group = longer;
                    chars.next();
                }
                flush(&mut literal, &mut pieces);
                pieces.push(Piece::Group(group));
            }
            other => literal.push(other),
        }
    }
    flush(&mut literal, &mut pieces);
    Ok(pieces)
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Literal(std::mem::take(literal)));
    }
}

/// Java's `String.replaceAll`: every match, left to right; after an empty match the search
/// resumes one character further, so e.g. `.*` also matches the empty end of the text.
fn java_replace_all(find: &Regex, text: &str, replacement: &[Piece]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while from <= text.len() {
        let Some(caps) = find.captures_at(text, from) else {
            break;
        };
        let m = caps.get(0).expect("group 0 is the match");
        out.push_str(&text[copied..m.start()]);
        expand(&caps, replacement, &mut out);
        copied = m.end();
        from = if m.is_empty() {
            m.end() + text[m.end()..].chars().next().map_or(1, char::len_utf8)
        } else {
            m.end()
        };
    }
    out.push_str(&text[copied..]);
    out
}

fn expand(caps: &Captures<'_>, replacement: &[Piece], out: &mut String) {
    for piece in replacement {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Group(i) => out.push_str(caps.get(*i).map_or("", |m| m.as_str())),
            Piece::Named(n) => out.push_str(caps.name(n).map_or("", |m| m.as_str())),
        }
    }
}

fn rfc2253_name(name: &X509Name<'_>) -> Result<String, TlsError> {
    let mut rdns = Vec::new();
    for rdn in name.iter() {
        let avas: Result<Vec<String>, TlsError> = rdn.iter().map(rfc2253_ava).collect();
        rdns.push(avas?.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn rfc2253_ava(ava: &AttributeTypeAndValue<'_>) -> Result<String, TlsError> {
    let oid = ava.attr_type().to_id_string();
    let keyword = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => oid.as_str(),
    };
    let value = ava.attr_value();
    match string_value(value) {
        Some(text) if keyword != oid => Ok(format!("{keyword}={}", escape_value(&text))),
        _ => {
            let der = value.to_der_vec().map_err(|e| TlsError::PeerCertificate {
                reason: format!("cannot re-encode a subject attribute: {e}"),
            })?;
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("{keyword}=#{hex}"))
        }
    }
}

/// The text of the string types Java prints as text (its `isDerString`, non-canonical).
fn string_value(value: &Any<'_>) -> Option<String> {
    if value.header.class() != Class::Universal || value.header.constructed() {
        return None;
    }
    let data = value.data;
    match value.header.tag() {
        Tag::PrintableString
        | Tag::T61String
        | Tag::Ia5String
        | Tag::GeneralString
        | Tag::Utf8String => Some(String::from_utf8_lossy(data).into_owned()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// Java's RFC 2253 escaping of a string value.
fn escape_value(text: &str) -> String {
    const SPECIAL: &str = ",=+<>#;\"\\";
    let mut escaped: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if SPECIAL.contains(c) {
            escaped.push('\\');
            escaped.push(c);
        } else if c == '\0' {
            escaped.extend(['\\', '0', '0']);
        } else {
            escaped.push(c);
        }
    }
    // Leading and trailing spaces (and CRs, as Java counts them) get a backslash each.
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| blank(c)).count();
    let trail_start = escaped.len() - escaped.iter().rev().take_while(|c| blank(c)).count();
    let mut out = String::with_capacity(escaped.len() + 4);
    for (i, c) in escaped.into_iter().enumerate() {
        if i < lead || i >= trail_start.max(lead) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's documented example, plus a catch-all: the broker's docs show
    /// `CN=serviceuser,OU=ServiceUsers,...` → `serviceuser` and
    /// `CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown` → `adminuser@admin`.
    const DOC_RULES: &str = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
        RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,DEFAULT";

    fn apply(rules: &str, dn: &str) -> String {
        PrincipalRules::parse(rules).unwrap().apply(dn).unwrap()
    }

    #[test]
    fn documented_rules() {
        let rules = PrincipalRules::parse(DOC_RULES).unwrap();
        let dn = "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown";
        assert_eq!(rules.apply(dn).unwrap(), "serviceuser");
        let dn = "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown";
        assert_eq!(rules.apply(dn).unwrap(), "adminuser@admin");
        let dn = "CN=alice,OU=eng,O=millrace";
        assert_eq!(rules.apply(dn).unwrap(), dn);
    }

    #[test]
    fn mapper_cases_with_case_folding() {
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, \
            RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, \
            RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U, \
            RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, DEFAULT";
        let rules = PrincipalRules::parse(rules).unwrap();
        let cases = [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ];
        for (dn, want) in cases {
            assert_eq!(rules.apply(dn).unwrap(), want, "{dn}");
        }
    }

    #[test]
    fn no_applying_rule_is_an_error() {
        let rules = PrincipalRules::parse("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/").unwrap();
        let err = rules.apply("CN=alice,OU=eng").unwrap_err();
        assert!(matches!(err, TlsError::NoMatchingRule { .. }), "{err}");
        assert!(PrincipalRules::parse("").unwrap().apply("CN=x").is_err());
    }

    #[test]
    fn splitting_matches_kafka() {
        let cases = [
            ("", "[]"),
            ("DEFAULT", "[DEFAULT]"),
            ("RULE://", "[RULE:/]"),
            ("RULE:/.*/", "[RULE:/.*]"),
            ("RULE:/.*/L", "[RULE:/.*/L]"),
            ("RULE://,DEFAULT", "[RULE:/, DEFAULT]"),
            ("  RULE:// ,  DEFAULT  ", "[RULE:/, DEFAULT]"),
            (
                "  RULE:   /     / ,  DEFAULT  ",
                "[RULE:   /     , DEFAULT]",
            ),
            (
                "  RULE:  /     /U   ,DEFAULT  ",
                "[RULE:  /     /U, DEFAULT]",
            ),
            (
                "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
                "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
            ),
            (",   , , ,      , , ,   ", "[]"),
            (",,RULE://,,,DEFAULT,,", "[RULE:/, DEFAULT]"),
            (
                ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
                "[RULE: /   , DEFAULT]",
            ),
            (r"RULE:\/\\\(\)\n\t/\/\//", r"[RULE:\/\\\(\)\n\t/\/\/]"),
            (
                "RULE:,RULE:,/,RULE:,\\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,\
                 RULE:, DEFAULT, /DEFAULT/,DEFAULT",
                "[RULE:,RULE:,/,RULE:,\\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, \
                 RULE:, DEFAULT, /DEFAULT, DEFAULT]",
            ),
        ];
        for (input, want) in cases {
            let rules = PrincipalRules::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(rules.to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn invalid_rules_are_refused() {
        for bad in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
            "RULE:^CN=(unclosed$/$1/",
            "RULE:^CN=(.*)$/$1\\/",
            "RULE:^CN=(.*)$/${nope}/",
        ] {
            let err = PrincipalRules::parse(bad).unwrap_err();
            assert!(matches!(err, TlsError::InvalidRule { .. }), "{bad}: {err}");
            assert!(err.to_string().starts_with("ssl.principal.mapping.rules: "));
        }
    }

    #[test]
    fn escaped_comma_in_pattern_and_value() {
        let rules = r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT";
        assert_eq!(
            apply(rules, r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz"),
            r"Tkac\, Adam"
        );
    }

    #[test]
    fn replacement_follows_java() {
        // $4 with three groups stays literal (Kafka's escaping); $12 with one group is $1 + "2".
        assert_eq!(apply("RULE:^(a)(b)(c)$/$1@$4/", "abc"), "a@$4");
        assert_eq!(apply("RULE:^(x).*$/$12/", "xyz"), "x2");
        assert_eq!(
            apply("RULE:^(?P<who>\\w+)@.*$/${who}!/", "bob@corp"),
            "bob!"
        );
        assert_eq!(apply("RULE:^(.*)$/[$0]/", "dn"), "[dn]");
        assert_eq!(apply(r"RULE:^(.*)$/\$1/", "dn"), "$1");
        // Java's replaceAll also replaces the empty match at the end of the text.
        assert_eq!(apply("RULE:.*/<$0>/", "ab"), "<ab><>");
        // A group that did not take part contributes nothing.
        assert_eq!(apply("RULE:^(a)|(b)$/[$2]/", "a"), "[]");
    }

    #[test]
    fn escaping_follows_java_rfc2253() {
        assert_eq!(escape_value("alice"), "alice");
        assert_eq!(escape_value("a,b=c+d"), "a\\,b\\=c\\+d");
        assert_eq!(escape_value("<#>;\"\\"), "\\<\\#\\>\\;\\\"\\\\");
        assert_eq!(escape_value(" padded  "), "\\ padded\\ \\ ");
        assert_eq!(escape_value("nul\0"), "nul\\00");
        assert_eq!(escape_value("   "), "\\ \\ \\ ");
        assert_eq!(escape_value("Zoë"), "Zoë");
    }

    #[test]
    fn certificate_dn_rejects_garbage() {
        let err = certificate_dn(b"\x30\x03\x02\x01\x01").unwrap_err();
        assert!(matches!(err, TlsError::PeerCertificate { .. }), "{err}");
    }

    #[test]
    fn anonymous_without_certificate() {
        let rules = PrincipalRules::parse("DEFAULT").unwrap();
        assert_eq!(peer_principal_name(None, &rules).unwrap(), ANONYMOUS);
        assert_eq!(peer_principal_name(Some(&[]), &rules).unwrap(), ANONYMOUS);
    }
}
