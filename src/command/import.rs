//! `recart import FILE...`: carts, orders or a catalog from CSV files into
//! the store, one file at a time; each file's figures on stdout.

use std::path::{Path, PathBuf};

use super::Context;
use crate::error::{Completion, Result};
use crate::ingest;
use crate::ingest::sink::{Audience, ErrorsFile, Imports, import_file};
use crate::store::Store;

/// `options` say how to read every file (`--format`, `--encoding`, `--now`);
/// `errors` is where rejected rows are written as CSV
/// (`file,line,field,value,message`).
pub fn execute(
    options: &ingest::Options,
    errors: Option<&Path>,
    files: &[PathBuf],
    ctx: &mut Context<'_>,
) -> Result<Completion> {
    let config = ctx.config()?;
    let store = Store::open(&config.store_path)?;
    let mut errors = errors.map(ErrorsFile::create).transpose()?;
    let mut imports = Imports::default();
    for file in files {
        let read = import_file(
            &store,
            file,
            options,
            errors.as_mut(),
            Audience::Person,
            ctx.out,
        );
        if let Some(import) = imports.take(read, ctx.out)? {
            ctx.out.data(&import.line());
        }
    }
    if let Some(errors) = errors {
        errors.finish()?;
    }
    // An import that could read none of its files did nothing: an error.
    imports.finish(true, ctx.out)
}
