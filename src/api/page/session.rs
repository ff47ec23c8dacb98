//! The status page's session: the viewer's token in a cookie that no script can read
//! (HttpOnly), no other site can make the browser send (SameSite=Strict), and, behind HTTPS,
//! no sibling domain can plant (`__Host-`, with Secure). Forms that change the session are taken
//! only from the page itself.

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie over plain HTTP (a port-forward to the controller).
pub const SESSION_COOKIE: &str = "sluice_session";
/// The cookie behind HTTPS: the prefix makes browsers refuse it unless Secure, on this host only.
pub const SECURE_SESSION_COOKIE: &str = "__Host-sluice_session";
/// How long a browser keeps the session: a working day.
const SESSION_SECONDS: u32 = 12 * 3600;

/// Whether the request reached us through HTTPS, as the proxy in front says.
fn through_https(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded_proto =
        value("x-forwarded-proto").is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    // RFC 7239: `Forwarded: for=...;proto=https`; the first hop is the client's.
    let forwarded = value("forwarded").is_some_and(|v| {
        v.split(',')
            .next()
            .unwrap_or_default()
            .split(';')
            .any(|pair| {
                pair.trim().split_once('=').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("proto")
                        && v.trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
    });
    forwarded_proto || forwarded
}

/// The token in the session cookie, if the request carries one (the `__Host-` one first).
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    let pairs: Vec<(&str, &str)> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .collect();
    [SECURE_SESSION_COOKIE, SESSION_COOKIE]
        .iter()
        .find_map(|wanted| pairs.iter().find(|(name, _)| name == wanted))
        .map(|(_, value)| percent_decode(value))
        .filter(|token| !token.is_empty())
}

/// `Set-Cookie` for a session (or, with no token, for ending it).
pub fn session_cookie(token: Option<&str>, headers: &HeaderMap) -> HeaderValue {
    let secure = through_https(headers);
    let (value, age) = match token {
        Some(token) => (percent_encode(token), SESSION_SECONDS),
        None => (String::new(), 0),
    };
    let (name, flags) = if secure {
        (SECURE_SESSION_COOKIE, "; Secure")
    } else {
        (SESSION_COOKIE, "")
    };
    let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{flags}");
    // Built from URL-safe characters and fixed text only.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a form post comes from the page itself: a browser says where a request comes from
/// (`Sec-Fetch-Site`, or else `Origin`); a client that says neither is no browser, and a forged
/// cross-site form cannot hide both.
pub fn from_the_page_itself(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match (value("origin"), value("host")) {
        (Some(origin), Some(host)) => {
            origin.split_once("://").map(|(_, authority)| authority) == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// A cookie value holds no `;`, `,`, space or quote: anything but the URL-safe characters is
/// escaped as `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn a_token_survives_the_cookie_whatever_its_characters() {
        for token in ["plain-token_1.2~x", "with space;and,comma=\"q\"%", "ünï"] {
            let encoded = percent_encode(token);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
            );
            assert_eq!(percent_decode(&encoded), token);
        }
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(
            percent_decode("%+F"),
            "%+F",
            "only hex digits are an escape"
        );
    }

    #[test]
    fn the_session_token_is_found_among_other_cookies_the_secure_one_first() {
        let plain = headers(&[("cookie", "a=1; sluice_session=t%3Bk; b=2")]);
        assert_eq!(session_token(&plain).as_deref(), Some("t;k"));
        let both = headers(&[(
            "cookie",
            "sluice_session=planted; __Host-sluice_session=mine",
        )]);
        assert_eq!(session_token(&both).as_deref(), Some("mine"));
        assert_eq!(
            session_token(&headers(&[("cookie", "sluice_session=")])),
            None
        );
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_host_bound_behind_https() {
        let plain = session_cookie(Some("tok en"), &HeaderMap::new());
        assert_eq!(
            plain.to_str().unwrap(),
            "sluice_session=tok%20en; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200"
        );
        for proxied in [
            headers(&[("x-forwarded-proto", "HTTPS")]),
            headers(&[(
                "forwarded",
                "for=10.0.0.1;proto=https, for=10.0.0.2;proto=http",
            )]),
        ] {
            let ended = session_cookie(None, &proxied);
            assert_eq!(
                ended.to_str().unwrap(),
                "__Host-sluice_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
            );
        }
        let http_first = headers(&[("forwarded", "proto=http, proto=https")]);
        assert!(
            !session_cookie(None, &http_first)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn only_the_page_itself_may_post_its_forms() {
        assert!(from_the_page_itself(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(!from_the_page_itself(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://a:1"),
            ("host", "a:1")
        ])));
        assert!(from_the_page_itself(&headers(&[
            ("origin", "http://127.0.0.1:8443"),
            ("host", "127.0.0.1:8443")
        ])));
        assert!(!from_the_page_itself(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8443")
        ])));
        assert!(!from_the_page_itself(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8443")
        ])));
        assert!(from_the_page_itself(&HeaderMap::new()), "curl says neither");
    }
}
