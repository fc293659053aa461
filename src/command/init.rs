//! `recart init [DIR]`: a starter configuration, templates, key and sample;
//! `recart init --systemd [DIR]`: the systemd units that run it hourly.

use std::path::Path;

use super::Context;
use crate::error::{Completion, Error, Result};

pub fn execute(dir: &Path, systemd: bool, ctx: &mut Context<'_>) -> Result<Completion> {
    if systemd {
        // The units name this binary by its absolute path: systemd, like
        // cron, does not search the login shell's PATH.
        let exe = std::env::current_exe()
            .map_err(|source| Error::io("the running recart binary", source))?;
        crate::init::systemd(dir, &ctx.config_path, &exe, ctx.out)?;
    } else {
        crate::init::init(dir, ctx.now, ctx.out)?;
    }
    Ok(Completion::Done)
}
