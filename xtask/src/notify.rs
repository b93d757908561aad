//! Posting a run's summary to a chat webhook (Microsoft Teams or Slack incoming webhooks):
//! which services failed and at which step, with a link to the CI run. The URL comes from the
//! environment and is masked like any secret; a notification that cannot be delivered is a
//! warning, never the run's failure.

use serde_json::{json, Value};

use crate::exec::Runner;
use crate::pipeline::Outcome;
use crate::services::Notify;
use crate::ui::Ui;

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `push`, `build`, `scan` or `sign`.
    pub command: String,
    pub ok: bool,
    /// (service, result, what failed where: `scan: the scan gate failed …`, first line).
    pub services: Vec<(String, String, Option<String>)>,
    /// A failure before any service ran (configuration, login), first line.
    pub error: Option<String>,
    /// The CI run (`$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`).
    pub run_url: Option<String>,
    /// Repository and ref, e.g. `acme/shop @ main (abc1234)`.
    pub origin: Option<String>,
}

impl Summary {
    pub fn new(
        command: &str,
        outcomes: &[Outcome],
        result: &anyhow::Result<()>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Summary {
        // The first line says where; the last says why (a tool's own error): both, short.
        let first_line = |s: &str| {
            let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let mut text = match (
                lines.first(),
                lines.iter().rev().find(|l| !l.starts_with("command:")),
            ) {
                (Some(a), Some(b)) if a != b => format!("{a} {b}"),
                (Some(a), _) => a.to_string(),
                _ => String::new(),
            };
            if text.chars().count() > 300 {
                text = text.chars().take(297).collect::<String>() + "…";
            }
            text
        };
        let services: Vec<(String, String, Option<String>)> = outcomes
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    crate::report::result_word(o, command),
                    o.error.as_deref().map(first_line),
                )
            })
            .collect();
        let error = match result {
            Err(e) if outcomes.iter().all(|o| o.error.is_none()) => {
                Some(first_line(&format!("{e:#}")))
            }
            _ => None,
        };
        let set = |k: &str| env(k).filter(|v| !v.is_empty());
        let run_url = match (
            set("GITHUB_SERVER_URL"),
            set("GITHUB_REPOSITORY"),
            set("GITHUB_RUN_ID"),
        ) {
            (Some(s), Some(r), Some(id)) => Some(format!("{s}/{r}/actions/runs/{id}")),
            _ => None,
        };
        let origin = match (set("GITHUB_REPOSITORY"), set("GITHUB_REF_NAME")) {
            (Some(r), Some(b)) => Some(match set("GITHUB_SHA") {
                Some(sha) => format!("{r} @ {b} ({})", sha.chars().take(7).collect::<String>()),
                None => format!("{r} @ {b}"),
            }),
            _ => None,
        };
        Summary {
            command: command.to_string(),
            ok: result.is_ok(),
            services,
            error,
            run_url,
            origin,
        }
    }

    pub fn title(&self) -> String {
        let failed = self.services.iter().filter(|s| s.2.is_some()).count();
        match (self.ok, &self.error) {
            (true, _) => format!(
                "Slipway {}: {} service(s) done",
                self.command,
                self.services.len()
            ),
            (false, Some(_)) => format!("Slipway {} failed before any service ran", self.command),
            (false, None) => format!(
                "Slipway {} failed: {failed} of {} service(s)",
                self.command,
                self.services.len()
            ),
        }
    }

    /// One line per service: `api: FAILED at scan: the scan gate failed (…)`.
    fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .services
            .iter()
            .map(|(name, result, err)| match err {
                Some(e) => format!("{name}: {result} at {e}"),
                None => format!("{name}: {result}"),
            })
            .collect();
        if let Some(e) = &self.error {
            out.push(e.clone());
        }
        out
    }
}

/// A Slack incoming webhook's message (`text` in mrkdwn).
pub fn slack(s: &Summary) -> Value {
    let mut text = format!("*{}*", slack_escape(&s.title()));
    if let Some(o) = &s.origin {
        text.push_str(&format!("\n{}", slack_escape(o)));
    }
    for l in s.lines() {
        text.push_str(&format!("\n• {}", slack_escape(&l)));
    }
    if let Some(u) = &s.run_url {
        text.push_str(&format!("\n<{u}|Open the run>"));
    }
    json!({ "text": text })
}

