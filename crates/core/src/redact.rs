//! Keeping secrets out of logs and errors: the password in a URL's user-info
//! (`http://user:secret@host`) and secret query parameters (`?api_key=…`) are replaced by `***`
//! wherever a URL appears in a message.

use std::borrow::Cow;

/// Query parameters whose values are credentials (compared without case).
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "api-key",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "client_secret",
    "code",
    "id_token",
    "key",
    "passwd",
    "password",
    "pwd",
    "refresh_token",
    "secret",
    "sig",
    "signature",
    "token",
    "x-api-key",
];

const HIDDEN: &str = "***";

fn is_reference(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1
}

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// One URL with its user-info password and secret query values hidden. A user name without a
/// password (`https://TOKEN@host`, as tokens are often passed) is hidden whole.
pub fn url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    let mut changed = false;
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                // A `${VAR}` reference (a definition as written) names the secret, it is not one.
                Some((_, password)) if is_reference(password) => out.push_str(userinfo),
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(HIDDEN);
                    changed = true;
                }
                None => {
                    out.push_str(HIDDEN);
                    changed = true;
                }
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let after = &rest[authority_end..];
    let (path, query_and_fragment) = match after.find('?') {
        Some(q) => (&after[..q], Some(&after[q + 1..])),
        None => (after, None),
    };
    out.push_str(path);
    if let Some(qf) = query_and_fragment {
        let (query, fragment) = match qf.find('#') {
            Some(h) => (&qf[..h], Some(&qf[h..])),
            None => (qf, None),
        };
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, value))
                    if is_secret_param(name) && !value.is_empty() && !is_reference(value) =>
                {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(HIDDEN);
                    changed = true;
                }
                _ => out.push_str(pair),
            }
        }
        if let Some(f) = fragment {
            out.push_str(f);
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(url)
    }
}

fn ends_url(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '<' | '>' | '`' | ')' | ']' | '}' | ',' | ';'
        )
}

/// `text` with every URL in it passed through [`url`].
pub fn urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        // Back over the scheme (letters, digits, `+`, `-`, `.`).
        let start = rest[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(i, |(j, _)| j);
        let end = rest[i + 3..]
            .find(ends_url)
            .map_or(rest.len(), |e| i + 3 + e);
        out.push_str(&rest[..start]);
        let hidden = url(&rest[start..end]);
        changed |= matches!(hidden, Cow::Owned(_));
        out.push_str(&hidden);
        rest = &rest[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_tokens_and_secret_parameters() {
        assert_eq!(
            url("http://user:s3cret@registry:8081/subjects"),
            "http://user:***@registry:8081/subjects"
        );
        assert_eq!(url("https://ghp_TOKEN@host/x"), "https://***@host/x");
        assert_eq!(
            url("https://api.example.com/v1?api_key=abc123&page=2&Token=t#frag"),
            "https://api.example.com/v1?api_key=***&page=2&Token=***#frag"
        );
        assert_eq!(
            url("https://example.com/a?b=c"),
            "https://example.com/a?b=c"
        );
        assert!(matches!(url("https://example.com/"), Cow::Borrowed(_)));
    }

    #[test]
    fn finds_urls_inside_messages() {
        let msg = "error sending request for url (http://u:hunter2@127.0.0.1:9/schemas/ids/1): connection refused; also 'https://h/?password=pw'";
        let out = urls(msg);
        assert!(!out.contains("hunter2") && !out.contains("=pw"), "{out}");
        assert!(
            out.contains("http://u:***@127.0.0.1:9/schemas/ids/1)"),
            "{out}"
        );
        assert!(out.contains("https://h/?password=***'"), "{out}");
        assert_eq!(urls("no urls here"), "no urls here");
    }
}
