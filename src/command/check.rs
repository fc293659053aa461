//! `recart check`: the configuration loads, the link key is there, every
//! step's templates render against a sample cart (every error of every
//! template set is reported, not just the first), every database source
//! connects and runs its queries (one row at most), the DKIM key reads
//! (and the DNS record to publish for it), and (with `--smtp`) the relay
//! accepts a session.

use super::Context;
use crate::compose::{self, LinkMaker};
use crate::config::{Config, Transport};
use crate::deliver;
use crate::error::{Completion, Error, Result};
use crate::output::Output;
use crate::render::Renderer;

pub fn execute(smtp: bool, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let out = &mut *ctx.out;
    // Every template set that loads is tried; every error is reported.
    let (renderer, mut errors) =
        Renderer::load_all(&config.templates_dir, &config.steps, &config.shop_name)?;
    let renderer = renderer.with_timezone(config.policy.timezone).at(ctx.now);
    let signer = compose::link_signer(&config)?;
    let links = LinkMaker {
        config: &config,
        signer: &signer,
        now: ctx.now,
    };
    compose::check_every_template(&config, &renderer, &links, |tried| {
        let which = if tried.locale.is_empty() {
            tried.template.to_string()
        } else {
            format!("{}.{}", tried.template, tried.locale)
        };
        match tried.rendered {
            Ok(rendered) => out.data(&format!(
                "step {}: template {which} renders (subject: {:?})",
                tried.step.name, rendered.subject
            )),
            Err(failed) => errors.extend(failed),
        }
    });
    if !errors.is_empty() {
        for error in &errors {
            out.error(&format!("recart: {error}"));
        }
        let count = errors.len();
        return Err(Error::Usage(format!(
            "{count} template error{} (each above): a run would send nothing",
            if count == 1 { "" } else { "s" }
        )));
    }
    for source in config.sources.iter().filter_map(|s| s.database.as_ref()) {
        let queries = crate::ingest::database::check(source)?;
        out.data(&format!(
            "source {}: connected; {} ran",
            source.name().display(),
            queries.join(", ")
        ));
    }
    if let Some(key) = deliver::DkimKey::load(&config)? {
        out.data(&format!(
            "DKIM: mails are signed; publish this DNS record: {}",
            key.zone_line()
        ));
    }
    if smtp {
        check_smtp(&config, out)?;
    }
    out.data(&format!("{}: ok", config.path.display()));
    Ok(Completion::Done)
}

/// Connects to the relay: EHLO, STARTTLS and AUTH; closing says QUIT.
fn check_smtp(config: &Config, out: &mut Output) -> Result<()> {
    match &config.transport {
        Transport::Smtp(settings) => {
            let mut transport = deliver::open(config, deliver::handover::Guards::default())?;
            transport.close();
            out.data(&format!(
                "SMTP {}:{}: connected, {}authenticated, quit without sending",
                settings.host,
                settings.port,
                if settings.username.is_some() {
                    ""
                } else {
                    "not "
                }
            ));
        }
        Transport::File { dir } => out.data(&format!(
            "transport.kind = \"file\" ({}): no SMTP relay to check",
            dir.display()
        )),
    }
    Ok(())
}
