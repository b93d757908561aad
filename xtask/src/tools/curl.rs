//! `curl` posting a JSON file to a URL that never reaches argv (it is read from stdin as a
//! curl config line), with a short timeout and curl's own retries with back-off.

use super::CommandSpec;

/// `curl … -K - --data-binary @BODY`: stdin must carry `url_config(url)`. One try, 10 s at
/// most: the caller decides what is worth another (never a timeout: the post may have landed).
pub fn post_json(curl: &str, body: &str) -> CommandSpec {
    CommandSpec::new(curl).args([
        "--silent",
        "--show-error",
        "--fail-with-body",
        "--max-time",
        "10",
        "--header",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{body}"),
        "--config",
        "-",
    ])
}

/// The curl config line that names the URL (quoted as curl's config syntax wants), or `None`
/// for a value that is not one URL (whitespace or control characters could add config lines).
pub fn url_config(url: &str) -> Option<String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(format!(
        "url = \"{}\"\n",
        url.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// curl's exit statuses worth another try: no connection (6, 7) or an HTTP error that is
/// the server's (5xx, 429: 22 with `--fail-with-body` and the status in the output).
pub fn worth_retry(code: Option<i32>, output: &str) -> bool {
    match code {
        Some(6) | Some(7) => true,
        Some(22) => [" 429", " 500", " 502", " 503", " 504"]
            .iter()
            .any(|s| output.contains(s)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_goes_on_stdin_not_in_argv() {
        let c = post_json("curl", "target/slipway/notify.json");
        assert!(c.argv().ends_with(&[
            "--data-binary",
            "@target/slipway/notify.json",
            "--config",
            "-"
        ]));
        assert!(!c.argv().iter().any(|a| a.contains("http")));
        assert_eq!(
            url_config("https://x.invalid/hook?a=\"b\"").unwrap(),
            "url = \"https://x.invalid/hook?a=\\\"b\\\"\"\n"
        );
        assert_eq!(url_config("http://a/x\ndata-binary = @/etc/passwd"), None);
        assert!(worth_retry(Some(7), ""));
        assert!(worth_retry(
            Some(22),
            "curl: (22) The requested URL returned error: 503"
        ));
        assert!(!worth_retry(
            Some(22),
            "curl: (22) The requested URL returned error: 404"
        ));
        assert!(
            !worth_retry(Some(28), "timed out"),
            "a timeout may have been delivered"
        );
    }
}
