//! `[[steps]]`: the reminder sequence, each step with the policy's filters
//! and consent rule merged into its own.

use std::collections::BTreeMap;

use chrono::TimeDelta;

use super::Context;
use super::duration::HumanDuration;
use super::policy;
use super::raw::{ChannelKind, CouponKind, RawStep, Requirement};
use crate::coupon::{self, CouponRule};
use crate::error::Result;
use crate::plan::{Channel, Filters, Step, Webhook};

/// What a step inherits from `[policy]`.
pub(super) struct Inherited<'a> {
    pub require_consent: bool,
    pub filters: &'a Filters,
}

/// Every `[[steps]]`: at least one, names unique, in order of `after`.
pub(super) fn steps(
    cx: &Context<'_>,
    raw: &[RawStep],
    inherited: &Inherited<'_>,
) -> Result<Vec<Step>> {
    if raw.is_empty() {
        return Err(cx.fail("steps", "at least one [[steps]] is required"));
    }
    let mut seen = BTreeMap::new();
    let mut steps: Vec<Step> = Vec::with_capacity(raw.len());
    for (index, step) in raw.iter().enumerate() {
        let key = format!("steps[{index}]");
        if step.name.trim().is_empty() {
            return Err(cx.fail(format!("{key}.name"), "must not be empty"));
        }
        if let Some(previous) = seen.insert(&step.name, index) {
            return Err(cx.fail(
                format!("{key}.name"),
                format!("{:?} is already the name of steps[{previous}]", step.name),
            ));
        }
        let after = TimeDelta::from(step.after);
        if steps.last().is_some_and(|previous| after < previous.after) {
            return Err(cx.fail(
                format!("{key}.after"),
                "steps must be in order: each `after` at least the one before",
            ));
        }
        steps.push(self::step(cx, &key, step, inherited)?);
    }
    Ok(steps)
}

/// One step, named `key` in errors.
fn step(cx: &Context<'_>, key: &str, step: &RawStep, inherited: &Inherited<'_>) -> Result<Step> {
    let channel = channel(cx, key, step)?;
    let template = template(cx, key, step, &channel)?;
    Ok(Step {
        name: step.name.clone(),
        after: step.after.into(),
        template,
        variants: step.variants.clone(),
        require_consent: step.require_consent.unwrap_or(inherited.require_consent),
        filters: policy::filters(cx, &step.filters(), inherited.filters, key)?,
        channel,
        require_sms_consent: step.require == Some(Requirement::SmsConsent),
        cross_channel: step.cross_channel,
        coupon: coupon_rule(cx, key, step)?,
    })
}

/// A step's `channel`, with the keys that belong to it.
fn channel(cx: &Context<'_>, key: &str, step: &RawStep) -> Result<Channel> {
    match step.channel {
        ChannelKind::Email => {
            for (field, given) in [
                ("timeout", step.timeout.is_some()),
                ("url", step.url.is_some()),
                ("headers", !step.headers.is_empty()),
                ("secret_env", step.secret_env.is_some()),
            ] {
                if given {
                    return Err(cx.fail(
                        format!("{key}.{field}"),
                        "belongs to channel = \"webhook\" steps",
                    ));
                }
            }
            Ok(Channel::Email)
        }
        ChannelKind::Webhook => {
            let url = step
                .url
                .clone()
                .ok_or_else(|| cx.fail(format!("{key}.url"), "is required for a webhook step"))?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(cx.fail(
                    format!("{key}.url"),
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
            Ok(Channel::Webhook(Webhook {
                url,
                headers: step
                    .headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
                secret_env: step.secret_env.clone(),
                timeout: step
                    .timeout
                    .map_or(std::time::Duration::from_secs(15), HumanDuration::to_std),
            }))
        }
    }
}

/// A step's template stem: `template`, else its first variant; a webhook
/// may have none.
fn template(cx: &Context<'_>, key: &str, step: &RawStep, channel: &Channel) -> Result<String> {
    let template = match (&step.template, step.variants.first(), channel) {
        (Some(template), _, _) => template.clone(),
        (None, Some(first), _) => first.clone(),
        // A webhook sends JSON, not a rendered template.
        (None, None, Channel::Webhook(_)) => String::new(),
        (None, None, Channel::Email) => {
            return Err(cx.fail(format!("{key}.template"), "is required (or give variants)"));
        }
    };
    let named = (!template.is_empty()).then_some(&template);
    for name in named.into_iter().chain(&step.variants) {
        if name.contains(['/', '\\']) || name.trim().is_empty() {
            return Err(cx.fail(
                format!("{key}.template"),
                format!("{name:?} is not a template name (a file stem in the templates dir)"),
            ));
        }
    }
    Ok(template)
}

/// A step's `coupon`, `coupon_prefix`, `coupon_ttl` and `coupon_pool`.
fn coupon_rule(cx: &Context<'_>, key: &str, step: &RawStep) -> Result<Option<CouponRule>> {
    for (name, given, needs, word) in [
        (
            "coupon_prefix",
            step.coupon_prefix.is_some(),
            CouponKind::Generate,
            "generate",
        ),
        (
            "coupon_ttl",
            step.coupon_ttl.is_some(),
            CouponKind::Generate,
            "generate",
        ),
        (
            "coupon_pool",
            step.coupon_pool.is_some(),
            CouponKind::Pool,
            "pool",
        ),
    ] {
        if given && step.coupon != needs {
            return Err(cx.fail(
                format!("{key}.{name}"),
                format!("is only used with coupon = \"{word}\""),
            ));
        }
    }
    Ok(match step.coupon {
        CouponKind::None => None,
        CouponKind::Pool => {
            let pool = step
                .coupon_pool
                .clone()
                .unwrap_or_else(|| coupon::DEFAULT_POOL.to_string());
            coupon::check_pool_name(&pool)
                .map_err(|message| cx.fail(format!("{key}.coupon_pool"), message))?;
            Some(CouponRule::Pool { pool })
        }
        CouponKind::Generate => {
            let prefix = step
                .coupon_prefix
                .clone()
                .unwrap_or_else(|| coupon::DEFAULT_PREFIX.to_string());
            coupon::check_prefix(&prefix)
                .map_err(|message| cx.fail(format!("{key}.coupon_prefix"), message))?;
            let ttl = step.coupon_ttl.map_or(coupon::DEFAULT_TTL, TimeDelta::from);
            if ttl <= TimeDelta::zero() {
                return Err(cx.fail(format!("{key}.coupon_ttl"), "must be longer than 0"));
            }
            Some(CouponRule::Generate { prefix, ttl })
        }
    })
}
