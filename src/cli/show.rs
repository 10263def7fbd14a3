//! `flexsync show FILE.plan`: a saved plan, looked at without connecting.

use std::io::Write;
use std::path::PathBuf;

use crate::Error;
use crate::planfile::SavedPlan;
use crate::render::Format;
use crate::render::saved::{self, Seal, Shown};

use super::plan::PlanKeyArgs;
use super::{Lenient, stdout_color};

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The saved plan, as written by `flexsync plan --out FILE`.
    #[arg(value_name = "FILE.plan")]
    pub file: PathBuf,
    /// Output format: text for terminals, markdown for pull-request
    /// comments, json for machines.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also check that the digest is exactly this (as `apply
    /// --expect-digest` would).
    #[arg(long, value_name = "DIGEST")]
    pub expect_digest: Option<String>,
    #[command(flatten)]
    pub key: PlanKeyArgs,
}

/// Renders the plan; exits 1 when apply would refuse it as tampered (the
/// plan is still shown, with why).
pub fn show(args: ShowArgs) -> Result<u8, Error> {
    let name = args.file.display().to_string();
    let text = crate::input_file::read_text_capped(&args.file, crate::planfile::MAX_FILE_BYTES)
        .map_err(|e| Error::file("cannot read", &args.file, e))?;
    let saved = SavedPlan::parse(&name, &text)?;
    let key = args.key.load()?;
    // A keyed seal cannot be checked without the key; its plan's own
    // policy still can.
    let seal = if saved.is_keyed() && key.is_none() {
        let problems = saved.policy_problems();
        if problems.is_empty() {
            Seal::Unverified
        } else {
            Seal::Broken(problems)
        }
    } else {
        match saved.verify(&name, key.as_ref(), args.expect_digest.as_deref()) {
            Ok(()) => Seal::Intact {
                keyed: saved.is_keyed(),
            },
            Err(crate::planfile::PlanFileError::Tampered { what, .. }) => Seal::Broken(what),
            Err(e) => return Err(e.into()),
        }
    };
    let broken = matches!(seal, Seal::Broken(_));
    let shown = Shown {
        file: &name,
        saved: &saved,
        seal,
        now: jiff::Timestamp::now(),
    };
    let mut out = Lenient(std::io::stdout().lock());
    match args.format {
        Format::Text => saved::text(&shown, stdout_color(), &mut out)?,
        Format::Markdown => saved::markdown(&shown, &mut out)?,
        Format::Json => saved::json(&shown, &mut out)?,
    }
    out.flush()?;
    Ok(u8::from(broken))
}
