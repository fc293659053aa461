//! `recart init [DIR]`: a starter configuration, templates, key and sample.

use std::path::Path;

use super::Context;
use crate::error::{Completion, Result};

pub fn execute(dir: &Path, ctx: &mut Context<'_>) -> Result<Completion> {
    crate::init::init(dir, ctx.now, ctx.out)?;
    Ok(Completion::Done)
}
