//! `recart check`: the configuration loads, the link key is there, every
//! step's templates render against a sample cart, the DKIM key reads (and
//! the DNS record to publish for it), and (with `--smtp`) the relay
//! accepts a session.

use super::Context;
use crate::compose::{self, LinkMaker};
use crate::config::{Config, Transport};
use crate::deliver;
use crate::error::{Completion, Result};
use crate::output::Output;
use crate::render::Renderer;

pub fn execute(smtp: bool, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let out = &mut *ctx.out;
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name)?
        .with_timezone(config.policy.timezone);
    let signer = compose::link_signer(&config)?;
    let links = LinkMaker {
        config: &config,
        signer: &signer,
        now: ctx.now,
    };
    compose::try_every_template(&config, &renderer, &links, |tried| {
        let which = if tried.locale.is_empty() {
            tried.template.to_string()
        } else {
            format!("{}.{}", tried.template, tried.locale)
        };
        out.data(&format!(
            "step {}: template {which} renders (subject: {:?})",
            tried.step.name, tried.rendered.subject
        ));
    })?;
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
