//! `flexsync run`'s notification flags.

use std::path::PathBuf;

use crate::Error;
use crate::daemon::notify::{self, Format, NotifySettings, Webhook};

#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// Post notifications to the webhook whose URL is in FILE: a team
    /// degraded or recovered, changes blocked by a guard, seats run out, the
    /// login lost or regained, the declaration invalid. The URL is a secret:
    /// keep it in a file only the service reads; it is never logged. Repeat
    /// for several webhooks; FORMAT=FILE (json, slack or teams) picks this
    /// one's payload, else --notify-format. The file is read again before
    /// each post, so a rotated URL needs no restart.
    #[arg(long = "notify-webhook-file", value_name = "[FORMAT=]FILE",
          value_parser = parse_webhook)]
    pub webhook_files: Vec<(Option<Format>, PathBuf)>,
    /// Payload of the webhooks given without FORMAT=: json (flexsync's own,
    /// versioned), slack (an incoming webhook), teams (an Adaptive Card, for
    /// a Teams incoming webhook or a Workflows webhook).
    #[arg(long, value_name = "FORMAT", default_value = "json",
          value_parser = clap::builder::PossibleValuesParser::new(Format::NAMES))]
    pub notify_format: String,
    /// At most this many notifications per team (and as many for the
    /// service) in any hour; what is held back is summed up in one message
    /// once there is room again.
    #[arg(long, value_name = "N", default_value_t = notify::DEFAULT_MAX_PER_HOUR,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub notify_max_per_hour: u32,
}

fn parse_webhook(s: &str) -> Result<(Option<Format>, PathBuf), String> {
    // A file whose name happens to contain `=` stays a file unless the part
    // before it names a format.
    if let Some((format, file)) = s.split_once('=')
        && let Some(format) = Format::parse(format)
    {
        if file.is_empty() {
            return Err(format!("{s:?}: no file after {}=", format.as_str()));
        }
        return Ok((Some(format), PathBuf::from(file)));
    }
    if s.is_empty() {
        return Err("an empty file name".into());
    }
    Ok((None, PathBuf::from(s)))
}

impl NotifyArgs {
    /// Reads and checks every webhook's URL file; an unusable one stops
    /// the service from starting (better than silence when it matters).
    pub fn settings(&self) -> Result<NotifySettings, Error> {
        let default = Format::parse(&self.notify_format).unwrap_or(Format::Json);
        let webhooks = self
            .webhook_files
            .iter()
            .map(|(format, file)| {
                Webhook::from_file(format.unwrap_or(default), file).map_err(|e| Error::File {
                    context: "--notify-webhook-file".into(),
                    cause: e.into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NotifySettings {
            webhooks,
            max_per_hour: self.notify_max_per_hour,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_prefix_is_read_only_when_it_names_a_format() {
        assert_eq!(
            parse_webhook("slack=/run/secrets/hook"),
            Ok((Some(Format::Slack), PathBuf::from("/run/secrets/hook")))
        );
        assert_eq!(parse_webhook("a=b"), Ok((None, PathBuf::from("a=b"))));
        assert_eq!(parse_webhook("hook"), Ok((None, PathBuf::from("hook"))));
        assert!(parse_webhook("teams=").is_err());
    }
}
