//! Presets: the queries for a shop platform's own schema, shipped in the
//! binary. Each is a `[[sources]]` block (`recart sources show-preset
//! NAME` prints it) to use as `preset = "NAME"` or to copy and adapt.

use serde::Deserialize;

use super::database::Kind;

/// Name, the database it is for, and its text.
const PRESETS: &[(&str, Db, &str)] = &[
    ("magento2", Db::Mysql, include_str!("magento2.toml")),
    ("prestashop", Db::Mysql, include_str!("prestashop.toml")),
    ("sylius", Db::Postgres, include_str!("sylius.toml")),
    ("sylius-mysql", Db::Mysql, include_str!("sylius-mysql.toml")),
    ("woocommerce", Db::Mysql, include_str!("woocommerce.toml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Mysql,
    Postgres,
}

/// A preset's queries.
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: &'static str,
    pub carts_query: String,
    pub items_query: String,
    pub orders_query: String,
    /// The platform stores its times in the shop's zone: `timezone` is
    /// required.
    pub local_time: bool,
}

#[derive(Deserialize)]
struct File {
    sources: Vec<Block>,
}

#[derive(Deserialize)]
struct Block {
    carts_query: String,
    items_query: String,
    orders_query: String,
    timezone: Option<String>,
}

/// The preset names.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|(name, ..)| *name).collect()
}

/// A preset's text, as shipped.
pub fn text(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|(known, ..)| *known == name)
        .map(|(.., text)| *text)
}

/// The preset `name` for a source of `kind`: `sylius` on a MySQL URL is
/// `sylius-mysql`.
pub fn for_kind(name: &str, kind: &Kind) -> Result<Preset, String> {
    let wanted = match kind {
        Kind::Mysql(_) => Db::Mysql,
        Kind::Postgres(_) => Db::Postgres,
        Kind::Sqlite(_) => return Err("presets are for url sources (MySQL, PostgreSQL)".into()),
    };
    let found = PRESETS
        .iter()
        .filter(|(known, ..)| *known == name || known.strip_suffix("-mysql") == Some(name))
        .find(|(_, db, _)| *db == wanted);
    let Some(&(name, _, text)) = found else {
        return Err(if PRESETS.iter().any(|(known, ..)| *known == name) {
            format!(
                "{name:?} is not for this kind of database (see recart sources show-preset {name})"
            )
        } else {
            format!(
                "{name:?} is not a preset (expected one of {})",
                names().join(", ")
            )
        });
    };
    let file: File = toml::from_str(text).map_err(|error| format!("{name}: {error}"))?;
    let block = file
        .sources
        .into_iter()
        .next()
        .ok_or_else(|| format!("{name}: no [[sources]]"))?;
    Ok(Preset {
        name,
        carts_query: block.carts_query,
        items_query: block.items_query,
        orders_query: block.orders_query,
        local_time: block.timezone.is_some_and(|zone| zone != "UTC"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_for_its_database() {
        for (name, db, _) in PRESETS {
            let kind = match db {
                Db::Mysql => Kind::Mysql("mysql://u@h/db".into()),
                Db::Postgres => Kind::Postgres("postgres://u@h/db".into()),
            };
            let preset = for_kind(name, &kind).unwrap();
            assert!(preset.items_query.contains(":cart_ids"), "{name}");
            assert!(preset.carts_query.contains(":since"), "{name}");
        }
        let mysql = Kind::Mysql("mysql://u@h/db".into());
        assert_eq!(for_kind("sylius", &mysql).unwrap().name, "sylius-mysql");
        assert!(
            for_kind("shopware", &mysql)
                .unwrap_err()
                .contains("magento2")
        );
    }
}
