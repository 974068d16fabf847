use std::io::Write;

use super::config::BearerTokenAuthConfig;
use super::token::TokenFileError;
use super::*;

fn headers(value: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("authorization", value.parse().unwrap());
    h
}

#[test]
fn accepts_only_the_token_with_its_scheme() {
    let config = BearerTokenAuthConfig {
        token: Some("s3cret".into()),
        ..Default::default()
    };
    let auth = BearerToken::new("bearertokenauth/in", &config).unwrap();
    let ok = auth.authenticate(&headers("Bearer s3cret")).unwrap();
    assert_eq!(ok.subject, "bearertokenauth/in");
    for wrong in ["Bearer s3cre", "Bearer s3cret2", "s3cret", "Basic s3cret"] {
        let e = auth.authenticate(&headers(wrong)).unwrap_err();
        assert!(matches!(e, AuthError::Invalid(_)), "{wrong}: {e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    assert!(matches!(
        auth.authenticate(&http::HeaderMap::new()),
        Err(AuthError::Missing(_))
    ));
    assert!(!format!("{auth:?} {config:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_token_file_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n").unwrap();
    let config = BearerTokenAuthConfig {
        filename: Some(path.clone()),
        scheme: "".into(),
        header: "x-api-key".into(),
        ..Default::default()
    };
    let auth = BearerToken::new("k", &config).unwrap();
    let (mut parts, ()) = http::Request::new(()).into_parts();
    auth.authorize(&mut parts, b"").await.unwrap();
    assert_eq!(parts.headers["x-api-key"], "first");

    // A new file (as a secret rotation writes it): a new modification time.
    let next = dir.path().join("token.new");
    let mut f = std::fs::File::create(&next).unwrap();
    f.write_all(b"second").unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    std::fs::rename(&next, &path).unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("x-api-key", "second".parse().unwrap());
    auth.authenticate(&h).unwrap();
    h.insert("x-api-key", "first".parse().unwrap());
    assert!(auth.authenticate(&h).is_err());

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        auth.authenticate(&h),
        Err(AuthError::Unavailable(_))
    ));
}

#[test]
fn options_are_checked() {
    let none = BearerTokenAuthConfig::default();
    assert!(none.validate().unwrap_err().to_string().contains("token"));
    let missing = BearerTokenAuthConfig {
        filename: Some("/nonexistent/token".into()),
        ..Default::default()
    };
    let e = BearerToken::new("x", &missing).unwrap_err();
    let BuildError::Unusable { option, source } = &e else {
        panic!("expected an unusable token file, got {e}");
    };
    assert_eq!(option, "filename");
    assert!(
        matches!(
            source.downcast_ref::<TokenFileError>(),
            Some(TokenFileError::Unreadable { .. })
        ),
        "{source:?}"
    );
    assert!(e.to_string().contains("/nonexistent/token"), "{e}");
}
