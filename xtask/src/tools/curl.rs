//! `curl` posting a JSON file to a URL that never reaches argv (it is read from stdin as a
//! curl config line), with a short timeout and curl's own retries with back-off.

use super::CommandSpec;

/// `curl … -K - --data-binary @BODY`: stdin must carry `url_config(url)`.
pub fn post_json(curl: &str, body: &str) -> CommandSpec {
    CommandSpec::new(curl).args([
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "10",
        "--retry",
        "3",
        "--retry-all-errors",
        "--retry-delay",
        "1",
        "--header",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{body}"),
        "--config",
        "-",
    ])
}

/// The curl config line that names the URL (quoted as curl's config syntax wants).
pub fn url_config(url: &str) -> String {
    format!(
        "url = \"{}\"\n",
        url.replace('\\', "\\\\").replace('"', "\\\"")
    )
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
            url_config("https://x.invalid/hook?a=\"b\""),
            "url = \"https://x.invalid/hook?a=\\\"b\\\"\"\n"
        );
    }
}
