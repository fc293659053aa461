//! `recart import FILE...`: carts, orders or a catalog from CSV files into
//! the store, one file at a time; each file's figures on stdout.

use std::path::{Path, PathBuf};

use super::Context;
use crate::config::Config;
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
    let store = Store::open_configured(&config)?;
    let mut errors = errors.map(ErrorsFile::create).transpose()?;
    let mut imports = Imports::default();
    for file in files {
        let options = with_catalog_settings(options, &config, file);
        let read = import_file(
            &store,
            file,
            &options,
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

/// `options` with what a Shopify products export needs and does not say —
/// the currency of its prices, its product URLs — taken where the command
/// line gives none from the `[[catalog]]` of that format whose path
/// matches the file, else from the only one there is.
fn with_catalog_settings(
    options: &ingest::Options,
    config: &Config,
    file: &Path,
) -> ingest::Options {
    let mut options = options.clone();
    let shopify: Vec<_> = config
        .catalogs
        .iter()
        .filter(|catalog| catalog.format == ingest::Format::ShopifyProducts)
        .collect();
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let matching = shopify.iter().find(|catalog| {
        std::path::absolute(&catalog.pattern)
            .ok()
            .and_then(|pattern| glob::Pattern::new(&pattern.to_string_lossy()).ok())
            .is_some_and(|pattern| pattern.matches_path(&file))
    });
    let Some(catalog) = matching.or(match shopify.as_slice() {
        [only] => Some(only),
        _ => None,
    }) else {
        return options;
    };
    if options.currency.is_none() {
        options.currency.clone_from(&catalog.currency);
    }
    if options.product_url.is_none() {
        options.product_url.clone_from(&catalog.product_url);
    }
    options
}