/// A Teams incoming webhook's (Workflows) message: one Adaptive Card.
pub fn teams(s: &Summary) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "size": "Medium",
        "weight": "Bolder",
        "wrap": true,
        "color": if s.ok { "Good" } else { "Attention" },
        "text": s.title(),
    })];
    if let Some(o) = &s.origin {
        body.push(json!({"type": "TextBlock", "isSubtle": true, "wrap": true, "text": o}));
    }
    let facts: Vec<Value> = s
        .services
        .iter()
        .map(|(name, result, err)| {
            json!({
                "title": name,
                "value": match err {
                    Some(e) => format!("{result} at {e}"),
                    None => result.clone(),
                },
            })
        })
        .collect();
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if let Some(e) = &s.error {
        body.push(json!({"type": "TextBlock", "wrap": true, "text": e}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(u) = &s.run_url {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open the run", "url": u}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// Posts `summary` when the configuration asks for it (failures, or every run). Never fails:
/// what went wrong is a warning.
pub fn send(notify: &Notify, summary: &Summary, runner: &Runner, ui: &Ui) {
    if summary.ok && !notify.always {
        return;
    }
    let url = match std::env::var(&notify.webhook_env) {
        Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
        _ => {
            ui.warn(format!(
                "no notification: {} (notify.webhook_env) is not set; export the webhook URL there (in CI, from a secret)",
                notify.webhook_env
            ));
            return;
        }
    };
    runner.add_secret(url.clone());
    let payload = match notify.format.as_str() {
        "slack" => slack(summary),
        _ => teams(summary),
    };
    let body = std::path::Path::new(crate::plan::WORK_DIR).join("notify.json");
    let write = std::fs::create_dir_all(runner.root.join(crate::plan::WORK_DIR)).and_then(|_| {
        std::fs::write(
            runner.root.join(&body),
            serde_json::to_string(&payload).unwrap_or_default(),
        )
    });
    if let Err(e) = write {
        ui.warn(format!(
            "no notification: cannot write {}: {e}",
            body.display()
        ));
        return;
    }
    let Some(config) = crate::tools::curl::url_config(&url) else {
        ui.warn(format!(
            "no notification: {} does not hold one URL (it has whitespace or control characters)",
            notify.webhook_env
        ));
        return;
    };
    let mut cmd = crate::tools::curl::post_json("curl", &body.display().to_string());
    cmd.stdin = Some(config);
    // Tried again only when nothing can have been delivered (no connection, 5xx, 429),
    // after 1, 2, 4 s; a timeout is not retried (the post may have landed).
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_secs(1 << (attempt - 1)));
        }
        match runner.probe(&cmd) {
            Ok(o) if o.success() => {
                ui.info(format!(
                    "notified the {} webhook ({})",
                    notify.format, notify.webhook_env
                ));
                return;
            }
            Ok(o) => {
                let text = format!("{}{}", o.stdout, o.stderr);
                last = text
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("no output")
                    .to_string();
                if !crate::tools::curl::worth_retry(o.code, &text) {
                    break;
                }
            }
            Err(e) => {
                last = format!("{e:#}");
                break;
            }
        }
    }
    ui.warn(format!(
        "the notification could not be delivered (the run's result stands): {last}"
    ));
}

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped, so a branch name cannot mention
/// `<!channel>` or forge a link.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(ok: bool) -> Summary {
        let env = |k: &str| {
            Some(
                match k {
                    "GITHUB_SERVER_URL" => "https://github.com",
                    "GITHUB_REPOSITORY" => "acme/shop",
                    "GITHUB_RUN_ID" => "42",
                    "GITHUB_REF_NAME" => "main",
                    "GITHUB_SHA" => "abcdef1234567",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let outcomes = vec![
            Outcome {
                name: "api".into(),
                attempted: true,
                ..Outcome::default()
            },
            Outcome {
                name: "web".into(),
                attempted: true,
                error: (!ok)
                    .then(|| "scan: the scan gate failed (1 finding(s) at CRITICAL)\nmore".into()),
                ..Outcome::default()
            },
        ];
        let result = if ok {
            Ok(())
        } else {
            Err(anyhow::anyhow!("1 of 2 failed"))
        };
        Summary::new("push", &outcomes, &result, &env)
    }

    #[test]
    fn slack_and_teams_say_which_service_failed_where_with_the_run() {
        let s = summary(false);
        assert_eq!(s.title(), "Slipway push failed: 1 of 2 service(s)");
        let text = slack(&s)["text"].as_str().unwrap().to_string();
        assert_eq!(
            text,
            "*Slipway push failed: 1 of 2 service(s)*\nacme/shop @ main (abcdef1)\n• api: published\n• web: FAILED at scan: the scan gate failed (1 finding(s) at CRITICAL) more\n<https://github.com/acme/shop/actions/runs/42|Open the run>"
        );
        let t = teams(&s);
        let card = &t["attachments"][0]["content"];
        assert_eq!(
            t["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["color"], "Attention");
        assert_eq!(card["body"][2]["facts"][1]["title"], "web");
        assert_eq!(
            card["actions"][0]["url"],
            "https://github.com/acme/shop/actions/runs/42"
        );
        // A branch name cannot mention the whole channel; a non-ASCII SHA does not panic.
        let mut odd = summary(false);
        odd.origin = Some("acme/shop @ fix-<!channel> & more (éééé)".into());
        let text = slack(&odd)["text"].as_str().unwrap().to_string();
        assert!(text.contains("fix-&lt;!channel&gt; &amp; more"), "{text}");
        let s = Summary::new("push", &[], &Ok(()), &|k| {
            (k == "GITHUB_SHA" || k == "GITHUB_REPOSITORY" || k == "GITHUB_REF_NAME")
                .then(|| "ééééééééé".to_string())
        });
        assert_eq!(s.origin.as_deref(), Some("ééééééééé @ ééééééééé (ééééééé)"));
        let ok = summary(true);
        assert_eq!(ok.title(), "Slipway push: 2 service(s) done");
        assert_eq!(
            teams(&ok)["attachments"][0]["content"]["body"][0]["color"],
            "Good"
        );
    }

    #[test]
    fn a_failure_before_any_service_is_the_message() {
        let s = Summary::new(
            "push",
            &[],
            &Err(anyhow::anyhow!("the ECR login to x failed\ndetails")),
            &|_| None,
        );
        assert_eq!(s.title(), "Slipway push failed before any service ran");
        assert_eq!(
            slack(&s)["text"],
            "*Slipway push failed before any service ran*\n• the ECR login to x failed details"
        );
    }
}
